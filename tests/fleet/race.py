"""A fleet of 4 processes in 3 languages (2 Python, 1 Node, 1 Go) on one real
redis-server (SPEC §11), started here on a free loopback port with a password and
stopped after. usage: race.py AEGIS_CLI GO_WORKER

Three phases, each with its own prefix (a fleet of its own) and audit files:

* race (10 s): every member alternates `pay` (limit `spend`: sum of params.amount,
  max_sum 1500) and `call` (limit `calls`: max_calls 1000) at one fixed request time.
  The fleet never passes either limit, the members' counts equal what their audit files
  add up to, every call has exactly one record, the recorded counters of the allowed
  calls are exactly 1…N across all members (each allowed call counted once), and each
  recorded sum is the previous one plus the call's amount in binary64 (§6.3).
* watch: `aegis state kill tool ping` reaches every member within 1 s; revive likewise
  (measured from the command's start to each member's next decision showing it).
* fault: Redis frozen (SIGSTOP), then gone, then back empty, then accepted with
  `aegis state reset --accept`: no call waits past the timeout (+ scheduling slack),
  calls needing state are denied `state:unavailable`, calls needing none go on until
  the mirror is stale, limited calls are denied `state:reset` until the operator
  accepts, then the members recover by themselves; no exception, no lost record.

Worker protocol (worker.py, worker.js, go/main.go):
  worker MODE URL PREFIX POLICY AUDIT SECONDS [TIME]; the last stdout line is a JSON
  summary {"done", "calls", "errors", …}; `watch` prints {"t", "rules"} on each change.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
PASSWORD = "fleet-race-pw"
AMOUNTS = [1.5, 2.25, 0.1, 7.0, 3.3]
MAX_SUM = 1500.0
MAX_CALLS = 1000
TIMEOUT_MS = 100
# Four busy processes and a Redis on 2 cores: a call may be scheduled late.
SLACK_MS = 100

POLICY = f"""aegis: 1
default: deny
rules:
  - {{id: pay, match: {{tool: pay}}, outcome: allow}}
  - {{id: call, match: {{tool: call}}, outcome: allow}}
  - {{id: ping, match: {{tool: ping}}, outcome: allow}}
  - {{id: limited, match: {{tool: limited}}, outcome: allow}}
limits:
  - {{id: spend, match: {{tool: pay}}, window: 1d, sum: params.amount, max_sum: {MAX_SUM}}}
  - {{id: calls, match: {{tool: call}}, window: 1d, max_calls: {MAX_CALLS}}}
  - {{id: roomy, match: {{tool: limited}}, window: 1d, max_calls: 1000000000}}
