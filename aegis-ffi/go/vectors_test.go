package aegis

// The Go runner of the shared vectors (tests/vectors/generated/*.json), read strictly
// per "Schema (v2)" of tests/vectors/README.md: an unknown key at any level (exact
// case), a duplicate key, a missing required key, a value of the wrong type (null
// included) or an unknown step op fails the run; no file is skipped.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// members reads raw as a JSON object with exactly the keys allowed: every required one,
// some optional ones, none twice, none other.
func members(raw json.RawMessage, where string, required, optional []string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%s: not an object", where)
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		k, _ := tok.(string)
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s: duplicate key %q", where, k)
		}
		if !slices.Contains(required, k) && !slices.Contains(optional, k) {
			return nil, fmt.Errorf("%s: unknown key %q", where, k)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: %s: %v", where, k, err)
		}
		out[k] = v
	}
	for _, k := range required {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("%s: missing key %q", where, k)
		}
	}
	return out, nil
}

// decodeKey decodes the member k (when present) into dst, whose type is the key's:
// a value of another type, or null, is an error.
func decodeKey(m map[string]json.RawMessage, k string, dst any, where string) error {
	raw, ok := m[k]
	if !ok {
		return nil
	}
	if string(raw) == "null" {
		return fmt.Errorf("%s: %s is null", where, k)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("%s: %s: %v", where, k, err)
	}
	return nil
}

// oneOf checks a string against the values the schema allows.
func oneOf(v, where string, allowed ...string) error {
	if !slices.Contains(allowed, v) {
		return fmt.Errorf("%s: %q is not one of %v", where, v, allowed)
	}
	return nil
}

type loadError struct {
	Line, Column int
	Message      string
}

type configErrorCase struct {
	Options              map[string]any
	Code, Field, Message string
}

type vectorStep struct {
	Op, Name, RequestJSON, ExpectJSON, ExpectError, Callback, Scope, ID, Reason, Session string
	Expect                                                                               []string // marks: the labels, exactly
}

type vector struct {
	Name, PolicyYAML, PolicyHash string
	Options                      []Option // from `options`, through the typed With… helpers
	AuditCallback                bool
	LoadErrors                   []loadError
	ConfigErrors                 []configErrorCase
	Steps                        []vectorStep
}

// readVector reads one generated file strictly.
func readVector(raw []byte, where string) (vector, error) {
	var v vector
	m, err := members(raw, where, []string{"name", "description", "options", "policy_yaml", "steps"},
		[]string{"policy_hash", "audit_callback", "load_errors", "config_errors"})
	if err != nil {
		return v, err
	}
	var description string
	var rawLoad, rawConfig, rawSteps []json.RawMessage
	for _, f := range []struct {
		k   string
		dst any
	}{{"name", &v.Name}, {"description", &description}, {"policy_yaml", &v.PolicyYAML}, {"policy_hash", &v.PolicyHash},
		{"audit_callback", &v.AuditCallback}, {"load_errors", &rawLoad},
		{"config_errors", &rawConfig}, {"steps", &rawSteps}} {
		if err := decodeKey(m, f.k, f.dst, where); err != nil {
			return v, err
		}
	}
	if _, ok := m["audit_callback"]; ok && !v.AuditCallback {
		return v, fmt.Errorf("%s: audit_callback must be true when given", where)
	}
	if v.Options, err = vectorOptions(m["options"], where+": options"); err != nil {
		return v, err
	}
	for i, r := range rawLoad {
		w := fmt.Sprintf("%s: load_errors[%d]", where, i)
		lm, err := members(r, w, []string{"line", "column", "message"}, nil)
		if err != nil {
			return v, err
		}
		var le loadError
		for _, f := range []struct {
			k   string
			dst any
		}{{"line", &le.Line}, {"column", &le.Column}, {"message", &le.Message}} {
			if err := decodeKey(lm, f.k, f.dst, w); err != nil {
				return v, err
			}
		}
		v.LoadErrors = append(v.LoadErrors, le)
	}
	for i, r := range rawConfig {
		w := fmt.Sprintf("%s: config_errors[%d]", where, i)
		cm, err := members(r, w, []string{"options", "options_camel", "code", "field", "message", "field_camel", "message_camel"}, nil)
		if err != nil {
			return v, err
		}
		var c configErrorCase
		var camel map[string]any
		var fieldCamel, messageCamel string
		for _, f := range []struct {
			k   string
			dst any
		}{{"options", &c.Options}, {"options_camel", &camel}, {"code", &c.Code}, {"field", &c.Field},
			{"message", &c.Message}, {"field_camel", &fieldCamel}, {"message_camel", &messageCamel}} {
			if err := decodeKey(cm, f.k, f.dst, w); err != nil {
				return v, err
			}
		}
		if err := oneOf(c.Code, w+": code", CodeConfigInvalid); err != nil {
			return v, err
		}
		v.ConfigErrors = append(v.ConfigErrors, c)
	}
	for i, r := range rawSteps {
		s, err := readStep(r, fmt.Sprintf("%s: steps[%d]", where, i))
		if err != nil {
			return v, err
		}
		if s.Callback != "" && !v.AuditCallback {
			return v, fmt.Errorf("%s: steps[%d]: `callback` in a vector without audit_callback", where, i)
		}
		v.Steps = append(v.Steps, s)
	}
	if _, ok := m["policy_hash"]; !ok && rawLoad == nil && rawConfig == nil {
		return v, fmt.Errorf("%s: missing key \"policy_hash\"", where)
	}
	if (rawLoad != nil || rawConfig != nil) && len(v.Steps) > 0 {
		return v, fmt.Errorf("%s: a load_errors or config_errors vector has no steps", where)
	}
	return v, nil
}

