package aegis

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

// The fast decoder must give exactly what encoding/json gives, on every decision line
// of the shared vectors and on hand-made lines with escapes.
func TestParseDecisionFastMatchesEncodingJSON(t *testing.T) {
	lines := []string{
		`{"approval":{"approvers":["a","b"],"id":"apr_1"},"audit":{"agent":"x\"\\\/\b\f\n\r\t\u0001\u00e9\ud83d\ude00\ud800z","chain":["p"],"limits":[{"calls":2,"id":"l","sum":1.5e-7}],"seq":12345678901234567890,"v":1,"n":null,"t":true,"f":false,"e":{},"l":[]},"errors":[{"message":"m","path":"params.x","rule":"r"}],"outcome":"require_approval","reason":"é","rules":[]}`,
		`{"audit":{},"errors":[],"outcome":"deny","reason":"","rules":["a"]}`,
	}
	for _, v := range loadVectors(t) {
		for _, s := range v.Steps {
			if s.ExpectJSON != "" {
				lines = append(lines, s.ExpectJSON)
			}
		}
	}
	fast := 0
	for _, line := range lines {
		var want Decision
		if err := json.Unmarshal([]byte(line), &want); err != nil {
			continue
		}
		got, err := parseDecisionFast(line)
		if err != nil {
			continue // falls back to encoding/json in ParseDecision
		}
		fast++
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fast decode differs on %s:\n got %#v\nwant %#v", line, got, want)
		}
	}
	if fast < len(lines)/2 {
		t.Fatalf("only %d of %d lines took the fast path", fast, len(lines))
	}
}

type named string

func (named) MarshalJSON() ([]byte, error) { return []byte(`"custom"`), nil }

// For the values it accepts, the strict encoder must mean what json.Marshal means (the
// same decoded value).
func TestAppendRequestMatchesMarshal(t *testing.T) {
	reqs := []Request{
		{Agent: "a", Tool: "t"},
		{Agent: "a<&>\u2028\"\\\n\x01é😀", Tool: "t", Action: "x", Chain: []string{"p", "q"}, Session: "s",
			Environment: "prod", Time: "2026-01-05T10:00:00Z", Approval: "tok"},
		{Agent: "a", Tool: "t", Params: map[string]any{}, Context: map[string]any{}, Chain: []string{}},
		{Agent: "a", Tool: "t", Params: map[string]any{
			"f": 1.5, "big": 1e21, "small": 1e-7, "neg0": math.Copysign(0, -1), "max": math.MaxFloat64,
			"i": 42, "i64": int64(-1 << 62), "u64": uint64(1 << 63), "i32": int32(7), "u": uint(3),
			"b": true, "nil": nil, "s": "x", "ss": []string{"a", "b"}, "nilss": []string(nil), "nilmap": map[string]any(nil),
			"nilarr": []any(nil), "arr": []any{1, "two", false, nil, map[string]any{"x": []any{}}},
			"num": json.Number("12.50"), "named": named("n"), "f32": float32(0.1), "i8": int8(-3),
			"ints": []int{1, 2}, "typed": map[string]int{"a": 1}, "intkeys": map[int]string{7: "x"},
			"ptr": &[]string{"p"}, "raw": json.RawMessage(`{"r":1}`),
			"nested": map[string]any{"a": map[string]any{"b": map[string]any{}}},
		}, Context: map[string]any{"trace": "abc"}},
	}
	deep := map[string]any{}
	cur := deep
	for i := 0; i < 62; i++ {
		next := map[string]any{}
		cur["d"] = next
		cur = next
	}
	reqs = append(reqs, Request{Agent: "a", Tool: "t", Params: map[string]any{"deep": deep}})
	for i, r := range reqs {
		want, werr := json.Marshal(map[string]any{"agent": r.Agent, "tool": r.Tool, "action": r.Action,
			"params": r.Params, "chain": r.Chain, "session": r.Session, "environment": r.Environment,
			"context": r.Context, "time": r.Time, "approval": r.Approval})
		got, gerr := appendRequest(nil, &r, defaultMaxBytes, defaultMaxDepth)
		if werr != nil || gerr != nil {
			t.Fatalf("request %d: %v / %v", i, gerr, werr)
		}
		var gv, wv map[string]any
		if err := json.Unmarshal(got, &gv); err != nil {
			t.Fatalf("request %d: output is not JSON: %v\n%s", i, err, got)
		}
		_ = json.Unmarshal(want, &wv)
		for k, v := range wv { // json.Marshal of the map keeps empty fields; appendRequest omits them
			if v == "" || v == nil || reflect.DeepEqual(v, map[string]any{}) || reflect.DeepEqual(v, []any{}) {
				if _, ok := gv[k]; !ok {
					delete(wv, k)
				}
			}
		}
		if !reflect.DeepEqual(gv, wv) {
			t.Fatalf("request %d differs:\n got %s\nwant %s", i, got, want)
		}
	}
}

func TestEvaluateOutcome(t *testing.T) {
	e, err := NewEngineFromYAML("aegis: 1\nrules:\n  - id: ok\n    match: {tool: pay}\n    when: {params.amount: {lte: 100}}\n    outcome: allow\n  - id: ask\n    match: {tool: pay}\n    when: {params.amount: {gt: 100}}\n    outcome: require_approval\n    approvers: [m]\n")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for amount, want := range map[int]Outcome{5: Allow, 500: RequireApproval} {
		o, err := e.EvaluateOutcome(Request{Agent: "a", Tool: "pay", Params: map[string]any{"amount": amount}})
		if err != nil || o != want {
			t.Fatalf("amount %d: %v %v, want %v", amount, o, err, want)
		}
	}
	if o, err := e.EvaluateOutcome(Request{Agent: "a", Tool: "other"}); err != nil || o != Deny {
		t.Fatalf("other: %v %v", o, err)
	}
	if _, err := e.EvaluateOutcome(Request{Tool: "pay"}); err == nil {
		t.Fatal("a request without agent must fail")
	}
	e.Close()
	if _, err := e.EvaluateOutcome(Request{Agent: "a", Tool: "pay"}); err != ErrClosed {
		t.Fatalf("closed: %v", err)
	}
}
