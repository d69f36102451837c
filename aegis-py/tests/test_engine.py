"""Engine API, options, hostile values, errors, threads."""

from __future__ import annotations

import json
import math
import pathlib
import threading
from typing import Any, Dict, List

import pytest

import aegis

from conftest import POLICIES

POLICY = """
aegis: 1
rules:
  - id: small
    match: {tool: payments, action: create}
    when: {params.amount: {lte: 5000}}
    outcome: allow
  - id: big
    match: {tool: payments, action: create}
    when: {params.amount: {gt: 5000}}
    outcome: require_approval
    approvers: [finance-manager]
  - id: no-delete
    match: {tool: files, action: delete}
    outcome: deny
    reason: deleting files is not allowed
"""
T = "2026-01-05T10:00:00Z"


def engine(**kw: Any) -> aegis.Engine:
    return aegis.Engine.from_yaml(POLICY, **kw)


def pay(amount: Any, **extra: Any) -> Dict[str, Any]:
    r = {"agent": "fin", "tool": "payments", "action": "create", "params": {"amount": amount}, "time": T}
    r.update(extra)
    return r


def test_evaluate_dict_and_kwargs_agree() -> None:
    a, b = engine(), engine()
    d1 = a.evaluate(pay(10))
    d2 = b.evaluate(**pay(10))
    assert d1 == d2
    assert d1.outcome is aegis.Outcome.ALLOW and d1.allowed and d1.rules == ["small"]
    assert d1.outcome == "allow" and str(d1.outcome) == "allow"
    assert isinstance(d1.audit, dict) and d1.audit["seq"] == 0
    with pytest.raises(TypeError):
        a.evaluate(pay(1), agent="x")


def test_native_matches_json_bytes() -> None:
    a, b = engine(), engine()
    for amt in [1, 5000, 5000.0, 7000, 2**53 - 1]:
        req = pay(amt, chain=["sup"], session="s", environment="prod", context={"t": [1, True, None, "x", 1.5]})
        line = json.loads(a.evaluate_json(json.dumps(req)))
        d = b.evaluate(req)
        assert d.audit == line["audit"]
        assert d.outcome == line["outcome"]


def test_require_approval_and_grant() -> None:
    e = engine(approval_key=b"k")
    d = e.evaluate(pay(9000))
    assert d.outcome is aegis.Outcome.REQUIRE_APPROVAL
    assert d.approval is not None and d.approval.approvers == ["finance-manager"]
    tok = e.grant(d.approval.id, "alice", 3600)
    # the token's exp is wall-clock based; use a request time before it
    d2 = e.evaluate(pay(9000, approval=tok))
    assert d2.outcome is aegis.Outcome.ALLOW, d2
    assert d2.reason.startswith("approved by alice: ")
    assert d2.audit["approved_by"] == "alice"
    d3 = e.evaluate(pay(9000, approval=tok))  # one approval, one action
    assert d3.outcome is aegis.Outcome.REQUIRE_APPROVAL
    assert d3.errors[0]["message"] == "grant already used"


def test_approval_key_str_equals_bytes() -> None:
    a, b = engine(approval_key="k"), engine(approval_key=b"k")
    d = a.evaluate(pay(9000))
    assert d.approval is not None
    tok = a.grant(d.approval.id, "bob", 60)
    assert b.evaluate(pay(9000, approval=tok)).allowed


def test_signing_key() -> None:
    e = engine(signing_key=b"sk", signing_key_id="ops")
    d = e.evaluate(pay(1))
    assert d.audit["kid"] == "ops" and len(d.audit["sig"]) == 64


def test_kill_revive() -> None:
    e = engine()
    e.kill("agent", "fin", "compromised")
    d = e.evaluate(pay(1))
    assert d.outcome is aegis.Outcome.DENY and d.rules == ["kill:agent:fin"] and d.reason == "compromised"
    d = e.evaluate(pay(1, agent="other", chain=["fin"]))
    assert d.outcome is aegis.Outcome.DENY
    assert e.revive("agent", "fin") is True
    assert e.revive("agent", "fin") is False
    assert e.evaluate(pay(1)).allowed
    with pytest.raises(ValueError) as bad:
        e.kill("planet", "x")
    # the one message of every binding and the CLI (the core's)
    assert str(bad.value) == "unknown kill scope `planet` (agent, tool, session, all)"
    with pytest.raises(ValueError) as bad:
        e.kill("all", "x")
    assert str(bad.value) == "scope `all` takes the id `*`, not `x`"