"""

failures: List[str] = []


def check(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Redis:
    def __init__(self, port: int) -> None:
        self.port = port
        server = shutil.which("redis-server")
        if server is None:
            sys.exit("redis-server not on PATH (make redis installs it)")
        self.proc = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    sys.exit("redis-server did not start")
                time.sleep(0.02)

    def url(self) -> str:
        return f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()


class Member:
    """One worker process: its stdout lines are read as they come."""

    def __init__(self, name: str, argv: List[str], audit: str) -> None:
        self.name, self.audit = name, audit
        self.lines: List[Dict[str, Any]] = []
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def wait(self, timeout: float) -> Dict[str, Any]:
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        summary = self.lines[-1] if self.lines else {}
        check(rc == 0 and summary.get("done") is True, f"{self.name}: exits 0 with a summary (rc {rc})")
        return summary

    def records(self) -> List[Dict[str, Any]]:
        with open(self.audit, encoding="utf-8") as f:
            return [json.loads(line) for line in f]


def start(mode: str, url: str, prefix: str, policy: str, out: str, seconds: float,
          go_worker: str, fixed: str = "") -> List[Member]:
    members = []
    for name, cmd in [("python-1", [sys.executable, os.path.join(HERE, "worker.py")]),
                      ("python-2", [sys.executable, os.path.join(HERE, "worker.py")]),
                      ("node", ["node", os.path.join(HERE, "worker.js")]),
                      ("go", [go_worker])]:
        audit = os.path.join(out, f"{mode}-{name}.jsonl")
        argv = cmd + [mode, url, prefix, policy, audit, str(seconds)] + ([fixed] if fixed else [])
        members.append(Member(name, argv, audit))
    return members


def verified(aegis: str, m: Member, calls: int) -> None:
    recs = m.records()
    check(len(recs) == calls, f"{m.name}: {calls} calls, {len(recs)} audit records (exactly one each)")
    v = subprocess.run([aegis, "audit", "verify", m.audit], capture_output=True, text=True)
    check(v.returncode == 0 and v.stdout.startswith(f"ok: {calls} records"),
          f"{m.name}: aegis audit verify: {v.stdout.strip() or v.stderr.strip()}")


def race(aegis: str, url: str, policy: str, out: str, go_worker: str) -> None:
    print("== race: 4 members, 3 languages, 10 s on one budget", flush=True)
    fixed = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    members = start("race", url, "race:", policy, out, 10, go_worker, fixed)
    summaries = [m.wait(60) for m in members]
    allowed_pay: List[Tuple[int, float, float]] = []  # (calls after, sum after, amount)
    allowed_calls: List[int] = []
    total = 0
    for m, s in zip(members, summaries):
        check(s.get("errors") == 0, f"{m.name}: no call raised ({s.get('errors')})")
        verified(aegis, m, s.get("calls", -1))
        recs = m.records()
        total += len(recs)
        pay = call = 0
        for i, r in enumerate(recs):
            want_tool = "pay" if i % 2 == 0 else "call"
            if r["tool"] != want_tool:
                check(False, f"{m.name}: record {i} is for {r['tool']}, the call was {want_tool}")
                break
            if r["outcome"] != "allow":
                continue
            (lim,) = r["limits"]
            if want_tool == "pay":
                pay += 1
                allowed_pay.append((lim["calls"], lim["sum"], AMOUNTS[(i // 2) % len(AMOUNTS)]))
            else:
                call += 1
                allowed_calls.append(lim["calls"])
        check((pay, call) == (s.get("allowed_pay"), s.get("allowed_call")),
              f"{m.name}: allowed pay/call {s.get('allowed_pay')}/{s.get('allowed_call')} = its audit file's {pay}/{call}")
    print(f"     {total} calls in 10 s ({total / 10:.0f}/s for the fleet); "
          f"{len(allowed_pay)} pay and {len(allowed_calls)} call allowed", flush=True)
    check(sorted(allowed_calls) == list(range(1, MAX_CALLS + 1)),
          f"the allowed `call`s are counted 1…{MAX_CALLS} across the fleet, each once ({len(allowed_calls)})")
    allowed_pay.sort()
    check([c for c, _, _ in allowed_pay] == list(range(1, len(allowed_pay) + 1)),
          "the allowed `pay`s are counted 1…N across the fleet, each once")
    running = 0.0
    exact = True
    for _, recorded, amount in allowed_pay:
        running += amount  # binary64, in the fleet's order
        exact &= recorded == running
    check(exact, "each recorded sum is the previous one plus the call's amount (binary64, §6.3)")
    check(running <= MAX_SUM, f"the fleet's allowed sum {running!r} never passes max_sum {MAX_SUM}")
    check(running > MAX_SUM - max(AMOUNTS), f"the budget was used up ({running!r})")


def watch(aegis: str, url: str, policy: str, out: str, go_worker: str) -> None:
    print("== watch: aegis state kill / revive reach every member within 1 s", flush=True)
    members = start("watch", url, "watch:", policy, out, 6, go_worker)
    deadline = time.monotonic() + 20
    while not all(m.lines for m in members):
        if time.monotonic() > deadline:
            check(False, "every member decided a first call")
            break
        time.sleep(0.05)
    time.sleep(0.5)
    t_kill = time.time() * 1000
    subprocess.run([aegis, "state", "kill", "tool", "ping", "--reason", "race test", "--state", url,
                    "--prefix", "watch:"], check=True, capture_output=True)
    time.sleep(1.5)
    t_revive = time.time() * 1000
    subprocess.run([aegis, "state", "revive", "tool", "ping", "--state", url, "--prefix", "watch:"],
                   check=True, capture_output=True)
    for m in members:
        s = m.wait(30)
        verified(aegis, m, s.get("calls", -1))
        changes = [line for line in m.lines if "t" in line]
        killed = next((c["t"] for c in changes if c["t"] >= t_kill and c["rules"] == ["kill:tool:ping"]), None)
        revived = next((c["t"] for c in changes if c["t"] >= t_revive and c["rules"] == ["ping"]), None)
        k = None if killed is None else killed - t_kill
        r = None if revived is None else revived - t_revive
        check(k is not None and k < 1000, f"{m.name}: the kill reached it after {k and round(k, 1)} ms")
        check(r is not None and r < 1000, f"{m.name}: the revive reached it after {r and round(r, 1)} ms")


def fault(aegis: str, redis: Redis, policy: str, out: str, go_worker: str) -> Redis:
    print("== fault: frozen, gone, back empty, accepted", flush=True)
    url = redis.url()
    members = start("fault", url, "fault:", policy, out, 11, go_worker)
    deadline = time.monotonic() + 20
    # the members are up once their audit files have records
    while not all(os.path.exists(m.audit) and os.path.getsize(m.audit) > 0 for m in members):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(1)
    redis.proc.send_signal(signal.SIGSTOP)   # frozen: no call waits past the timeout
    time.sleep(1)
    redis.proc.send_signal(signal.SIGCONT)
    time.sleep(0.5)
    redis.stop()                             # gone: state needed → unavailable; then stale
    time.sleep(3)
    redis = Redis(redis.port)                # back, empty: state:reset until accepted
    time.sleep(1.5)
    subprocess.run([aegis, "state", "reset", "--accept", "--state", url, "--prefix", "fault:"],
                   check=True, capture_output=True)
    for m in members:
        s = m.wait(30)
        seen, last = s.get("seen", {}), s.get("last", {})
        check(s.get("errors") == 0, f"{m.name}: no call raised ({s.get('errors')})")
        verified(aegis, m, s.get("calls", -1))
        check(s.get("max_ms", 1e9) <= TIMEOUT_MS + SLACK_MS,
              f"{m.name}: the slowest call took {s.get('max_ms', 0):.1f} ms (state_timeout_ms {TIMEOUT_MS})")
        for key in ["limited state:unavailable", "ping state:unavailable", "limited state:reset"]:
            check(seen.get(key, 0) > 0, f"{m.name}: saw `{key}` ({seen.get(key, 0)} calls)")
        check(last == {"limited": "limited", "ping": "ping"}, f"{m.name}: recovered by itself ({last})")
        print(f"     {m.name}: {seen}", flush=True)
    return redis


def main() -> None:
    aegis, go_worker = sys.argv[1], sys.argv[2]
    out = tempfile.mkdtemp(prefix="aegis-fleet-race-")
    policy = os.path.join(out, "policy.yaml")
    with open(policy, "w", encoding="utf-8") as f:
        f.write(POLICY)
    redis = Redis(free_port())
    try:
        race(aegis, redis.url(), policy, out, go_worker)
        watch(aegis, redis.url(), policy, out, go_worker)
        redis = fault(aegis, redis, policy, out, go_worker)
    finally:
        redis.stop()
    if failures:
        sys.exit(f"fleet race: {len(failures)} failed (files in {out})")
    shutil.rmtree(out, ignore_errors=True)
    print("fleet race: all passed", flush=True)


if __name__ == "__main__":
    main()
