package aegis

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The agent-tools workload (benches/bindings/gen.py: bundle(1000), 4,096 requests),
// read from $AEGIS_BENCH_WORKLOAD; the benchmarks skip when it is unset.
// benches/bindings/run.sh sets it.
func workload(b *testing.B) (*Engine, []string, []Request) {
	b.Helper()
	dir := os.Getenv("AEGIS_BENCH_WORKLOAD")
	if dir == "" {
		b.Skip("AEGIS_BENCH_WORKLOAD not set (see benches/bindings/run.sh)")
	}
	yaml, err := os.ReadFile(filepath.Join(dir, "bundle.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	e, err := NewEngineFromYAML(string(yaml))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	f, err := os.Open(filepath.Join(dir, "requests.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var lines []string
	var reqs []Request
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var r Request
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			b.Fatal(err)
		}
		lines = append(lines, sc.Text())
		reqs = append(reqs, r)
	}
	if len(lines) < 4096 {
		b.Fatalf("need at least 4,096 requests, found %d", len(lines))
	}
	// Both entry points must agree on every request before anything is timed.
	for i := range lines {
		d1, err := e.Evaluate(reqs[i])
		if err != nil {
			b.Fatal(err)
		}
		line, err := e.EvaluateJSON(lines[i])
		if err != nil {
			b.Fatal(err)
		}
		d2, err := ParseDecision(line)
		if err != nil {
			b.Fatal(err)
		}
		if d1.Outcome != d2.Outcome {
			b.Fatalf("Evaluate/EvaluateJSON disagree on %s: %s vs %s", lines[i], d1.Outcome, d2.Outcome)
		}
	}
	return e, lines, reqs
}

func BenchmarkWorkloadEvaluate(b *testing.B) {
	e, _, reqs := workload(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Evaluate(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWorkloadEvaluateJSON(b *testing.B) {
	e, lines, _ := workload(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.EvaluateJSON(lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWorkloadEvaluateOutcome(b *testing.B) {
	e, _, reqs := workload(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.EvaluateOutcome(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
	}
}