// vectorOptions turns `options` into With… options (the schema's keys, each typed).
func vectorOptions(raw json.RawMessage, where string) ([]Option, error) {
	keys := []string{"signing_key", "signing_key_id", "approval_key", "request_max_bytes", "request_max_depth",
		"max_limit_counters", "max_sessions", "marks_ttl"}
	m, err := members(raw, where, nil, keys)
	if err != nil {
		return nil, err
	}
	var opts []Option
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			continue
		}
		var s string
		var n int
		if strings.HasSuffix(k, "_key") || k == "signing_key_id" || k == "marks_ttl" {
			err = decodeKey(m, k, &s, where)
		} else {
			err = decodeKey(m, k, &n, where)
		}
		if err != nil {
			return nil, err
		}
		opts = append(opts, map[string]Option{
			"signing_key": WithSigningKey([]byte(s)), "signing_key_id": WithSigningKeyID(s),
			"approval_key": WithApprovalKey([]byte(s)), "request_max_bytes": WithRequestMaxBytes(n),
			"request_max_depth": WithRequestMaxDepth(n), "max_limit_counters": WithMaxLimitCounters(n),
			"max_sessions": WithMaxSessions(n), "marks_ttl": WithMarksTTL(s),
		}[k])
	}
	return opts, nil
}

