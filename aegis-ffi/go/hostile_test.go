package aegis

// Hostile values (issue 16): every one must give the CLI's answer — the same refusal
// (an *Error with the §17 code) or the same decision — never a silent conversion.

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const notesPolicy = `aegis: 1
rules:
  - id: no-secret
    match: {tool: notes}
    when:
      params.text: {contains_any: [secret]}
    outcome: deny
  - id: notes
    match: {tool: notes}
    outcome: allow
  - id: ask
    match: {tool: pay}
    outcome: require_approval
    approvers: [boss]
`

const at = "2026-01-05T10:00:00Z"

func wantCode(t *testing.T, err error, code, field string) *Error {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("want an *aegis.Error %s, got %v", code, err)
	}
	if ae.Code != code || (field != "-" && ae.Field != field) {
		t.Fatalf("want code %s field %q, got code %s field %q: %v", code, field, ae.Code, ae.Field, err)
	}
	return ae
}

func TestEmptyKeysAndBadKeyIDsAreConfigInvalid(t *testing.T) {
	unset := os.Getenv("AEGIS_TEST_SURELY_UNSET_KEY")
	for name, c := range map[string]struct {
		opt   Option
		field string
	}{
		"approval key from an unset variable": {WithApprovalKey([]byte(unset)), "approval_key"},
		"nil approval key":                    {WithApprovalKey(nil), "approval_key"},
		"empty signing key":                   {WithSigningKey([]byte{}), "signing_key"},
		"empty key as WithOption":             {WithOption("approval_key", []byte{}), "approval_key"},
		"nil key as WithOption":               {WithOption("signing_key", []byte(nil)), "signing_key"},
		"NUL in the key id":                   {WithSigningKeyID("ops\x00evil"), "signing_key_id"},
		"empty key id":                        {WithSigningKeyID(""), "signing_key_id"},
		"control character in the key id":     {WithSigningKeyID("ops\x01"), "signing_key_id"},
		"key id of 257 bytes":                 {WithSigningKeyID(strings.Repeat("k", 257)), "signing_key_id"},
		"key id not UTF-8":                    {WithSigningKeyID("ops\xff"), "signing_key_id"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewEngineFromYAML(notesPolicy, WithSigningKey([]byte("k")), c.opt)
			ae := wantCode(t, err, CodeConfigInvalid, c.field)
			if ae.Status != StatusConfigInvalid {
				t.Fatalf("status %v", ae.Status)
			}
		})
	}
	e, err := NewEngineFromYAML(notesPolicy, WithSigningKey([]byte("k")), WithSigningKeyID("ops-2026"), WithApprovalKey([]byte("a")))
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
}

