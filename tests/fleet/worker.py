"""A fleet member for tests/fleet/race.py, in Python (the Node and Go workers do
exactly the same; see race.py for the protocol).

usage: worker.py MODE URL PREFIX POLICY AUDIT SECONDS [TIME]"""

from __future__ import annotations

import json
import sys
import time

import aegis

AMOUNTS = [1.5, 2.25, 0.1, 7.0, 3.3]


def main() -> None:
    mode, url, prefix, policy, audit, seconds = sys.argv[1:7]
    fixed = sys.argv[7] if len(sys.argv) > 7 else None
    engine = aegis.Engine.from_path(policy, audit=audit, state=url, state_prefix=prefix,
                                    state_timeout_ms=100, state_stale_ms=2000)
    end = time.monotonic() + float(seconds)
    calls = errors = 0
    out: dict = {}
    if mode == "race":
        allowed_pay = allowed_call = 0
        while time.monotonic() < end:
            i = calls
            req: dict = {"agent": "racer", "tool": "pay" if i % 2 == 0 else "call", "time": fixed}
            if i % 2 == 0:
                req["params"] = {"amount": AMOUNTS[(i // 2) % len(AMOUNTS)]}
            calls += 1
            try:
                d = engine.evaluate(req)
            except aegis.AegisError as e:
                errors += 1
                print(json.dumps({"error": str(e)}), file=sys.stderr)
                continue
            if d.allowed:
                if req["tool"] == "pay":
                    allowed_pay += 1
                else:
                    allowed_call += 1
        out = {"allowed_pay": allowed_pay, "allowed_call": allowed_call}
    elif mode == "watch":
        last = None
        while time.monotonic() < end:
            calls += 1
            rules = engine.evaluate(agent="watcher", tool="ping").rules
            if rules != last:
                print(json.dumps({"t": time.time() * 1000, "rules": rules}), flush=True)
                last = rules
    elif mode == "fault":
        worst = 0.0
        seen: dict = {}
        last: dict = {}
        while time.monotonic() < end:
            tool = "limited" if calls % 2 == 0 else "ping"
            calls += 1
            t0 = time.monotonic()
            try:
                d = engine.evaluate(agent="faulty", tool=tool)
            except aegis.AegisError as e:
                errors += 1
                print(json.dumps({"error": str(e)}), file=sys.stderr)
                continue
            worst = max(worst, (time.monotonic() - t0) * 1000)
            key = f"{tool} {d.rules[0]}"
            seen[key] = seen.get(key, 0) + 1
            last[tool] = d.rules[0]
        out = {"max_ms": worst, "seen": seen, "last": last}
    engine.close()
    print(json.dumps({"done": True, "calls": calls, "errors": errors, **out}), flush=True)


if __name__ == "__main__":
    main()