// readStep reads one step strictly, per its op.
func readStep(raw json.RawMessage, where string) (vectorStep, error) {
	var s vectorStep
	probe := struct {
		Op *string `json:"op"`
	}{}
	if json.Unmarshal(raw, &probe) != nil || probe.Op == nil {
		return s, fmt.Errorf("%s: no op", where)
	}
	var m map[string]json.RawMessage
	var err error
	switch *probe.Op {
	case "evaluate":
		m, err = members(raw, where, []string{"op", "name", "request_json"}, []string{"expect_json", "expect_error", "callback"})
		if err == nil {
			_, hasExpect := m["expect_json"]
			_, hasError := m["expect_error"]
			if hasExpect == hasError {
				err = fmt.Errorf("%s: an evaluate step has expect_json or expect_error", where)
			} else if _, hasCallback := m["callback"]; hasCallback && !hasError {
				err = fmt.Errorf("%s: a callback step expects audit_failed", where)
			}
		}
	case "kill":
		m, err = members(raw, where, []string{"op", "scope", "id", "reason"}, nil)
	case "revive":
		m, err = members(raw, where, []string{"op", "scope", "id"}, nil)
	case "marks":
		m, err = members(raw, where, []string{"op", "session", "expect"}, nil)
		if err == nil {
			err = decodeKey(m, "expect", &s.Expect, where)
		}
		if err == nil {
			err = checkLabels(s.Expect, where+": expect")
		}
	case "clear_marks":
		m, err = members(raw, where, []string{"op", "session"}, nil)
	case "guarded":
		m, err = members(raw, where, []string{"op", "name", "contexts", "tool", "args"},
			[]string{"action", "mutate", "expect_record", "expect_tool_args", "expect_error"})
		if err == nil {
			err = checkGuarded(m, where)
		}
	default:
		return s, fmt.Errorf("%s: unknown op %q", where, *probe.Op)
	}
	if err != nil {
		return s, err
	}
	for _, f := range []struct {
		k   string
		dst *string
	}{{"op", &s.Op}, {"name", &s.Name}, {"request_json", &s.RequestJSON}, {"expect_json", &s.ExpectJSON},
		{"expect_error", &s.ExpectError}, {"callback", &s.Callback}, {"scope", &s.Scope}, {"id", &s.ID}, {"reason", &s.Reason},
		{"session", &s.Session}} {
		if err := decodeKey(m, f.k, f.dst, where); err != nil {
			return s, err
		}
	}
	switch {
	case s.Op == "kill" || s.Op == "revive":
		err = oneOf(s.Scope, where+": scope", "agent", "tool", "session", "all")
	case (s.Op == "marks" || s.Op == "clear_marks") && s.Session == "":
		err = fmt.Errorf("%s: session is empty", where)
	case s.Op == "evaluate" && s.Callback != "":
		if err = oneOf(s.Callback, where+": callback", "fail"); err == nil {
			err = oneOf(s.ExpectError, where+": expect_error", CodeAuditFailed)
		}
	case s.Op == "evaluate" && s.ExpectError != "":
		err = oneOf(s.ExpectError, where+": expect_error", "request")
	case s.Op == "guarded" && s.ExpectError != "":
		err = oneOf(s.ExpectError, where+": expect_error", "denied", "approval_required", CodeInvalidArgument)
	}
	return s, err
}

// labelPattern is a mark label (SPEC §10; schema.json `label`).
var labelPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// checkLabels checks the `expect` of a marks step: unique mark labels.
func checkLabels(labels []string, where string) error {
	seen := map[string]bool{}
	for _, l := range labels {
		if !labelPattern.MatchString(l) {
			return fmt.Errorf("%s: %q is not a mark label", where, l)
		}
		if seen[l] {
			return fmt.Errorf("%s: %q twice", where, l)
		}
		seen[l] = true
	}
	return nil
}

// checkGuarded checks the parts of a guarded step the schema types (the step itself
// is not applicable in Go).
func checkGuarded(m map[string]json.RawMessage, where string) error {
	var contexts []json.RawMessage
	var tool, action string
	var args, mutate, toolArgs map[string]any
	for _, f := range []struct {
		k   string
		dst any
	}{{"contexts", &contexts}, {"tool", &tool}, {"action", &action}, {"args", &args}, {"mutate", &mutate},
		{"expect_tool_args", &toolArgs}} {
		if err := decodeKey(m, f.k, f.dst, where); err != nil {
			return err
		}
	}
	for i, c := range contexts {
		w := fmt.Sprintf("%s: contexts[%d]", where, i)
		cm, err := members(c, w, nil, []string{"agent", "chain", "session", "environment", "context"})
		if err != nil {
			return err
		}
		var agent, session, environment string
		var chain []string
		var context map[string]any
		for _, f := range []struct {
			k   string
			dst any
		}{{"agent", &agent}, {"chain", &chain}, {"session", &session}, {"environment", &environment}, {"context", &context}} {
			if err := decodeKey(cm, f.k, f.dst, w); err != nil {
				return err
			}
		}
	}
	if raw, ok := m["expect_record"]; ok {
		w := where + ": expect_record"
		rm, err := members(raw, w, []string{"agent", "tool", "outcome", "rules", "params_sha256"},
			[]string{"chain", "session", "environment", "action"})
		if err != nil {
			return err
		}
		var agent, tool, outcome, hash, session, environment, action string
		var rules, chain []string
		for _, f := range []struct {
			k   string
			dst any
		}{{"agent", &agent}, {"tool", &tool}, {"outcome", &outcome}, {"rules", &rules}, {"params_sha256", &hash},
			{"chain", &chain}, {"session", &session}, {"environment", &environment}, {"action", &action}} {
			if err := decodeKey(rm, f.k, f.dst, w); err != nil {
				return err
			}
		}
		if err := oneOf(outcome, w+": outcome", "allow", "deny", "require_approval"); err != nil {
			return err
		}
	}
	return nil
}