func TestBytesAreRequestErrors(t *testing.T) {
	e, err := NewEngineFromYAML(notesPolicy)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	type myBytes []byte
	for name, v := range map[string]any{
		"[]byte":         []byte("the secret is 42"),
		"named []byte":   myBytes("the secret is 42"),
		"[16]byte":       [16]byte{'s', 'e', 'c', 'r', 'e', 't'},
		"[]byte in list": []any{"x", []byte("secret")},
		"*[]byte":        &[]byte{'s'},
	} {
		_, err := e.Evaluate(Request{Agent: "a", Tool: "notes", Time: at, Params: map[string]any{"text": v}})
		ae := wantCode(t, err, CodeRequestInvalid, "params")
		if !strings.Contains(ae.Message, "byte string") {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := json.Marshal(Request{Agent: "a", Tool: "notes", Context: map[string]any{"b": v}}); err == nil {
			t.Fatalf("%s: json.Marshal(Request) must refuse bytes too", name)
		}
	}
	// The same value as a string is denied, as the CLI denies it.
	d, err := e.Evaluate(Request{Agent: "a", Tool: "notes", Time: at, Params: map[string]any{"text": "the secret is 42"}})
	if err != nil || d.Outcome != Deny {
		t.Fatalf("%+v %v", d, err)
	}
	// json.RawMessage is JSON text, parsed (strictly) by the core.
	d, err = e.Evaluate(Request{Agent: "a", Tool: "notes", Time: at, Params: map[string]any{"text": json.RawMessage(`"a secret"`)}})
	if err != nil || d.Outcome != Deny {
		t.Fatalf("raw: %+v %v", d, err)
	}
	_, err = e.Evaluate(Request{Agent: "a", Tool: "notes", Time: at, Params: map[string]any{"text": json.RawMessage(`{"a":1,"a":2}`)}})
	wantCode(t, err, CodeRequestInvalid, "-")
}

func TestStrictRequestUnmarshal(t *testing.T) {
	base := `"agent":"a","tool":"notes","time":"` + at + `"`
	for name, text := range map[string]string{
		"upper-case field":             `{"AGENT":"admin",` + base + `}`,
		"upper-case field alone":       `{` + base + `,"PARAMS":{"text":"hi"}}`,
		"unknown field":                `{` + base + `,"colour":"red"}`,
		"duplicate params":             `{` + base + `,"params":{"text":"the secret"},"params":{"text":"hello"}}`,
		"PARAMS and params":            `{` + base + `,"params":{"text":"the secret"},"PARAMS":{"text":"hello"}}`,
		"duplicate agent":              `{"agent":"admin",` + base + `}`,
		"duplicate key inside params":  `{` + base + `,"params":{"text":"the secret","text":"hello"}}`,
		"duplicate key deeper":         `{` + base + `,"context":{"a":[{"k":1,"k":2}]}}`,
		"null field":                   `{` + base + `,"session":null}`,
		"lone surrogate in a value":    `{` + base + `,"params":{"text":"\ud800"}}`,
		"lone low surrogate in a key":  `{` + base + `,"params":{"\udc00":"x"}}`,
		"lone surrogate in the agent":  `{"agent":"a\ud800","tool":"notes"}`,
		"invalid UTF-8":                "{" + base + `,"params":{"text":"v` + "\xff" + `"}}`,
		"2^53 + 1":                     `{` + base + `,"params":{"n":9007199254740993}}`,
		"19 digits":                    `{` + base + `,"params":{"n":1234567890123456789}}`,
		"1e300 in context":             `{` + base + `,"context":{"x":1e300}}`,
		"params not an object":         `{` + base + `,"params":[1]}`,
		"chain of numbers":             `{` + base + `,"chain":[1]}`,
		"agent a number":               `{"agent":1,"tool":"notes"}`,
		"no tool":                      `{"agent":"a"}`,
		"not an object":                `[1]`,
		"nested deeper than the limit": `{` + base + `,"params":` + strings.Repeat(`{"a":`, 65) + `1` + strings.Repeat(`}`, 65) + `}`,
	} {
		var r Request
		err := json.Unmarshal([]byte(text), &r)
		ae := wantCode(t, err, CodeRequestInvalid, "-")
		if ae.Status != StatusInvalidRequest {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Agent != "" {
			t.Fatalf("%s: the request was changed on error: %+v", name, r)
		}
	}
	var r Request
	text := `{` + base + `,"params":{"text":"a\u0000b","n":9007199254740991,"x":[1.5,-0,true,null,{"y":"\ud83d\ude00"}]},"chain":["p"]}`
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		t.Fatal(err)
	}
	if r.Params["text"] != "a\x00b" || r.Params["n"] != float64(maxSafeInteger) || r.Chain[0] != "p" ||
		r.Params["x"].([]any)[4].(map[string]any)["y"] != "😀" {
		t.Fatalf("%+v", r)
	}
	// Decoded and re-encoded, the request is decided as the JSON text is.
	e, _ := NewEngineFromYAML(notesPolicy)
	defer e.Close()
	e2, _ := NewEngineFromYAML(notesPolicy)
	defer e2.Close()
	line, err := e.EvaluateJSON(text)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ParseDecision(line)
	got, err := e2.Evaluate(r)
	if err != nil || got.Audit["hash"] != want.Audit["hash"] {
		t.Fatalf("%v: %v vs %v", err, got.Audit["hash"], want.Audit["hash"])
	}
}

func TestNULAndInvalidUTF8InControlArguments(t *testing.T) {
	e, err := NewEngineFromYAML(notesPolicy, WithApprovalKey([]byte("k")))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Kill("agent", "bot", "stop"); err != nil {
		t.Fatal(err)
	}
	_, err = e.Revive("agent", "bot\x00whatever")
	wantCode(t, err, CodeInvalidArgument, "id")
	if d, err := e.Evaluate(Request{Agent: "bot", Tool: "notes", Time: at}); err != nil || d.Outcome != Deny {
		t.Fatalf("the kill on bot must stay in force: %+v %v", d, err)
	}
	wantCode(t, e.Kill("agent", "eve\x00", ""), CodeInvalidArgument, "id")
	wantCode(t, e.Kill("agent\x00", "eve", ""), CodeInvalidArgument, "scope")
	wantCode(t, e.Kill("agent", "eve", "why\x00"), CodeInvalidArgument, "reason")
	wantCode(t, e.Kill("agent", "ev\xffe", ""), CodeInvalidArgument, "id")
	d, err := e.Evaluate(Request{Agent: "a", Tool: "pay", Time: at})
	if err != nil || d.Approval == nil {
		t.Fatalf("%+v %v", d, err)
	}
	_, err = e.Grant(d.Approval.ID+"\x00junk", "alice", 60)
	wantCode(t, err, CodeInvalidArgument, "approval_id")
	_, err = e.Grant(d.Approval.ID, "alice\x00 (forged)", 60)
	wantCode(t, err, CodeInvalidArgument, "approver")
	_, err = NewEngineFromPath("../../policies/finance\x00junk")
	wantCode(t, err, CodeInvalidArgument, "path")
	_, err = NewEngineFromYAML(notesPolicy, WithAuditFile(filepath.Join(t.TempDir(), "a\x00b")), WithFsync(FsyncNever))
	wantCode(t, err, CodeConfigInvalid, "audit")
}

func TestInvalidUTF8InRequests(t *testing.T) {
	e, _ := NewEngineFromYAML(notesPolicy)
	defer e.Close()
	for name, c := range map[string]struct {
		req   Request
		field string
	}{
		"agent":       {Request{Agent: "a\xff", Tool: "notes"}, "agent"},
		"chain":       {Request{Agent: "a", Tool: "notes", Chain: []string{"p\xfe"}}, "chain"},
		"param value": {Request{Agent: "a", Tool: "notes", Params: map[string]any{"text": "v\xff"}}, "params"},
		"param key":   {Request{Agent: "a", Tool: "notes", Params: map[string]any{"k\xfe": "v"}}, "params"},
		"deep value":  {Request{Agent: "a", Tool: "notes", Context: map[string]any{"l": []string{"ok", "\xc0"}}}, "context"},
		"typed map":   {Request{Agent: "a", Tool: "notes", Params: map[string]any{"m": map[string]string{"\xff": "x"}}}, "params"},
	} {
		_, err := e.Evaluate(c.req)
		ae := wantCode(t, err, CodeRequestInvalid, c.field)
		if !strings.Contains(ae.Message, "UTF-8") {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Two different invalid keys never collapse into one (no U+FFFD): both refused above;
	// the valid key is kept exactly.
	if _, err := e.Evaluate(Request{Agent: "a", Tool: "notes", Params: map[string]any{"\uFFFD": "v"}}); err != nil {
		t.Fatal(err)
	}
}

func TestNativeValuesAreBounded(t *testing.T) {
	e, _ := NewEngineFromYAML(notesPolicy)
	defer e.Close()
	// o = {a: o, b: o}, 27 levels: 2^27 leaves if expanded.
	var o any = "x"
	for i := 0; i < 27; i++ {
		o = map[string]any{"a": o, "b": o}
	}
	start := time.Now()
	_, err := e.Evaluate(Request{Agent: "a", Tool: "notes", Params: map[string]any{"o": o}})
	ae := wantCode(t, err, CodeRequestInvalid, "")
	if !strings.Contains(ae.Message, "larger than 1048576 bytes") || time.Since(start) > 5*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	// the same with typed maps and slices (the reflect path)
	var s any = []string{"x"}
	for i := 0; i < 27; i++ {
		s = []any{s, s, map[int]any{1: s}}
	}
	_, err = e.Evaluate(Request{Agent: "a", Tool: "notes", Context: map[string]any{"s": s}})
	wantCode(t, err, CodeRequestInvalid, "")

	deep := map[string]any{}
	cur := deep
	for i := 0; i < 100; i++ {
		next := map[string]any{}
		cur["d"] = next
		cur = next
	}
	_, err = e.Evaluate(Request{Agent: "a", Tool: "notes", Params: map[string]any{"deep": deep}})
	if ae := wantCode(t, err, CodeRequestInvalid, "params"); !strings.Contains(ae.Message, "nested more than 64") {
		t.Fatal(err)
	}
	cyc := map[string]any{}
	cyc["self"] = cyc
	list := []any{nil}
	list[0] = list
	p := new(any)
	*p = p
	for name, v := range map[string]any{"map": cyc, "list": list, "pointer": p} {
		_, err := e.Evaluate(Request{Agent: "a", Tool: "notes", Params: map[string]any{"c": v}})
		if ae := wantCode(t, err, CodeRequestInvalid, "params"); !strings.Contains(ae.Message, "itself") {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Numbers: exact or refused (by the core, naming the path), never rounded.
	for name, v := range map[string]any{
		"int64 2^53+1": int64(1<<53 + 1), "uint64 max": uint64(math.MaxUint64), "float64 1e300": 1e300,
		"int 2^60": 1 << 60, "negative": int64(-(1<<53 + 1)),
	} {
		_, err := e.Evaluate(Request{Agent: "a", Tool: "notes", Params: map[string]any{"n": v}})
		if ae := wantCode(t, err, CodeRequestInvalid, "params"); !strings.Contains(ae.Message, "`params.n` is a number beyond") {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, v := range []any{math.NaN(), math.Inf(-1), make(chan int), func() {}, complex(1, 2), struct{ A int }{1}, map[bool]int{true: 1}} {
		_, err := e.Evaluate(Request{Agent: "a", Tool: "notes", Params: map[string]any{"x": v}})
		wantCode(t, err, CodeRequestInvalid, "params")
	}
	// The core's words for non-finite numbers (as Python and Node give them).
	for v, want := range map[float64]string{math.Inf(1): "`params.x` is Infinity; numbers must be finite", math.Inf(-1): "`params.x` is -Infinity; numbers must be finite"} {
		_, err := e.Evaluate(Request{Agent: "a", Tool: "notes", Params: map[string]any{"x": v}})
		if ae := wantCode(t, err, CodeRequestInvalid, "params"); !strings.HasSuffix(ae.Message, want) {
			t.Fatalf("%v: %q", v, ae.Message)
		}
	}
	_, err = e.Evaluate(Request{Agent: "a", Tool: "notes", Params: map[string]any{"x": math.NaN()}})
	if ae := wantCode(t, err, CodeRequestInvalid, "params"); !strings.HasSuffix(ae.Message, "`params.x` is NaN; numbers must be finite") {
		t.Fatalf("NaN: %q", ae.Message)
	}
	if _, err := e.Evaluate(Request{Agent: "a", Tool: "notes", Params: map[string]any{"n": int64(maxSafeInteger), "m": -maxSafeInteger}}); err != nil {
		t.Fatal(err)
	}
}

func TestAuditCallbacks(t *testing.T) {
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	var records []string
	fail := false
	var e *Engine
	reenter := false
	var inner error
	cb := func(rec string) error {
		records = append(records, rec)
		if reenter {
			_, inner = e.Evaluate(Request{Agent: "a", Tool: "notes", Time: at})
		}
		if fail {
			return errors.New("the log is down")
		}
		return nil
	}
	e, err := NewEngineFromYAML(notesPolicy, WithAuditFile(audit), WithFsync(FsyncNever), WithAuditCallback(cb))
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Agent: "a", Tool: "notes", Time: at}
	if _, err := e.Evaluate(req); err != nil || len(records) != 1 || !strings.HasPrefix(records[0], `{"agent":"a"`) {
		t.Fatalf("%v %q", err, records)
	}
	// A failing callback after the file sink wrote: the call fails, the chain stays whole.
	fail = true
	_, err = e.Evaluate(req)
	wantCode(t, err, CodeAuditFailed, "")
	fail = false
	if seq, _, err := e.ChainHead(); err != nil || seq != 2 {
		t.Fatalf("after a failed callback the chain head is %d (%v), want 2", seq, err)
	}
	// A callback that calls back into its engine: refused, and the outer call fails; no deadlock.
	reenter = true
	done := make(chan error, 1)
	go func() { _, err := e.Evaluate(req); done <- err }()
	select {
	case err := <-done:
		wantCode(t, err, CodeAuditFailed, "")
		if inner == nil {
			t.Fatal("the re-entrant call must fail")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a re-entrant callback deadlocked")
	}
	reenter = false
	if _, err := e.Evaluate(req); err != nil {
		t.Fatal(err)
	}
	_ = e.Close()
	// The file: seq 0..3, each prev the hash before it.
	b, _ := os.ReadFile(audit)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), b)
	}
	prev := strings.Repeat("0", 64)
	for i, l := range lines {
		var r struct {
			Seq  int    `json:"seq"`
			Prev string `json:"prev"`
			Hash string `json:"hash"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Seq != i || r.Prev != prev {
			t.Fatalf("line %d: %+v %v (prev want %s)", i, r, err, prev)
		}
		prev = r.Hash
	}
	// A panicking callback fails the call closed; the process survives.
	e2, err := NewEngineFromYAML(notesPolicy, WithAuditCallback(func(string) error { panic("boom") }))
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	_, err = e2.Evaluate(req)
	wantCode(t, err, CodeAuditFailed, "")
}

func TestOneEnginePerAuditFile(t *testing.T) {
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := NewEngineFromYAML(notesPolicy, WithAuditFile(audit), WithFsync(FsyncNever))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewEngineFromYAML(notesPolicy, WithAuditFile(audit), WithFsync(FsyncNever))
	if ae := wantCode(t, err, CodeAuditFailed, ""); ae.Status != StatusIOError || !strings.Contains(ae.Message, "in use by another engine") {
		t.Fatal(err)
	}
	if _, err := a.Evaluate(Request{Agent: "a", Tool: "notes", Time: at}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b, err := NewEngineFromYAML(notesPolicy, WithAuditFile(audit), WithFsync(FsyncNever))
	if err != nil {
		t.Fatalf("after Close the file is free: %v", err)
	}
	defer b.Close()
	if seq, _, _ := b.ChainHead(); seq != 1 {
		t.Fatalf("resumed at %d", seq)
	}
}

func TestErrorShape(t *testing.T) {
	_, err := NewEngineFromYAML("aegis: 1\nrules:\n  - id: a\n    outcome: alow\n")
	ae := wantCode(t, err, CodePolicyInvalid, "")
	if len(ae.Errors) != 1 || ae.Errors[0].Line != 4 || ae.Errors[0].File != "<yaml>" || ae.Errors[0].Help == "" {
		t.Fatalf("%+v", ae.Errors)
	}
	e, _ := NewEngineFromYAML(notesPolicy)
	_, err = e.EvaluateJSON(`{"agent":"a","tool":"notes","colour":"red"}`)
	wantCode(t, err, CodeRequestInvalid, "colour")
	if !errors.Is(err, &Error{Code: CodeRequestInvalid}) || errors.Is(err, &Error{Code: CodeAuditFailed}) {
		t.Fatal("errors.Is by code")
	}
	if ae := wantCode(t, e.Kill("planet", "x", ""), CodeInvalidArgument, ""); ae.Message != "unknown kill scope `planet` (agent, tool, session, all)" {
		t.Fatalf("bad scope: %q", ae.Message)
	}
	e.Close()
	_, err = e.Evaluate(Request{Agent: "a", Tool: "notes"})
	wantCode(t, err, CodeInvalidArgument, "")
}
