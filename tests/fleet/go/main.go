// A fleet member for tests/fleet/race.py, in Go (the Python and Node workers do exactly
// the same; see race.py for the protocol).
//
// usage: worker MODE URL PREFIX POLICY AUDIT SECONDS [TIME]
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"aegis.example/aegis"
)

var amounts = []float64{1.5, 2.25, 0.1, 7.0, 3.3}

func main() {
	if len(os.Args) < 7 {
		fmt.Fprintln(os.Stderr, "usage: worker MODE URL PREFIX POLICY AUDIT SECONDS [TIME]")
		os.Exit(2)
	}
	mode, url, prefix, policy, audit := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	seconds, err := strconv.ParseFloat(os.Args[6], 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fixed := ""
	if len(os.Args) > 7 {
		fixed = os.Args[7]
	}
	engine, err := aegis.NewEngineFromPath(policy, aegis.WithAuditFile(audit), aegis.WithState(url),
		aegis.WithStatePrefix(prefix), aegis.WithStateTimeoutMs(100), aegis.WithStateStaleMs(2000))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	end := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	calls, errors := 0, 0
	out := map[string]any{}
	guarded := func(req aegis.Request) (aegis.Decision, bool) {
		d, err := engine.Evaluate(req)
		if err != nil {
			errors++
			fmt.Fprintf(os.Stderr, "{\"error\": %q}\n", err.Error())
			return d, false
		}
		return d, true
	}
	switch mode {
	case "race":
		allowedPay, allowedCall := 0, 0
		for time.Now().Before(end) {
			i := calls
			calls++
			req := aegis.Request{Agent: "racer", Tool: "call", Time: fixed}
			if i%2 == 0 {
				req.Tool = "pay"
				req.Params = map[string]any{"amount": amounts[(i/2)%len(amounts)]}
			}
			if d, ok := guarded(req); ok && d.Allowed {
				if req.Tool == "pay" {
					allowedPay++
				} else {
					allowedCall++
				}
			}
		}
		out["allowed_pay"], out["allowed_call"] = allowedPay, allowedCall
	case "watch":
		last := ""
		for time.Now().Before(end) {
			calls++
			d, ok := guarded(aegis.Request{Agent: "watcher", Tool: "ping"})
			if !ok {
				continue
			}
			if rules := strings.Join(d.Rules, ","); rules != last {
				line, _ := json.Marshal(map[string]any{"t": float64(time.Now().UnixNano()) / 1e6, "rules": d.Rules})
				fmt.Println(string(line))
				last = rules
			}
		}
	case "fault":
		worst := 0.0
		seen := map[string]int{}
		last := map[string]string{}
		for time.Now().Before(end) {
			tool := "ping"
			if calls%2 == 0 {
				tool = "limited"
			}
			calls++
			t0 := time.Now()
			d, ok := guarded(aegis.Request{Agent: "faulty", Tool: tool})
			if !ok {
				continue
			}
			if ms := float64(time.Since(t0).Nanoseconds()) / 1e6; ms > worst {
				worst = ms
			}
			seen[tool+" "+d.Rules[0]]++
			last[tool] = d.Rules[0]
		}
		out["max_ms"], out["seen"], out["last"] = worst, seen, last
	default:
		fmt.Fprintln(os.Stderr, "MODE is race, watch or fault")
		os.Exit(2)
	}
	engine.Close()
	out["done"], out["calls"], out["errors"] = true, calls, errors
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}