func loadVectors(t testing.TB) []vector {
	files, err := filepath.Glob("../../tests/vectors/generated/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	var vs []vector
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v, err := readVector(b, filepath.Base(f))
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs
}

// vectorCallback is the runner's audit callback (`audit_callback: true`).
type vectorCallback struct {
	calls int
	fail  bool
	last  string
}

func (c *vectorCallback) record(rec string) error {
	c.calls++
	c.last = rec
	if c.fail {
		return errors.New("the vector says this callback fails")
	}
	return nil
}

// auditOf is the exact text of the `audit` of a decision line.
func auditOf(t *testing.T, line string) string {
	var parts map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &parts); err != nil || parts["audit"] == nil {
		t.Fatalf("no audit in %s", line)
	}
	return string(parts["audit"])
}

// TestVectors runs every shared vector twice: EvaluateJSON byte for byte, and the typed
// Evaluate field by field against the parsed expect_json (on a second engine).
func TestVectors(t *testing.T) {
	var steps, notApplicable int
	vs := loadVectors(t)
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			if len(v.ConfigErrors) > 0 {
				for i, c := range v.ConfigErrors {
					steps++
					var opts []Option
					for k, val := range c.Options {
						opts = append(opts, WithOption(k, val))
					}
					e, err := NewEngineFromYAML(v.PolicyYAML, opts...)
					var ae *Error
					if e != nil {
						e.Close()
					}
					if !errors.As(err, &ae) || ae.Code != c.Code || ae.Status != StatusConfigInvalid ||
						ae.Field != c.Field || ae.Message != c.Message || len(ae.Errors) != 0 {
						t.Errorf("config error %d %v:\n got  %#v\n want code %s field %q message %q", i, c.Options, err,
							c.Code, c.Field, c.Message)
					}
				}
				return
			}
			if len(v.LoadErrors) > 0 {
				_, err := NewEngineFromYAML(v.PolicyYAML, v.Options...)
				var ae *Error
				if !errors.As(err, &ae) || ae.Status != StatusPolicyError || ae.Code != CodePolicyInvalid {
					t.Fatalf("want a policy error, got %v", err)
				}
				if len(ae.Errors) != len(v.LoadErrors) {
					t.Fatalf("%d load errors, want %d: %v", len(ae.Errors), len(v.LoadErrors), err)
				}
				for i, want := range v.LoadErrors {
					steps++
					got := ae.Errors[i]
					text := got.Message
					if got.Help != "" {
						text += " — " + got.Help
					}
					if got.File != "<yaml>" || got.Line != want.Line || got.Column != want.Column || !strings.Contains(text, want.Message) {
						t.Errorf("load error %d: got %+v, want <yaml>:%d:%d containing %q", i, got, want.Line, want.Column, want.Message)
					}
				}
				return
			}
			rawCB, typedCB := &vectorCallback{}, &vectorCallback{}
			engine := func(cb *vectorCallback) *Engine {
				opts := v.Options
				if v.AuditCallback {
					opts = append(slices.Clip(opts), WithAuditCallback(cb.record))
				}
				e, err := NewEngineFromYAML(v.PolicyYAML, opts...)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { e.Close() })
				return e
			}
			raw, typed := engine(rawCB), engine(typedCB)
			if h, _ := raw.PolicyHash(); h != v.PolicyHash {
				t.Errorf("policy hash %s, want %s", h, v.PolicyHash)
			}
			for i, s := range v.Steps {
				if s.Op == "guarded" {
					notApplicable++ // Go has no guarded-tool helper (README "Guarded-tool steps")
					continue
				}
				steps++
				switch s.Op {
				case "kill":
					for _, e := range []*Engine{raw, typed} {
						if err := e.Kill(s.Scope, s.ID, s.Reason); err != nil {
							t.Fatalf("step %d kill: %v", i, err)
						}
					}
				case "revive":
					for _, e := range []*Engine{raw, typed} {
						if _, err := e.Revive(s.Scope, s.ID); err != nil {
							t.Fatalf("step %d revive: %v", i, err)
						}
					}
				case "marks":
					for j, e := range []*Engine{raw, typed} {
						before := []*vectorCallback{rawCB, typedCB}[j].calls
						got, err := e.Marks(s.Session)
						if err != nil || got == nil || !slices.Equal(got, s.Expect) {
							t.Errorf("step %d marks %q (engine %d): got %#v, %v; want %#v", i, s.Session, j, got, err, s.Expect)
						}
						if []*vectorCallback{rawCB, typedCB}[j].calls != before {
							t.Errorf("step %d marks %q wrote a record", i, s.Session)
						}
					}
				case "clear_marks":
					for j, e := range []*Engine{raw, typed} {
						before := []*vectorCallback{rawCB, typedCB}[j].calls
						if _, err := e.ClearMarks(s.Session); err != nil {
							t.Fatalf("step %d clear_marks %q: %v", i, s.Session, err)
						}
						if []*vectorCallback{rawCB, typedCB}[j].calls != before {
							t.Errorf("step %d clear_marks %q wrote a record", i, s.Session)
						}
					}
				case "evaluate":
					evaluateStep(t, i, s, v.AuditCallback, raw, typed, rawCB, typedCB)
				}
			}
		})
	}
	t.Logf("%d vectors, %d steps, %d guarded-tool steps not applicable in Go", len(vs), steps, notApplicable)
}

