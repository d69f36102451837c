package aegis

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const testPolicy = `aegis: 1
rules:
  - id: small
    match: {tool: pay}
    when: {params.amount: {lte: 100}}
    outcome: allow
  - id: big
    match: {tool: pay}
    when: {params.amount: {gt: 100}}
    outcome: require_approval
    approvers: [boss]
`

func TestErrorsAndControls(t *testing.T) {
	if _, err := NewEngineFromYAML("aegis: 1\nrules: [{id: x, outcome: maybe}]\n"); !errors.Is(err, &Error{Status: StatusPolicyError}) {
		t.Fatalf("want policy error, got %v", err)
	}
	if _, err := NewEngineFromYAML("aegis: 1\n# \xff\n"); !errors.Is(err, &Error{Status: StatusInvalidUTF8}) {
		t.Fatalf("want UTF-8 error, got %v", err)
	}
	e, err := NewEngineFromYAML(testPolicy, WithApprovalKey([]byte("ak")), WithSigningKey([]byte("sk")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.EvaluateJSON(`{"agent": "a", "tool": `); !errors.Is(err, &Error{Status: StatusInvalidRequest}) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := e.Evaluate(Request{Tool: "pay"}); !errors.Is(err, &Error{Status: StatusInvalidRequest}) {
		t.Fatalf("no agent: %v", err)
	}
	d, err := e.Evaluate(Request{Agent: "a", Tool: "pay", Params: map[string]any{"amount": 500}})
	if err != nil || d.Outcome != RequireApproval || d.Approval == nil || d.Allowed {
		t.Fatalf("approval: %+v %v", d, err)
	}
	tok, err := e.Grant(d.Approval.ID, "boss", 3600)
	if err != nil || tok == "" {
		t.Fatalf("grant: %v", err)
	}
	d, err = e.Evaluate(Request{Agent: "a", Tool: "pay", Params: map[string]any{"amount": 500}, Approval: tok})
	if err != nil || !d.Allowed || d.Audit["approved_by"] != "boss" {
		t.Fatalf("granted: %+v %v", d, err)
	}
	if err := e.Kill("planet", "x", ""); !errors.Is(err, &Error{Status: StatusInvalidArgument}) {
		t.Fatalf("bad scope: %v", err)
	}
	if err := e.Kill("agent", "a", "stop"); err != nil {
		t.Fatal(err)
	}
	d, _ = e.Evaluate(Request{Agent: "a", Tool: "pay", Params: map[string]any{"amount": 1}})
	if d.Outcome != Deny || d.Reason != "stop" {
		t.Fatalf("killed: %+v", d)
	}
	if was, err := e.Revive("agent", "a"); !was || err != nil {
		t.Fatalf("revive: %v %v", was, err)
	}
	if err := e.Reload(); !errors.Is(err, &Error{Status: StatusPolicyError}) {
		t.Fatalf("reload of a YAML engine: %v", err)
	}
	if err := e.ReloadYAML("aegis: 1\n"); err != nil {
		t.Fatal(err)
	}
	e.Close()
	e.Close()
	if _, err := e.EvaluateJSON("{}"); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}

func TestFromPathAndAuditFile(t *testing.T) {
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	e, err := NewEngineFromPath("../../policies/finance", WithAuditFile(audit), WithFsync(FsyncNever))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	d, err := e.Evaluate(Request{Agent: "finance-agent", Tool: "payments", Action: "create",
		Params: map[string]any{"amount": 120, "currency": "USD", "payee": "acme"}})
	if err != nil || !d.Allowed {
		t.Fatalf("%+v %v", d, err)
	}
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(audit)
	if err != nil || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("audit file: %q %v", b, err)
	}
	if _, err := NewEngineFromPath("../../policies/finance", WithAuditFile("/nonexistent/x/a.jsonl")); !errors.Is(err, &Error{Status: StatusIOError}) {
		t.Fatalf("audit open: %v", err)
	}
}

// TestConcurrent shares one engine among goroutines and closes it while they run.
func TestConcurrent(t *testing.T) {
	e, err := NewEngineFromYAML(testPolicy)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const workers, calls = 8, 200
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				d, err := e.Evaluate(Request{Agent: fmt.Sprintf("a%d", w), Tool: "pay", Params: map[string]any{"amount": i}})
				if err != nil {
					errs <- err
					return
				}
				if (i <= 100) != d.Allowed {
					errs <- fmt.Errorf("amount %d: %s", i, d.Outcome)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seq := 0.0
	d, _ := e.Evaluate(Request{Agent: "z", Tool: "pay", Params: map[string]any{"amount": 1}})
	seq, _ = d.Audit["seq"].(float64)
	if int(seq) != workers*calls {
		t.Errorf("seq %v, want %d", seq, workers*calls)
	}
	// Close racing with evaluations: every call either succeeds or gets ErrClosed.
	var wg2 sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for i := 0; i < 100; i++ {
				if _, err := e.EvaluateJSON(`{"agent":"a","tool":"pay","params":{"amount":1}}`); err != nil && !errors.Is(err, ErrClosed) {
					t.Error(err)
					return
				}
			}
		}()
	}
	e.Close()
	wg2.Wait()
}

func bigBundle(agents int) string {
	var b strings.Builder
	b.WriteString("aegis: 1\nrules:\n")
	for i := 0; i < agents; i++ {
		fmt.Fprintf(&b, "  - id: a%d-small\n    match: {agent: agent-%d, tool: payments}\n    when: {params.amount: {lte: 100}}\n    outcome: allow\n", i, i)
		fmt.Fprintf(&b, "  - id: a%d-big\n    match: {agent: agent-%d, tool: payments}\n    when: {params.amount: {gt: 10000}}\n    outcome: deny\n", i, i)
		fmt.Fprintf(&b, "  - id: a%d-mid\n    match: {agent: agent-%d, tool: payments}\n    when: {params.amount: {gt: 100, lte: 10000}}\n    outcome: require_approval\n    approvers: [boss]\n", i, i)
	}
	return b.String()
}

func benchEngine(b *testing.B) *Engine {
	e, err := NewEngineFromYAML(bigBundle(1000))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

func BenchmarkEvaluate(b *testing.B) {
	e := benchEngine(b)
	req := Request{Agent: "agent-500", Tool: "payments", Action: "create", Time: "2026-01-05T10:00:00Z",
		Params: map[string]any{"amount": 50, "currency": "USD"}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Evaluate(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvaluateJSON(b *testing.B) {
	e := benchEngine(b)
	req := `{"agent":"agent-500","tool":"payments","action":"create","time":"2026-01-05T10:00:00Z","params":{"amount":50,"currency":"USD"}}`
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.EvaluateJSON(req); err != nil {
			b.Fatal(err)
		}
	}
}
