package aegis

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wantConfig checks err is the core's config_invalid error about field with exactly
// message (a prefix when it ends in "…").
func wantConfig(t *testing.T, err error, field, message string) {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeConfigInvalid || ae.Status != StatusConfigInvalid || ae.Field != field {
		t.Fatalf("want config_invalid about %q, got %#v", field, err)
	}
	if prefix, ok := strings.CutSuffix(message, "…"); ok {
		if !strings.HasPrefix(ae.Message, prefix) {
			t.Fatalf("message %q does not start with %q", ae.Message, prefix)
		}
	} else if ae.Message != message {
		t.Fatalf("message %q, want %q", ae.Message, message)
	}
}

func TestTheConfigurationDocument(t *testing.T) {
	// The acceptance example: the core's error, decoded from aegis_last_error_json.
	_, err := NewEngineFromYAML(testPolicy, WithOption("fsnyc", "always"))
	want := &Error{Code: "config_invalid", Status: StatusConfigInvalid, Field: "fsnyc", Message: "unknown option `fsnyc` (did you mean `fsync`?)"}
	if ae, ok := err.(*Error); !ok || ae.Code != want.Code || ae.Status != want.Status || ae.Field != want.Field ||
		ae.Message != want.Message || ae.Errors != nil {
		t.Fatalf("got %#v\nwant %#v", err, want)
	}
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	cb := WithAuditCallback(func(string) error { return nil })
	for name, c := range map[string]struct {
		opts           []Option
		field, message string
	}{
		"a string for a number":   {[]Option{WithOption("request_max_bytes", "big")}, "request_max_bytes", "`request_max_bytes` must be an integer number of bytes from 1 to 67108864, not \"big\""},
		"too large":               {[]Option{WithRequestMaxBytes(1 << 30)}, "request_max_bytes", "`request_max_bytes` must be an integer number of bytes from 1 to 67108864, not 1073741824"},
		"too deep":                {[]Option{WithRequestMaxDepth(1000)}, "request_max_depth", "`request_max_depth` must be an integer number of levels from 1 to 100, not 1000"},
		"no counters":             {[]Option{WithMaxLimitCounters(0)}, "max_limit_counters", "`max_limit_counters` must be an integer number of counters from 1 to 10000000, not 0"},
		"an unknown key":          {[]Option{WithOption("colour", "red")}, "colour", "unknown option `colour`; the options are audit, fsync, rotate_bytes,…"},
		"camelCase in Go":         {[]Option{WithOption("requestMaxBytes", 5)}, "requestMaxBytes", "unknown option `requestMaxBytes` (did you mean `request_max_bytes`?)"},
		"fsync without a file":    {[]Option{WithFsync(FsyncBatch)}, "fsync", "`fsync` sets how the audit file is written; give `audit` too (a file path)"},
		"rotation with callbacks": {[]Option{cb, WithRotateBytes(1 << 20)}, "rotate_bytes", "`rotate_bytes` sets how the audit file is written; `audit` is a callback here; give `audit` as a file path"},
		"a bad fsync":             {[]Option{WithAuditFile(audit), WithFsync("sometimes")}, "fsync", "`fsync` must be \"always\", \"batch\" or \"never\", not \"sometimes\""},
		"a kid alone":             {[]Option{WithSigningKeyID("ops")}, "signing_key_id", "`signing_key_id` names the signing key; give `signing_key` too"},
		"a later release":         {[]Option{WithOption("inbox", "sqlite:///x")}, "inbox", "`inbox` is not supported yet (the approvals inbox, §12); leave it out"},
		"a state option alone":    {[]Option{WithStateTimeoutMs(5)}, "state_timeout_ms", "`state_timeout_ms` sets how the fleet's store is used; give `state` too (a Redis URL)"},
		"a key of the wrong type": {[]Option{WithOption("approval_key", 5)}, "approval_key", "`approval_key` must be a key (a string, bytes or {\"base64\": \"…\"}), not 5"},
		"a function":              {[]Option{WithOption("audit", func(string) error { return nil })}, "audit", "`audit` is a func(string) error, which has no JSON form (an audit callback goes in WithAuditCallback)"},
		"invalid UTF-8":           {[]Option{WithOption("signing_key_id", "k\xff")}, "signing_key_id", "`signing_key_id` is not valid UTF-8 (strings are never replaced by U+FFFD)"},
		"a nil callback":          {[]Option{WithAuditCallback(nil)}, "audit", "an audit callback is nil"},
		"a collector without a file": {[]Option{WithCollector(CollectorConfig{Endpoint: "http://127.0.0.1:4318"})}, "collector",
			"`collector` ships the audit file; give `audit` too (a file path)"},
		"invalid UTF-8 in a header": {[]Option{WithAuditFile(audit), WithCollector(CollectorConfig{Endpoint: "http://h", Headers: map[string]string{"X": "\xff"}})},
			"collector", "`collector.headers.X` is not valid UTF-8 (strings are never replaced by U+FFFD)"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewEngineFromYAML(testPolicy, c.opts...)
			wantConfig(t, err, c.field, c.message)
		})
	}
	// Go-side mistakes are found in sorted key order: always the same one first.
	for i := 0; i < 20; i++ {
		_, err := NewEngineFromYAML(testPolicy, WithOption("signing_key_id", "\xff"), WithOption("audit", "\xfe"))
		wantConfig(t, err, "audit", "`audit` is not valid UTF-8…")
	}
}