func evaluateStep(t *testing.T, i int, s vectorStep, callback bool, raw, typed *Engine, rawCB, typedCB *vectorCallback) {
	t.Helper()
	before := rawCB.calls
	rawCB.fail = s.Callback == "fail"
	got, err := raw.EvaluateJSON(s.RequestJSON)
	rawCB.fail = false
	switch s.ExpectError {
	case "request":
		var ae *Error
		if !errors.As(err, &ae) || ae.Status != StatusInvalidRequest || ae.Code != CodeRequestInvalid {
			t.Errorf("step %d %q: want an invalid request error, got %v / %s", i, s.Name, err, got)
		}
		if rawCB.calls != before {
			t.Errorf("step %d %q: a refused request reached the callback", i, s.Name)
		}
		return // the typed engine skips it: no decision, no record
	case CodeAuditFailed:
		wantAuditFailed(t, i, s, err, rawCB.calls-before)
		var req Request
		if err := json.Unmarshal([]byte(s.RequestJSON), &req); err != nil {
			t.Fatalf("step %d %q: %v", i, s.Name, err)
		}
		typedBefore := typedCB.calls
		typedCB.fail = true
		_, err = typed.Evaluate(req)
		typedCB.fail = false
		wantAuditFailed(t, i, s, err, typedCB.calls-typedBefore)
		return
	}
	if err != nil {
		t.Errorf("step %d %q: %v", i, s.Name, err)
	} else if got != s.ExpectJSON {
		t.Errorf("step %d %q:\n got  %s\n want %s", i, s.Name, got, s.ExpectJSON)
	}
	if callback {
		if want := auditOf(t, s.ExpectJSON); rawCB.calls != before+1 || rawCB.last != want {
			t.Errorf("step %d %q: %d records to the callback, the last\n got  %s\n want %s", i, s.Name,
				rawCB.calls-before, rawCB.last, want)
		}
	}
	var req Request
	if err := json.Unmarshal([]byte(s.RequestJSON), &req); err != nil {
		t.Errorf("step %d %q: request does not fit Request: %v", i, s.Name, err)
		return
	}
	typedBefore := typedCB.calls
	d, err := typed.Evaluate(req)
	if err != nil {
		t.Errorf("step %d %q: Evaluate: %v", i, s.Name, err)
		return
	}
	want, _ := ParseDecision(s.ExpectJSON)
	if !reflect.DeepEqual(d, want) {
		t.Errorf("step %d %q: Evaluate:\n got  %+v\n want %+v", i, s.Name, d, want)
	}
	if callback && (typedCB.calls != typedBefore+1 || typedCB.last != auditOf(t, s.ExpectJSON)) {
		t.Errorf("step %d %q: Evaluate: the callback got %d records, the last %s", i, s.Name, typedCB.calls-typedBefore, typedCB.last)
	}
}

// wantAuditFailed: the call failed with audit_failed after the callback got its one record.
func wantAuditFailed(t *testing.T, i int, s vectorStep, err error, records int) {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeAuditFailed || ae.Status != StatusIOError {
		t.Errorf("step %d %q: want audit_failed, got %v", i, s.Name, err)
	}
	if records != 1 {
		t.Errorf("step %d %q: the callback got %d records, want 1", i, s.Name, records)
	}
}

