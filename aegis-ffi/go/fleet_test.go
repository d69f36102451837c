package aegis

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Fleet state (SPEC §11) through the Go options: WithState and its settings against a
// real redis-server started on a free loopback port with a password, stopped after.

const fleetPassword = "fleet-go-pw"

const fleetPolicy = `aegis: 1
rules:
  - id: pay
    match: {tool: pay}
    outcome: allow
limits:
  - id: budget
    match: {tool: pay}
    window: 1d
    max_calls: 1000
`

// startRedis starts a redis-server of the test's own and returns its URL (with the
// password); the server is stopped when the test ends.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not on PATH (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--requirepass", fleetPassword,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Sprintf("redis://:%s@127.0.0.1:%d/0", fleetPassword, port)
}

func fleetEngine(t *testing.T, url string, opts ...Option) *Engine {
	t.Helper()
	e, err := NewEngineFromYAML(fleetPolicy, append([]Option{WithState(url), WithStatePrefix("go-test:"),
		WithStateTimeoutMs(500), WithStateStaleMs(2000), WithStateMaxSkewMs(300_000)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// decideFleet decides one `pay` call by the agent "a".
func decideFleet(t *testing.T, e *Engine) Decision {
	t.Helper()
	d, err := e.Evaluate(Request{Agent: "a", Tool: "pay"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func TestFleetStateOptions(t *testing.T) {
	url := startRedis(t)
	a := fleetEngine(t, url)
	b := fleetEngine(t, url)
	waitFor(t, 2*time.Second, "an engine with state allows", func() bool { return decideFleet(t, a).Allowed })
	waitFor(t, 2*time.Second, "the second engine allows", func() bool { return decideFleet(t, b).Allowed })

	// a kill by one engine reaches the other within 1 s
	if err := a.Kill("tool", "pay", "stop"); err != nil {
		t.Fatal(err)
	}
	if d := decideFleet(t, a); d.Allowed || d.Rules[0] != "kill:tool:pay" {
		t.Fatalf("the killing engine: %+v", d)
	}
	took := waitFor(t, time.Second, "the kill reaches the second engine", func() bool {
		d := decideFleet(t, b)
		return !d.Allowed && len(d.Rules) == 1 && d.Rules[0] == "kill:tool:pay"
	})
	t.Logf("kill seen by the second engine after %v", took)
	if was, err := b.Revive("tool", "pay"); err != nil || !was {
		t.Fatalf("Revive = %v, %v", was, err)
	}
	waitFor(t, time.Second, "the revive reaches the first engine", func() bool { return decideFleet(t, a).Allowed })

	// a wrong password is config_invalid at construction
	wrong := strings.Replace(url, fleetPassword, "not-the-password", 1)
	_, err := NewEngineFromYAML(fleetPolicy, WithState(wrong))
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != "config_invalid" || ae.Field != "state" {
		t.Fatalf("wrong password: %v", err)
	}
	if strings.Contains(ae.Message, "not-the-password") {
		t.Fatalf("the message echoes the password: %s", ae.Message)
	}

	// a misspelt state option gets the did-you-mean
	_, err = NewEngineFromYAML(fleetPolicy, WithState(url), WithOption("state_timout_ms", 50))
	if !errors.As(err, &ae) || ae.Code != "config_invalid" || ae.Field != "state_timout_ms" ||
		ae.Message != "unknown option `state_timout_ms` (did you mean `state_timeout_ms`?)" {
		t.Fatalf("misspelt: %v", err)
	}
}

// With Redis unreachable, construction succeeds, calls that need the store are denied
// (state:unavailable) and Kill/Revive return state_unavailable.
func TestFleetStateUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	e := fleetEngine(t, fmt.Sprintf("redis://:pw@127.0.0.1:%d/0", port), WithStateTimeoutMs(50))
	d := decideFleet(t, e)
	if d.Allowed || len(d.Rules) != 1 || d.Rules[0] != "state:unavailable" {
		t.Fatalf("unreachable: %+v", d)
	}
	var ae *Error
	if err := e.Kill("tool", "pay", ""); !errors.As(err, &ae) || ae.Code != "state_unavailable" {
		t.Fatalf("Kill: %v", err)
	}
	if _, err := e.Revive("tool", "pay"); !errors.As(err, &ae) || ae.Code != "state_unavailable" {
		t.Fatalf("Revive: %v", err)
	}
}
