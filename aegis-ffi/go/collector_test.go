package aegis

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needsAuditFile is the core's message for a collector without an audit file.
const needsAuditFile = "`collector` ships the audit file; give `audit` too (a file path)"

func TestCollectorConfigJSON(t *testing.T) {
	no := false
	cases := []struct {
		c    CollectorConfig
		want string
	}{
		{CollectorConfig{Endpoint: "http://h:4318"}, `{"endpoint":"http://h:4318"}`},
		{CollectorConfig{}, `{}`},
		{CollectorConfig{
			Endpoint: "https://h", Headers: map[string]string{"Authorization": "Bearer x"}, ServiceName: "svc",
			Batch: 7, BatchAge: 50 * time.Millisecond, Gzip: &no, Cursor: "c.json",
			RequestTimeout: 2 * time.Second, MaxBackoff: 1500 * time.Microsecond, CloseTimeout: time.Minute,
		}, `{"batch":7,"batch_age_ms":50,"close_timeout_ms":60000,"cursor":"c.json","endpoint":"https://h",` +
			`"gzip":false,"headers":{"Authorization":"Bearer x"},"max_backoff_ms":2,"request_timeout_ms":2000,"service_name":"svc"}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.c)
		if err != nil || string(b) != c.want {
			t.Errorf("%+v:\n got  %s %v\n want %s", c.c, b, err, c.want)
		}
	}
}

// raw gives the collector settings as JSON text (keys a CollectorConfig cannot spell).
func raw(text string) Option { return WithOption("collector", json.RawMessage(text)) }

func TestCollectorOptionErrors(t *testing.T) {
	audit := WithAuditFile(filepath.Join(t.TempDir(), "audit.jsonl"))
	cases := []struct {
		opts []Option
		want string // the whole message, or a prefix ending in "…"
	}{
		{[]Option{audit, raw(`{"endpoint":"http://127.0.0.1:4318","endpiont":"x"}`)},
			"invalid collector configuration: unknown option `endpiont` (did you mean `endpoint`?)"},
		{[]Option{audit, WithCollector(CollectorConfig{Endpoint: "ftp://x"})},
			"invalid collector configuration: `endpoint` must be an http:// or https:// URL with a host, not `ftp://x`"},
		{[]Option{audit, WithCollector(CollectorConfig{})},
			"invalid collector configuration: `endpoint` is required…"},
		{[]Option{audit, WithCollector(CollectorConfig{Endpoint: "http://h", Batch: -1})},
			"invalid collector configuration: `batch` must be an integer from 1 to 10000…"},
		{[]Option{audit, WithCollector(CollectorConfig{Endpoint: "http://h", Headers: map[string]string{"X": "a\r\nEvil: 1"}})},
			"invalid collector configuration: header `X` has a control character…"},
		{[]Option{WithCollector(CollectorConfig{Endpoint: "http://127.0.0.1:4318"})}, needsAuditFile},
	}
	for i, c := range cases {
		_, err := NewEngineFromYAML(testPolicy, c.opts...)
		var ae *Error
		if !errors.As(err, &ae) || ae.Status != StatusConfigInvalid || ae.Code != CodeConfigInvalid || ae.Field != "collector" {
			t.Errorf("case %d: want a config_invalid error about `collector`, got %#v", i, err)
			continue
		}
		if prefix, ok := strings.CutSuffix(c.want, "…"); ok {
			if !strings.HasPrefix(ae.Message, prefix) {
				t.Errorf("case %d: %q\n does not start with %q", i, ae.Message, prefix)
			}
		} else if ae.Message != c.want {
			t.Errorf("case %d: %q\n want %q", i, ae.Message, c.want)
		}
	}
	if _, err := NewEngineFromPath("../../policies/finance", WithCollector(CollectorConfig{Endpoint: "http://h"})); err == nil || err.(*Error).Message != needsAuditFile {
		t.Errorf("from path without an audit file: %v", err)
	}
}

func TestNoCollector(t *testing.T) {
	e, err := NewEngineFromYAML(testPolicy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CollectorMetrics(); !errors.Is(err, ErrNoCollector) {
		t.Errorf("metrics: %v", err)
	}
	if err := e.FlushCollector(time.Second); !errors.Is(err, &Error{Status: StatusNoCollector}) {
		t.Errorf("flush: %v", err)
	}
	if _, err := e.CloseCollector(-1); !errors.Is(err, ErrNoCollector) {
		t.Errorf("close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := e.CollectorMetrics(); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// TestCollectorUnreachable: nothing listens at the endpoint; flush times out, close
// reports what is left, and the engine goes on deciding.
func TestCollectorUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close() // a port nobody listens on
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	e, err := NewEngineFromYAML(testPolicy, WithAuditFile(audit), WithFsync(FsyncNever),
		WithCollector(CollectorConfig{Endpoint: endpoint, RequestTimeout: 200 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.EvaluateJSON(`{"agent":"a","tool":"pay","params":{"amount":1}}`); err != nil {
		t.Fatal(err)
	}
	err = e.FlushCollector(300 * time.Millisecond)
	if !errors.Is(err, &Error{Status: StatusCollectorError}) || !strings.Contains(err.Error(), "flush timed out") {
		t.Errorf("flush: %v", err)
	}
	m, err := e.CollectorMetrics()
	if err != nil || m.Pending != 1 || m.Shipped != 0 || m.LastError == "" || m.Cursor != nil {
		t.Errorf("metrics: %+v %v", m, err)
	}
	m, err = e.CloseCollector(100 * time.Millisecond)
	if !errors.Is(err, &Error{Status: StatusCollectorError}) || m.Pending != 1 {
		t.Errorf("close: %+v %v", m, err)
	}
	if m2, err2 := e.CloseCollector(-1); err2 == nil || err2.Error() != err.Error() || m2.Pending != 1 {
		t.Errorf("close twice: %+v %v", m2, err2)
	}
	if _, err := e.EvaluateJSON(`{"agent":"a","tool":"pay","params":{"amount":1}}`); err != nil {
		t.Errorf("evaluate after close: %v", err)
	}
	if err := e.Close(); !errors.Is(err, &Error{Status: StatusCollectorError}) {
		t.Errorf("Close reports the collector's outcome: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("Close twice: %v", err)
	}
}

// rotel runs the real collector (env AEGIS_ROTEL) on free loopback ports and returns
// its base URL, the file its stdout (the received log records) goes to, and its process.
func rotel(t *testing.T) (string, string, *os.Process) {
	bin := os.Getenv("AEGIS_ROTEL")
	if bin == "" {
		t.Skip("AEGIS_ROTEL is unset (the rotel-agent binary; `make ship-rotel` installs it and the root Makefile exports it)")
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		t.Fatalf("AEGIS_ROTEL=%s is set but is not a file (%v): run `make ship-rotel`", bin, err)
	}
	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	httpPort, grpcPort := port(), port()
	for grpcPort == httpPort {
		grpcPort = port()
	}
	dir := t.TempDir()
	outPath := filepath.Join(dir, "rotel.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "start",
		"--otlp-http-endpoint", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--otlp-grpc-endpoint", fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"--exporter", "blackhole",
		"--debug-log", "logs", "--debug-log-verbosity", "detailed",
		"--log-file", filepath.Join(dir, "rotel.log"),
		"--pid-file", filepath.Join(dir, "rotel.pid"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("starting rotel: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); out.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT) // in case a test left it paused
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", httpPort)
	for deadline := time.Now().Add(20 * time.Second); ; {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("rotel exited early: %v", err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotel did not listen on %s within 20s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "http://" + addr, outPath, cmd.Process
}

func fileLines(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// waitReceived polls rotel's output (up to 10 s) until each line shows up as a received
// log record: `-> aegis.hash: Str(<hash>)` and `Body: Str(<the exact line>)`.
func waitReceived(t *testing.T, outPath string, lines []string) {
	t.Helper()
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		hashes, bodies := map[string]bool{}, map[string]bool{}
		if f, err := os.Open(outPath); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<24)
			for sc.Scan() {
				l := sc.Text()
				if body, ok := strings.CutPrefix(l, "Body: Str("); ok && strings.HasSuffix(body, ")") {
					bodies[strings.TrimSuffix(body, ")")] = true
				} else if i := strings.Index(l, "-> aegis.hash: Str("); i >= 0 && strings.HasSuffix(l, ")") {
					hashes[strings.TrimSuffix(l[i+len("-> aegis.hash: Str("):], ")")] = true
				}
			}
			f.Close()
		}
		missing = missing[:0]
		for _, line := range lines {
			var rec struct {
				Hash string `json:"hash"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Hash == "" {
				t.Fatalf("not a record: %q", line)
			}
			if !hashes[rec.Hash] || !bodies[line] {
				missing = append(missing, rec.Hash)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records not received by rotel (output in %s): %v", len(missing), len(lines), outPath, missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCollectorRotel ships decisions to a REAL OpenTelemetry collector (rotel).
func TestCollectorRotel(t *testing.T) {
	endpoint, outPath, proc := rotel(t)
	reqs := fileLines(t, "../../policies/finance/requests.jsonl")
	dir := t.TempDir()
	audit := filepath.Join(dir, "audit.jsonl")
	e, err := NewEngineFromPath("../../policies/finance", WithAuditFile(audit), WithFsync(FsyncBatch),
		WithCollector(CollectorConfig{Endpoint: endpoint, BatchAge: 50 * time.Millisecond, ServiceName: "go-test"}))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const n = 24
	for i := 0; i < n; i++ {
		if _, err := e.EvaluateJSON(reqs[i%len(reqs)]); err != nil {
			t.Fatalf("evaluate %d: %v", i, err)
		}
	}
	if err := e.FlushCollector(10 * time.Second); err != nil {
		t.Fatalf("flush: %v", err)
	}
	lines := fileLines(t, audit)
	m, err := e.CollectorMetrics()
	if err != nil || len(lines) != n || m.Shipped != uint64(len(lines)) || m.Pending != 0 || m.LastError != "" ||
		m.Cursor == nil || m.Cursor.Seq != n-1 || m.Batches == 0 {
		t.Fatalf("metrics after flush (%d lines): %+v %v", len(lines), m, err)
	}
	waitReceived(t, outPath, lines)

	m, err = e.CloseCollector(-1)
	if err != nil || m.Shipped != n || m.Pending != 0 {
		t.Fatalf("close: %+v %v", m, err)
	}
	if m2, err := e.CloseCollector(0); err != nil || m2.Shipped != n {
		t.Errorf("close twice: %+v %v", m2, err)
	}
	if m2, err := e.CollectorMetrics(); err != nil || m2.Shipped != n {
		t.Errorf("metrics after close: %+v %v", m2, err)
	}
	if err := e.FlushCollector(time.Second); err != nil {
		t.Errorf("flush after close with nothing pending: %v", err)
	}
	if _, err := e.EvaluateJSON(reqs[0]); err != nil {
		t.Errorf("evaluate after close: %v", err)
	}
	if err := e.FlushCollector(200 * time.Millisecond); !errors.Is(err, &Error{Status: StatusCollectorError}) ||
		!strings.Contains(err.Error(), "shipping has stopped") {
		t.Errorf("flush after close with one pending: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	// Close closes the collector first, with a final attempt bounded by CloseTimeout: with
	// rotel paused (SIGSTOP) while the records are written, one-record requests queue up,
	// and once it is resumed the final attempt delivers them all (a collector merely
	// dropped would deliver at most the one in flight).
	audit2 := filepath.Join(dir, "audit2.jsonl")
	e2, err := NewEngineFromPath("../../policies/finance", WithAuditFile(audit2), WithFsync(FsyncNever),
		WithCollector(CollectorConfig{Endpoint: endpoint, Batch: 1, CloseTimeout: 30 * time.Second, ServiceName: "go-test"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		// other requests than e's: its records (fixed times) must not match these
		if _, err := e2.EvaluateJSON(reqs[(i+7)%len(reqs)]); err != nil {
			_ = proc.Signal(syscall.SIGCONT)
			t.Fatal(err)
		}
	}
	if err := proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := e2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitReceived(t, outPath, fileLines(t, audit2))
}