// TestVectorsAreReadStrictly: the reader refuses what the schema does not allow.
func TestVectorsAreReadStrictly(t *testing.T) {
	good := `{"name":"x","description":"d","options":{"approval_key":"k"},"policy_yaml":"aegis: 1\n","policy_hash":"` +
		strings.Repeat("0", 64) + `","steps":[{"op":"evaluate","name":"s","request_json":"{}","expect_json":"{}"},` +
		`{"op":"kill","scope":"agent","id":"a","reason":""},{"op":"guarded","name":"g","contexts":[{"agent":"a"}],"tool":"t","args":{}},` +
		`{"op":"marks","session":"s-1","expect":["pii","untrusted"]},{"op":"clear_marks","session":"s-1"}]}`
	if _, err := readVector([]byte(good), "good"); err != nil {
		t.Fatalf("a good vector: %v", err)
	}
	for name, bad := range map[string]string{
		"unknown top-level key":    strings.Replace(good, `"name":"x"`, `"name":"x","colour":1`, 1),
		"key in another case":      strings.Replace(good, `"name":"x"`, `"NAME":"x"`, 1),
		"duplicate key":            strings.Replace(good, `"name":"x"`, `"name":"x","name":"y"`, 1),
		"unknown option":           strings.Replace(good, `"approval_key":"k"`, `"fsync":"never"`, 1),
		"option of the wrong type": strings.Replace(good, `"approval_key":"k"`, `"request_max_bytes":"5"`, 1),
		"null":                     strings.Replace(good, `"description":"d"`, `"description":null`, 1),
		"unknown step key":         strings.Replace(good, `"name":"s",`, `"name":"s","colour":1,`, 1),
		"unknown op":               strings.Replace(good, `"op":"evaluate"`, `"op":"evaluat"`, 1),
		"kill without reason":      strings.Replace(good, `,"reason":""`, ``, 1),
		"unknown context key":      strings.Replace(good, `{"agent":"a"}`, `{"agent":"a","colour":1}`, 1),
		"bad expect_error":         strings.Replace(good, `"expect_json":"{}"`, `"expect_error":"audit"`, 1),
		"callback without audit_callback": strings.Replace(good, `"expect_json":"{}"`,
			`"callback":"fail","expect_error":"audit_failed"`, 1),
		"audit_callback false":           strings.Replace(good, `"steps":`, `"audit_callback":false,"steps":`, 1),
		"marks: unknown key":             strings.Replace(good, `"session":"s-1","expect"`, `"session":"s-1","colour":1,"expect"`, 1),
		"marks without expect":           strings.Replace(good, `,"expect":["pii","untrusted"]`, ``, 1),
		"marks: expect not a list":       strings.Replace(good, `"expect":["pii","untrusted"]`, `"expect":"pii"`, 1),
		"marks: null expect":             strings.Replace(good, `"expect":["pii","untrusted"]`, `"expect":null`, 1),
		"marks: not a label":             strings.Replace(good, `"expect":["pii","untrusted"]`, `"expect":["-pii"]`, 1),
		"marks: a label twice":           strings.Replace(good, `"expect":["pii","untrusted"]`, `"expect":["pii","pii"]`, 1),
		"marks: empty session":           strings.Replace(good, `{"op":"marks","session":"s-1"`, `{"op":"marks","session":""`, 1),
		"clear_marks: unknown key":       strings.Replace(good, `{"op":"clear_marks","session":"s-1"}`, `{"op":"clear_marks","session":"s-1","expect":[]}`, 1),
		"clear_marks: no session":        strings.Replace(good, `{"op":"clear_marks","session":"s-1"}`, `{"op":"clear_marks"}`, 1),
		"clear_marks: session type":      strings.Replace(good, `{"op":"clear_marks","session":"s-1"}`, `{"op":"clear_marks","session":1}`, 1),
		"marks_ttl of the wrong type":    strings.Replace(good, `"approval_key":"k"`, `"marks_ttl":24`, 1),
		"max_sessions of the wrong type": strings.Replace(good, `"approval_key":"k"`, `"max_sessions":"5"`, 1),
	} {
		if _, err := readVector([]byte(bad), name); err == nil {
			t.Errorf("%s: read without an error", name)
		}
	}
}