func TestOptionValues(t *testing.T) {
	req := Request{Agent: "a", Tool: "pay", Time: at, Params: map[string]any{"amount": 5}}
	decide := func(opts ...Option) Decision {
		t.Helper()
		e, err := NewEngineFromYAML(testPolicy, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		d, err := e.Evaluate(req)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// A key is bytes: WithSigningKey, a []byte given to WithOption ({"base64": …}) and a
	// string all sign alike.
	sig := decide(WithSigningKey([]byte("k1"))).Audit["sig"]
	if sig == nil || decide(WithOption("signing_key", []byte("k1"))).Audit["sig"] != sig ||
		decide(WithOption("signing_key", "k1")).Audit["sig"] != sig ||
		decide(WithOption("signing_key", map[string]any{"base64": "azE="})).Audit["sig"] != sig {
		t.Fatal("the same key must give the same signature")
	}
	// A later option replaces an earlier one; nil is an option not given.
	if d := decide(WithSigningKey([]byte("k1")), WithOption("signing_key", nil)); d.Audit["sig"] != nil {
		t.Fatalf("nil must unset the key: %v", d.Audit)
	}
	if d := decide(WithSigningKey([]byte("k1")), WithSigningKey([]byte("k2"))); d.Audit["sig"] == sig {
		t.Fatal("the later key must win")
	}
	// An empty or nil key is refused, never taken as no key.
	for _, o := range []Option{WithApprovalKey(nil), WithApprovalKey([]byte{}), WithOption("approval_key", []byte(nil))} {
		_, err := NewEngineFromYAML(testPolicy, o)
		wantConfig(t, err, "approval_key", "`approval_key` is empty; an empty HMAC key lets anyone forge what it protects")
	}
	// Every helper at once, with a rotating audit file.
	dir := t.TempDir()
	audit := filepath.Join(dir, "audit.jsonl")
	var records []string
	e, err := NewEngineFromYAML(testPolicy, WithAuditFile(audit), WithFsync(FsyncNever), WithRotateBytes(1<<20),
		WithSigningKey([]byte("k")), WithSigningKeyID("ops"), WithApprovalKey([]byte("a")), WithRequestMaxBytes(4096),
		WithRequestMaxDepth(8), WithMaxLimitCounters(10), WithAuditCallback(func(r string) error { records = append(records, r); return nil }))
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Evaluate(req)
	if err != nil || d.Audit["kid"] != "ops" || len(records) != 1 {
		t.Fatalf("%+v %v %d", d, err, len(records))
	}
	e.Close()
	if b, err := os.ReadFile(audit); err != nil || strings.TrimSpace(string(b)) != records[0] {
		t.Fatalf("the file holds the record the callback got: %q %v", b, err)
	}
}

func TestRequestLimitsReachTheEncoder(t *testing.T) {
	big := strings.Repeat("x", 2<<20)
	// Beyond the default 1 MiB, with a larger limit: Evaluate's encoder follows the engine.
	e, err := NewEngineFromYAML(testPolicy, WithRequestMaxBytes(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Evaluate(Request{Agent: "a", Tool: "pay", Params: map[string]any{"blob": big}}); err != nil {
		t.Fatalf("a 2 MiB request under a 4 MiB limit: %v", err)
	}
	small, err := NewEngineFromYAML(testPolicy, WithRequestMaxBytes(256), WithRequestMaxDepth(2))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	_, err = small.Evaluate(Request{Agent: "a", Tool: "pay", Params: map[string]any{"blob": strings.Repeat("x", 300)}})
	if ae := wantCode(t, err, CodeRequestInvalid, ""); !strings.Contains(ae.Message, "256") {
		t.Fatal(err)
	}
	_, err = small.Evaluate(Request{Agent: "a", Tool: "pay", Params: map[string]any{"a": map[string]any{"b": map[string]any{}}}})
	if ae := wantCode(t, err, CodeRequestInvalid, "params"); !strings.Contains(ae.Message, "nested more than 2") {
		t.Fatal(err)
	}
	if _, err := small.EvaluateJSON(`{"agent":"a","tool":"pay","params":{"a":{"b":{}}}}`); err == nil {
		t.Fatal("the core refuses it too")
	}
}

func TestLoadErrorsAreStructured(t *testing.T) {
	_, err := NewEngineFromYAML("aegis: 1\nrules:\n  - id: a\n    outcome: alow\n  - id: b\n    outcome: dney\n    colour: red\n")
	ae := wantCode(t, err, CodePolicyInvalid, "")
	var at [][2]int
	for _, l := range ae.Errors {
		if l.File != "<yaml>" || l.Message == "" {
			t.Fatalf("%+v", l)
		}
		at = append(at, [2]int{l.Line, l.Column})
	}
	if len(at) != 3 || at[0] != [2]int{4, 14} || at[1] != [2]int{6, 14} || at[2] != [2]int{7, 5} {
		t.Fatalf("three errors with their locations: %v", at)
	}
	if !strings.HasSuffix(ae.Message, "(and 2 more)") {
		t.Fatalf("the core's message: %q", ae.Message)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "<yaml>:4:14: error: ") || !strings.HasPrefix(lines[3], "<yaml>:7:5: error: ") {
		t.Fatalf("Error() lists every load error:\n%s", err)
	}
}

func TestControlFromACallbackIsAuditFailed(t *testing.T) {
	var e *Engine
	var inner []error
	e, err := NewEngineFromYAML(notesPolicy, WithAuditCallback(func(string) error {
		_, revErr := e.Revive("agent", "x")
		_, _, headErr := e.ChainHead()
		inner = append(inner, e.Kill("agent", "x", ""), revErr, headErr)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, err = e.Evaluate(Request{Agent: "a", Tool: "notes", Time: at})
	wantCode(t, err, CodeAuditFailed, "")
	if len(inner) != 3 {
		t.Fatalf("%v", inner)
	}
	for _, err := range inner {
		if ae := wantCode(t, err, CodeAuditFailed, ""); ae.Status != StatusIOError {
			t.Fatalf("status %v", ae.Status)
		}
	}
	var cfg json.RawMessage = []byte(`{"endpoint":"http://127.0.0.1:4318","endpiont":"x"}`)
	_, err = NewEngineFromYAML(notesPolicy, WithAuditFile(filepath.Join(t.TempDir(), "a.jsonl")), WithOption("collector", cfg))
	wantConfig(t, err, "collector", "invalid collector configuration: unknown option `endpiont` (did you mean `endpoint`?)")
}
