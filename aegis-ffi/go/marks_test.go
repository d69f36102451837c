package aegis

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// Session marks (SPEC §10): Marks, ClearMarks, WithMaxSessions, WithMarksTTL.

const marksPolicy = `aegis: 1
rules:
  - id: hr-reads
    match: {tool: files, action: read}
    outcome: allow
    marks: [pii]
  - id: web-fetch
    match: {tool: browser, action: fetch}
    outcome: allow
    marks: [{label: untrusted, ttl: 2h}]
  - id: lethal-trifecta
    match: {tool: send_email}
    when: {session.marks: {contains_all: [pii, untrusted]}}
    outcome: deny
  - id: mail
    match: {tool: send_email}
    outcome: allow
`

// marksAt is in the future, so the marks of requests made at it are live at the
// engine's clock (which Marks reads) now.
const marksAt = "2030-01-01T00:00:00Z"

func marksEngine(t *testing.T, opts ...Option) *Engine {
	t.Helper()
	e, err := NewEngineFromYAML(marksPolicy, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func wantMarks(t *testing.T, e *Engine, session string, want ...string) {
	t.Helper()
	got, err := e.Marks(session)
	if want == nil {
		want = []string{}
	}
	if err != nil || got == nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Marks(%q) = %#v, %v; want %#v", session, got, err, want)
	}
}

func decide(t *testing.T, e *Engine, tool, action, session, time string) Decision {
	t.Helper()
	d, err := e.Evaluate(Request{Agent: "a", Tool: tool, Action: action, Session: session, Time: time})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestMarks(t *testing.T) {
	e := marksEngine(t)
	wantMarks(t, e, "s-1")
	d := decide(t, e, "files", "read", "s-1", marksAt)
	if !d.Allowed || !reflect.DeepEqual(d.Audit["marks"], []any{"pii"}) {
		t.Fatalf("the record has the marks after the call: %+v", d)
	}
	wantMarks(t, e, "s-1", "pii")
	line, err := e.EvaluateJSON(`{"agent":"a","tool":"browser","action":"fetch","session":"s-1","time":"` + marksAt + `"}`)
	if err != nil || !strings.Contains(line, `"marks":["pii","untrusted"],"outcome":"allow"`) {
		t.Fatalf("%s %v", line, err)
	}
	wantMarks(t, e, "s-1", "pii", "untrusted")
	wantMarks(t, e, "s-2")
	if d := decide(t, e, "send_email", "", "s-1", marksAt); d.Outcome != Deny || !reflect.DeepEqual(d.Rules, []string{"lethal-trifecta"}) {
		t.Fatalf("the trifecta: %+v", d)
	}
	// a call without a session: the rule's marks are not recorded, and the decision says so
	d = decide(t, e, "files", "read", "", marksAt)
	if _, ok := d.Audit["marks"]; ok || !reflect.DeepEqual(d.Errors, []DecisionError{{Rule: "hr-reads", Path: "session", Message: "no session: marks not recorded"}}) {
		t.Fatalf("no session: %+v", d)
	}
	// marks survive a reload
	if err := e.ReloadYAML(marksPolicy); err != nil {
		t.Fatal(err)
	}
	wantMarks(t, e, "s-1", "pii", "untrusted")

	if cleared, err := e.ClearMarks("s-1"); !cleared || err != nil {
		t.Fatalf("ClearMarks: %v %v", cleared, err)
	}
	wantMarks(t, e, "s-1")
	if cleared, err := e.ClearMarks("s-1"); cleared || err != nil {
		t.Fatalf("ClearMarks twice: %v %v", cleared, err)
	}
	if cleared, err := e.ClearMarks("never-seen"); cleared || err != nil {
		t.Fatalf("ClearMarks of an unknown session: %v %v", cleared, err)
	}
	if d := decide(t, e, "send_email", "", "s-1", marksAt); !d.Allowed || !reflect.DeepEqual(d.Rules, []string{"mail"}) {
		t.Fatalf("after ClearMarks: %+v", d)
	}
	wantMarks(t, e, strings.Repeat("s", 256)) // the longest session
}

func TestMarksArguments(t *testing.T) {
	e := marksEngine(t)
	decide(t, e, "files", "read", "bot", marksAt)
	for _, c := range []struct {
		session, field, message string
		status                  Status
	}{
		// refused by the core, as kill ids are
		{"", "", "`session` must not be empty", StatusInvalidArgument},
		{"s\x01x", "", "`session` contains a control character", StatusInvalidArgument},
		{strings.Repeat("s", 257), "", "`session` is 257 bytes; the limit is 256", StatusInvalidArgument},
		// refused in Go: C would cut a NUL short (`bot\x00x` is not `bot`)
		{"bot\x00x", "session", "`session` contains a NUL byte (at byte 3); it would be cut by C", StatusInvalidArgument},
		{"bo\xfft", "session", "`session` is not valid UTF-8", StatusInvalidArgument},
	} {
		marks, err := e.Marks(c.session)
		ae := wantCode(t, err, CodeInvalidArgument, c.field)
		if marks != nil || ae.Status != c.status || ae.Message != c.message {
			t.Fatalf("Marks(%q): %#v %#v", c.session, marks, ae)
		}
		cleared, err := e.ClearMarks(c.session)
		ae = wantCode(t, err, CodeInvalidArgument, c.field)
		if cleared || ae.Status != c.status || ae.Message != c.message {
			t.Fatalf("ClearMarks(%q): %v %#v", c.session, cleared, ae)
		}
		if !errors.Is(err, &Error{Code: CodeInvalidArgument}) {
			t.Fatalf("errors.Is: %v", err)
		}
	}
	wantMarks(t, e, "bot", "pii") // nothing was cleared

	e.Close()
	if _, err := e.Marks("bot"); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
	if _, err := e.ClearMarks("bot"); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}

func TestMarksOptions(t *testing.T) {
	// max_sessions: a full table denies a call that would mark a session it does not hold
	e := marksEngine(t, WithMaxSessions(1))
	decide(t, e, "files", "read", "s-1", marksAt)
	d := decide(t, e, "files", "read", "s-2", marksAt)
	if d.Outcome != Deny || !reflect.DeepEqual(d.Rules, []string{"state:full"}) {
		t.Fatalf("a full table: %+v", d)
	}
	wantMarks(t, e, "s-2")
	if cleared, err := e.ClearMarks("s-1"); !cleared || err != nil {
		t.Fatalf("%v %v", cleared, err)
	}
	if d := decide(t, e, "files", "read", "s-2", marksAt); !d.Allowed {
		t.Fatalf("room again: %+v", d)
	}

	// marks_ttl: a mark without a ttl of its own lives that long from its request's time
	ago := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	short := marksEngine(t, WithMarksTTL("1s"))
	if d := decide(t, short, "files", "read", "s-1", ago); !reflect.DeepEqual(d.Audit["marks"], []any{"pii"}) {
		t.Fatalf("live at the request's time: %+v", d)
	}
	wantMarks(t, short, "s-1") // expired at the engine's clock
	if cleared, err := short.ClearMarks("s-1"); cleared || err != nil {
		t.Fatalf("only expired marks: %v %v", cleared, err)
	}
	long := marksEngine(t) // the default, 24h
	decide(t, long, "files", "read", "s-1", ago)
	wantMarks(t, long, "s-1", "pii")
	both := marksEngine(t, WithMarksTTL("90m"), WithMaxSessions(10_000_000))
	decide(t, both, "files", "read", "s-1", ago)
	wantMarks(t, both, "s-1", "pii")

	for _, c := range []struct {
		opt            Option
		field, message string
	}{
		{WithMaxSessions(0), "max_sessions", "`max_sessions` must be an integer number of sessions from 1 to 10000000, not 0"},
		{WithMaxSessions(10_000_001), "max_sessions", "`max_sessions` must be an integer number of sessions from 1 to 10000000, not 10000001"},
		{WithMarksTTL("0h"), "marks_ttl", "`marks_ttl` must be a duration like \"24h\" (a whole number above 0 and s, m, h or d), not \"0h\""},
		{WithMarksTTL("soon"), "marks_ttl", "`marks_ttl` must be a duration like \"24h\" (a whole number above 0 and s, m, h or d), not \"soon\""},
		{WithMarksTTL(""), "marks_ttl", "`marks_ttl` must be a duration like \"24h\" (a whole number above 0 and s, m, h or d), not \"\""},
		{WithOption("marks_ttl", 5), "marks_ttl", "`marks_ttl` must be a duration like \"24h\" (a whole number above 0 and s, m, h or d), not 5"},
	} {
		_, err := NewEngineFromYAML(marksPolicy, c.opt)
		wantConfig(t, err, c.field, c.message)
	}
}

func TestMarksFromACallbackAreAuditFailed(t *testing.T) {
	var e *Engine
	var inner []error
	var cleared bool
	e, err := NewEngineFromYAML(marksPolicy, WithAuditCallback(func(string) error {
		if len(inner) > 0 {
			return nil
		}
		_, marksErr := e.Marks("s-1")
		var clearErr error
		cleared, clearErr = e.ClearMarks("s-1")
		inner = append(inner, marksErr, clearErr)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// the outer call fails as a callback that calls its engine makes it
	_, err = e.Evaluate(Request{Agent: "a", Tool: "files", Action: "read", Session: "s-1", Time: marksAt})
	wantCode(t, err, CodeAuditFailed, "")
	if len(inner) != 2 || cleared {
		t.Fatalf("%v %v", inner, cleared)
	}
	for _, err := range inner {
		if ae := wantCode(t, err, CodeAuditFailed, ""); ae.Status != StatusIOError {
			t.Fatalf("status %v", ae.Status)
		}
	}
}

func TestMarksConcurrent(t *testing.T) {
	e := marksEngine(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			session := "s-" + itoa(g)
			for i := 0; i < 50; i++ {
				if _, err := e.Evaluate(Request{Agent: "a", Tool: "files", Action: "read", Session: session, Time: marksAt}); err != nil {
					errs <- err
					return
				}
				if m, err := e.Marks(session); err != nil || !reflect.DeepEqual(m, []string{"pii"}) {
					errs <- errors.New(session + ": marks " + strings.Join(m, ",") + " " + errString(err))
					return
				}
				if i%10 == 9 {
					if _, err := e.ClearMarks(session); err != nil {
						errs <- err
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