def test_reload_yaml_and_hash() -> None:
    e = engine()
    h = e.policy_hash()
    e.reload_yaml("aegis: 1\ndefault: allow\n")
    assert e.policy_hash() != h
    with pytest.raises(aegis.PolicyError):
        e.reload_yaml("aegis: 1\nrules: [{id: x}]\n")
    assert e.evaluate(agent="a", tool="b").allowed  # old bundle stays


def test_from_path_and_reload(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("aegis: 1\ndefault: deny\n")
    e = aegis.Engine.from_path(p)
    assert not e.evaluate(agent="a", tool="t").allowed
    p.write_text("aegis: 1\ndefault: allow\n")
    e.reload()
    assert e.evaluate(agent="a", tool="t").allowed
    p.write_text("aegis: 1\ndefault: maybe\n")
    with pytest.raises(aegis.PolicyError) as ei:
        e.reload()
    assert ei.value.errors and ei.value.errors[0].file.endswith("p.yaml")
    assert aegis.Engine.from_path(str(POLICIES / "finance")).policy_hash()


def test_policy_error_locations() -> None:
    with pytest.raises(aegis.PolicyError) as ei:
        aegis.Engine.from_yaml("aegis: 1\nrules:\n  - id: r\n    when: {params.a: {lte : 1, lte : 2}}\n    outcome: allow\n")
    err = ei.value
    assert isinstance(err, aegis.AegisError)
    assert all(isinstance(x, aegis.PolicyLoadError) for x in err.errors)
    assert err.errors[0].file == "<yaml>" and err.errors[0].line == 4 and err.errors[0].column > 0
    with pytest.raises(aegis.PolicyError) as ei:
        aegis.Engine.from_yaml("aegis: 1\nrules:\n  - id: r\n    when: {params.a: {lt3: 1}}\n    outcome: allow\n")
    assert ei.value.errors[0].help is not None


def test_audit_file_sink(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "audit.jsonl"
    e = engine(audit=f, fsync="batch")
    for i in range(3):
        e.evaluate(pay(i))
    lines = f.read_text().splitlines()
    assert [json.loads(l)["seq"] for l in lines] == [0, 1, 2]
    e.close()  # releases the file (one audit file per engine)
    e2 = engine(audit=str(f))  # resumes the chain
    assert e2.evaluate(pay(1)).audit["seq"] == 3
    with pytest.raises(ValueError):
        engine(audit=f, fsync="sometimes")


def test_audit_file_sink_unwritable(tmp_path: pathlib.Path) -> None:
    with pytest.raises(aegis.AegisError):
        engine(audit=tmp_path / "missing-dir" / "a.jsonl")


def test_audit_callback() -> None:
    seen: List[Dict[str, Any]] = []
    e = engine(audit=seen.append)
    d = e.evaluate(pay(1))
    assert seen == [d.audit]


def test_audit_callback_failure_fails_closed() -> None:
    calls = []

    def bad(rec: Dict[str, Any]) -> None:
        calls.append(rec)
        raise OSError("disk full")

    e = engine(audit=bad)
    with pytest.raises(aegis.AegisError) as ei:
        e.evaluate(pay(1))
    assert "disk full" in str(ei.value)
    assert not isinstance(ei.value, (aegis.RequestError, aegis.PolicyDenied))
    with pytest.raises(aegis.AegisError):
        e.evaluate_json(json.dumps(pay(1)))


def test_audit_callback_reentrant_evaluate_is_refused() -> None:
    holder: Dict[str, aegis.Engine] = {}
    errors: List[BaseException] = []

    def cb(rec: Dict[str, Any]) -> None:
        try:
            holder["e"].evaluate(pay(1))
        except aegis.AegisError as e:
            errors.append(e)
            raise

    holder["e"] = engine(audit=cb)
    with pytest.raises(aegis.AegisError) as ei:
        holder["e"].evaluate(pay(1))
    assert ei.value.code == "audit_failed"
    assert errors and "callbacks must not use the engine" in str(errors[0])


def test_audit_callback_threads_no_deadlock() -> None:
    seen: List[int] = []
    lock = threading.Lock()

    def cb(rec: Dict[str, Any]) -> None:
        with lock:
            seen.append(rec["seq"])

    e = engine(audit=cb)
    errs: List[BaseException] = []

    def worker() -> None:
        try:
            for i in range(200):
                e.evaluate(pay(i))
        except BaseException as x:  # pragma: no cover
            errs.append(x)

    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in ts), "deadlock"
    assert not errs
    assert seen == list(range(1600))


class Weird:
    pass


HOSTILE = [
    ("huge int", {"n": 2**64}),
    ("negative huge int", {"n": -(2**63) - 1}),
    ("nan", {"n": math.nan}),
    ("inf", {"n": math.inf}),
    ("-inf", {"n": -math.inf}),
    ("bytes", {"b": b"x"}),
    ("set", {"s": {1, 2}}),
    ("frozenset", {"s": frozenset()}),
    ("object", {"o": Weird()}),
    ("non-str key", {1: "x"}),
    ("tuple key", {("a",): "x"}),
    ("nested bytes", {"a": [{"b": [b"x"]}]}),
    ("lone surrogate", {"s": "\ud800"}),
    ("complex", {"c": 1j}),
    ("bytearray", {"b": bytearray(b"x")}),
]


@pytest.mark.parametrize("name,params", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_params(name: str, params: Dict[Any, Any]) -> None:
    e = engine()
    with pytest.raises(aegis.RequestError) as ei:
        e.evaluate(agent="a", tool="t", params=params)
    assert ei.value.field == "params"
    # no decision, no record: the chain did not advance
    assert e.evaluate(agent="a", tool="t").audit["seq"] == 0


@pytest.mark.parametrize(
    "n, shown", [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")], ids=["nan", "inf", "-inf"]
)
def test_non_finite_numbers_get_the_cores_message(n: float, shown: str) -> None:
    # aegis_core::value::non_finite_message: the same words in Python, Node and Go
    e = engine()
    with pytest.raises(aegis.RequestError) as ei:
        e.evaluate(agent="a", tool="t", params={"n": [1, n]})
    assert (ei.value.field, str(ei.value)) == (
        "params",
        f"invalid request: `params.n.1` is {shown}; numbers must be finite",
    )
    with pytest.raises(aegis.RequestError) as ei:
        e.evaluate(agent="a", tool="t", context={"x": n})
    assert ei.value.field == "context" and str(ei.value).endswith(f"`context.x` is {shown}; numbers must be finite")


def test_cyclic_structures() -> None:
    e = engine()
    d: Dict[str, Any] = {}
    d["self"] = d
    with pytest.raises(aegis.RequestError) as ei:
        e.evaluate(agent="a", tool="t", params=d)
    assert ei.value.field == "params"
    lst: List[Any] = []
    lst.append(lst)
    with pytest.raises(aegis.RequestError):
        e.evaluate(agent="a", tool="t", context={"l": lst})


def nest(n: int) -> Dict[str, Any]:
    v: Dict[str, Any] = {}
    for _ in range(n - 1):
        v = {"a": v}
    return v


def test_depth_bound() -> None:
    e = engine()
    e.evaluate(agent="a", tool="t", params=nest(64))  # params itself is depth 1
    with pytest.raises(aegis.RequestError):
        e.evaluate(agent="a", tool="t", params=nest(65))
    with pytest.raises(aegis.RequestError):
        e.evaluate(agent="a", tool="t", params=nest(100000))


def test_request_field_errors() -> None:
    e = engine()
    cases = [
        ({"tool": "t"}, "agent"),
        ({"agent": "a", "tool": "t", "bogus": 1}, "bogus"),
        ({"agent": None, "tool": "t"}, "agent"),
        ({"agent": "", "tool": "t"}, "agent"),
        ({"agent": 5, "tool": "t"}, "agent"),
        ({"agent": True, "tool": "t"}, "agent"),
        ({"agent": "a", "tool": "t", "chain": "x"}, "chain"),
        ({"agent": "a", "tool": "t", "time": "yesterday"}, "time"),
        ({"agent": "a", "tool": "t", "params": [1]}, "params"),
    ]
    for req, field in cases:
        with pytest.raises(aegis.RequestError) as ei:
            e.evaluate(req)
        assert ei.value.field == field, (req, ei.value)
    with pytest.raises(aegis.RequestError):
        e.evaluate(["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(aegis.RequestError):
        e.evaluate_json("{not json")


def test_bool_is_not_a_number() -> None:
    e = engine()
    d = e.evaluate(pay(True))
    # fail closed: the allow rule errs (does not apply), the approval rule errs (applies)
    assert d.outcome is aegis.Outcome.REQUIRE_APPROVAL and d.rules == ["big"]
    assert d.errors and "found boolean" in d.errors[0]["message"]


def test_tuples_and_subclasses() -> None:
    import collections
    import enum

    class Color(str, enum.Enum):
        RED = "red"

    e = engine()
    d = e.evaluate(agent="a", tool="t", params={"t": (1, 2), "o": collections.OrderedDict(x=1), "c": Color.RED})
    assert d.outcome is aegis.Outcome.DENY


def test_threads_share_engine() -> None:
    e = engine()
    results: List[bool] = []

    def worker(n: int) -> None:
        for i in range(100):
            results.append(e.evaluate(pay(n * 100 + i)).allowed)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(results) == 400 and all(results)
    assert e.evaluate(pay(1)).audit["seq"] == 400
