#!/usr/bin/env python3
"""Per-call cost of the Python binding's evaluate(dict) / evaluate_json(str), beside
cedarpy on an equivalent Cedar policy set (same requests, same three-way decisions,
checked on every request before anything is timed).

    bench_py.py WORKLOAD_DIR [--rounds 7] [--no-cedar]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Callable, List

import aegis


def per_call_us(fn: Callable[[Any], Any], items: List[Any], rounds: int) -> float:
    """Median over `rounds` passes of the mean µs per call over all items (after a warm-up pass)."""
    for it in items:
        fn(it)
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for it in items:
            fn(it)
        samples.append((time.perf_counter_ns() - t0) / len(items) / 1000)
    return statistics.median(samples)


def cedar_request(r: dict) -> dict:
    return {
        "principal": f'Agent::"{r["agent"]}"',
        "action": f'Action::"{r.get("action", "none")}"',
        "resource": f'Tool::"{r["tool"]}"',
        "context": {"params": r.get("params", {})},
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--no-cedar", action="store_true")
    ap.add_argument("--cedar-timed", type=int, default=512,
                    help="requests timed through cedarpy (all are checked; Cedar is slow here)")
    a = ap.parse_args()
    with open(os.path.join(a.workload, "bundle.yaml"), encoding="utf-8") as f:
        engine = aegis.Engine.from_yaml(f.read())
    with open(os.path.join(a.workload, "requests.jsonl"), encoding="utf-8") as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    dicts = [json.loads(ln) for ln in lines]
    assert len(dicts) >= 4096, "need at least 4,096 requests"

    # The two entry points must agree before either is timed.
    outcomes = []
    for ln, d in zip(lines, dicts):
        o1 = json.loads(engine.evaluate_json(ln))["outcome"]
        o2 = engine.evaluate(d).outcome.value
        if o1 != o2:
            print(f"evaluate/evaluate_json disagree on {ln}: {o1} vs {o2}", file=sys.stderr)
            return 1
        outcomes.append(o1)
    mix = {o: outcomes.count(o) for o in sorted(set(outcomes))}

    res = {
        "requests": len(dicts),
        "outcomes": mix,
        "evaluate_dict_us": per_call_us(engine.evaluate, dicts, a.rounds),
        "evaluate_json_us": per_call_us(engine.evaluate_json, lines, a.rounds),
    }

    if not a.no_cedar:
        import cedarpy

        with open(os.path.join(a.workload, "cedar.cedar"), encoding="utf-8") as f:
            text = f.read()
        policies = cedarpy.PolicySet.from_str(text)
        entities = cedarpy.Entities.from_json_str("[]")
        # Cedar names policies policy0, policy1… in text order; approval ones are annotated.
        stmts = [s for s in text.split(";\n") if s.strip()]
        approval = {f"policy{i}" for i, s in enumerate(stmts) if "@approval(" in s}
        creqs = [cedar_request(d) for d in dicts]

        def three_way(res: Any) -> str:
            if res.decision != cedarpy.Decision.Allow:
                return "deny"
            return "require_approval" if approval & set(res.diagnostics.reasons) else "allow"

        bad = 0
        for ln, cr, want in zip(lines, creqs, outcomes):
            r = cedarpy.is_authorized(cr, policies, entities)
            if r.diagnostics.errors and r.decision == cedarpy.Decision.Allow:
                print(f"cedar errors on {ln}: {r.diagnostics.errors}", file=sys.stderr)
            got = three_way(r)
            if got != want:
                bad += 1
                if bad <= 5:
                    print(f"MISMATCH {ln}: aegis {want}, cedar {got} {r.diagnostics.reasons}", file=sys.stderr)
        if bad:
            print(f"{bad} of {len(lines)} decisions differ from Cedar: not reporting", file=sys.stderr)
            return 1
        res["cedar_decisions_match"] = len(lines)
        res["cedarpy_is_authorized_us"] = per_call_us(lambda r: cedarpy.is_authorized(r, policies, entities),
                                                      creqs[: a.cedar_timed], 3)
        res["cedarpy_over_evaluate_dict"] = round(res["cedarpy_is_authorized_us"] / res["evaluate_dict_us"], 2)
    for k in ("evaluate_dict_us", "evaluate_json_us", "cedarpy_is_authorized_us"):
        if k in res:
            res[k] = round(res[k], 3)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
