"""Every shared vector (tests/vectors/generated/*.json), read strictly by the v2 schema
of tests/vectors/README.md: a key this runner does not know, a value of the wrong type
or an unknown step `op` fails the run (a file is never skipped).

* decision steps: byte for byte through `evaluate_json`, field for field through
  `evaluate` (native dicts, no JSON text), on two engines built with the vector's
  `options` as keyword arguments;
* `audit_callback`: both engines get a callable `audit`; after every step that
  decides, the callback has received exactly one record — the expected `audit` —
  before `evaluate` returned; a `callback: "fail"` step makes it raise, and the call
  fails with `audit_failed`;
* `marks` / `clear_marks` steps: `Engine.marks(session)` on both engines gives
  `expect` exactly; `Engine.clear_marks(session)` forgets them (no record);
* `config_errors`: each case's options as keyword arguments give exactly that
  `ConfigError` (code, field, message) and no engine;
* `load_errors`: a `PolicyError` with exactly those locations;
* guarded steps: `@secure_tool` inside nested `agent_context`s, `mutate` applied to
  the caller's argument objects from inside the audit callback, then the one record,
  the arguments the tool received and the error code compared.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import pytest

import aegis

from conftest import VECTORS

assert VECTORS, "no vectors found in tests/vectors/generated"


# ------------------------------------------------------------------ strict reading

_Type = Union[type, Tuple[type, ...]]


class SchemaError(AssertionError):
    pass


def _is(value: Any, t: _Type) -> bool:
    # bool is an int subclass in Python, but never an integer here (nor the reverse)
    if isinstance(value, bool):
        return t is bool or (isinstance(t, tuple) and bool in t)
    return isinstance(value, t)


def _keys(
    obj: Any, where: str, required: Mapping[str, _Type], optional: Optional[Mapping[str, _Type]] = None
) -> Dict[str, Any]:
    """`obj` is an object with exactly these keys (unknown keys are errors) of these
    types."""
    optional = optional or {}
    if not isinstance(obj, dict):
        raise SchemaError(f"{where}: expected an object, found {type(obj).__name__}")
    for k in obj:
        if k not in required and k not in optional:
            raise SchemaError(f"{where}: unknown key {k!r}")
    for k in required:
        if k not in obj:
            raise SchemaError(f"{where}: missing key {k!r}")
    for k, v in obj.items():
        t = required.get(k) or optional[k]
        if not _is(v, t):
            raise SchemaError(f"{where}.{k}: expected {t}, found {type(v).__name__}")
    return obj


def _one_of(value: Any, where: str, allowed: Tuple[str, ...]) -> None:
    if value not in allowed:
        raise SchemaError(f"{where}: {value!r} is not one of {allowed}")


def _strings(value: Any, where: str, nonempty: bool = False) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise SchemaError(f"{where}: expected a list of strings")
    if nonempty and not value:
        raise SchemaError(f"{where}: empty")
    return value


def _hex64(value: Any, where: str) -> None:
    if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
        raise SchemaError(f"{where}: expected 64 lowercase hex digits")


OPTIONS: Dict[str, _Type] = {
    "signing_key": str,
    "signing_key_id": str,
    "approval_key": str,
    "request_max_bytes": int,
    "request_max_depth": int,
    "max_limit_counters": int,
    "max_sessions": int,
    "marks_ttl": str,
}
SCOPES = ("agent", "tool", "session", "all")
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
CONTEXT: Dict[str, _Type] = {"agent": str, "chain": list, "session": str, "environment": str, "context": dict}
RECORD_REQUIRED: Dict[str, _Type] = {"agent": str, "tool": str, "outcome": str, "rules": list, "params_sha256": str}
RECORD_OPTIONAL: Dict[str, _Type] = {"chain": list, "session": str, "environment": str, "action": str}
GUARDED_ERRORS = ("denied", "approval_required", "invalid_argument")


def _step(s: Any, where: str, callback: bool) -> Dict[str, Any]:
    if not isinstance(s, dict) or "op" not in s:
        raise SchemaError(f"{where}: a step is an object with an `op`")
    op = s["op"]
    if op == "evaluate":
        base: Dict[str, _Type] = {"op": str, "name": str, "request_json": str}
        if "expect_json" in s:
            _keys(s, where, {**base, "expect_json": str})
        elif "callback" in s:
            _keys(s, where, {**base, "callback": str, "expect_error": str})
            _one_of(s["callback"], f"{where}.callback", ("fail",))
            _one_of(s["expect_error"], f"{where}.expect_error", ("audit_failed",))
            if not callback:
                raise SchemaError(f"{where}: `callback` needs `audit_callback: true`")
        else:
            _keys(s, where, {**base, "expect_error": str})
            _one_of(s["expect_error"], f"{where}.expect_error", ("request",))
        if not s["name"]:
            raise SchemaError(f"{where}.name: empty")
    elif op == "kill":
        _keys(s, where, {"op": str, "scope": str, "id": str, "reason": str})
        _one_of(s["scope"], f"{where}.scope", SCOPES)
    elif op == "revive":
        _keys(s, where, {"op": str, "scope": str, "id": str})
        _one_of(s["scope"], f"{where}.scope", SCOPES)
    elif op == "marks":
        _keys(s, where, {"op": str, "session": str, "expect": list})
        if not s["session"]:
            raise SchemaError(f"{where}.session: empty")
        expect = _strings(s["expect"], f"{where}.expect")
        for i, label in enumerate(expect):
            if not LABEL.fullmatch(label):
                raise SchemaError(f"{where}.expect[{i}]: not a mark label: {label!r}")
        if expect != sorted(set(expect)):
            raise SchemaError(f"{where}.expect: must be sorted and unique (marks() gives them so)")
    elif op == "clear_marks":
        _keys(s, where, {"op": str, "session": str})
        if not s["session"]:
            raise SchemaError(f"{where}.session: empty")
    elif op == "guarded":
        _keys(
            s,
            where,
            {"op": str, "name": str, "contexts": list, "tool": str, "args": dict},
            {"action": str, "mutate": dict, "expect_record": dict, "expect_tool_args": dict, "expect_error": str},
        )
        if not callback:
            raise SchemaError(f"{where}: guarded steps need `audit_callback: true`")
        for i, c in enumerate(s["contexts"]):
            _keys(c, f"{where}.contexts[{i}]", {}, CONTEXT)
            if "chain" in c:
                _strings(c["chain"], f"{where}.contexts[{i}].chain")
        if "expect_record" in s:
            r = _keys(s["expect_record"], f"{where}.expect_record", RECORD_REQUIRED, RECORD_OPTIONAL)
            _one_of(r["outcome"], f"{where}.expect_record.outcome", ("allow", "deny", "require_approval"))
            _strings(r["rules"], f"{where}.expect_record.rules", nonempty=True)
            _hex64(r["params_sha256"], f"{where}.expect_record.params_sha256")
            if "chain" in r:
                _strings(r["chain"], f"{where}.expect_record.chain")
        if "expect_error" in s:
            _one_of(s["expect_error"], f"{where}.expect_error", GUARDED_ERRORS)
        for k, v in s.get("mutate", {}).items():
            if k not in s["args"] or not isinstance(v, (list, dict)) or type(v) is not type(s["args"][k]):
                raise SchemaError(f"{where}.mutate.{k}: must replace the contents of a list or dict argument")
    else:
        raise SchemaError(f"{where}: unknown op {op!r}")
    return s


def read_vector(path: pathlib.Path) -> Dict[str, Any]:
    """The vector at `path`, checked against the v2 schema (every level)."""
    where = path.name
    v = _keys(
        json.loads(path.read_text(encoding="utf-8")),
        where,
        {"name": str, "description": str, "options": dict, "policy_yaml": str, "steps": list},
        {"policy_hash": str, "audit_callback": bool, "load_errors": list, "config_errors": list},
    )
    if not v["name"]:
        raise SchemaError(f"{where}.name: empty")
    _keys(v["options"], f"{where}.options", {}, OPTIONS)
    if v.get("audit_callback") is False:
        raise SchemaError(f"{where}.audit_callback: is `true` or absent")
    callback = v.get("audit_callback", False)
    special = [k for k in ("load_errors", "config_errors") if k in v]
    if len(special) > 1:
        raise SchemaError(f"{where}: both load_errors and config_errors")
    if special:
        if v["steps"] or not v[special[0]] or "policy_hash" in v or callback:
            raise SchemaError(f"{where}: a {special[0]} vector has `steps: []`, cases, no policy_hash or callback")
    else:
        _hex64(v.get("policy_hash"), f"{where}.policy_hash")
    for i, e in enumerate(v.get("load_errors", [])):
        _keys(e, f"{where}.load_errors[{i}]", {"line": int, "column": int, "message": str})
    for i, c in enumerate(v.get("config_errors", [])):
        _keys(
            c,
            f"{where}.config_errors[{i}]",
            {
                "options": dict,
                "options_camel": dict,
                "code": str,
                "field": str,
                "message": str,
                "field_camel": str,
                "message_camel": str,
            },
        )
        _one_of(c["code"], f"{where}.config_errors[{i}].code", ("config_invalid",))
    steps = [_step(s, f"{where}.steps[{i}]", callback) for i, s in enumerate(v["steps"])]
    if any(s["op"] == "guarded" for s in steps) and not all(s["op"] == "guarded" for s in steps):
        raise SchemaError(f"{where}: a vector with guarded steps has only guarded steps")
    return v


def test_the_reader_is_strict(tmp_path: pathlib.Path) -> None:
    good = json.loads((VECTORS[0]).read_text(encoding="utf-8"))
    read_vector(VECTORS[0])
    bad: List[Callable[[Dict[str, Any]], None]] = [
        lambda v: v.update(colour="red"),
        lambda v: v["options"].update(fsync="always"),
        lambda v: v["steps"].append({"op": "sleep", "name": "x"}),
        lambda v: v["steps"].append({"op": "evaluate", "name": "x", "request_json": "{}", "expect_json": "{}", "x": 1}),
        lambda v: v["steps"].append({"op": "evaluate", "name": "x", "request_json": "{}", "expect_error": "audit"}),
        lambda v: v["steps"].append({"op": "kill", "scope": "planet", "id": "x", "reason": ""}),
        lambda v: v["steps"].append({"op": "revive", "scope": "agent", "id": 5}),
        lambda v: v["steps"].append({"op": "marks", "session": "s"}),
        lambda v: v["steps"].append({"op": "marks", "session": "s", "expect": ["b", "a"]}),
        lambda v: v["steps"].append({"op": "marks", "session": "", "expect": []}),
        lambda v: v["steps"].append({"op": "marks", "session": "s", "expect": ["a b"]}),
        lambda v: v["steps"].append({"op": "marks", "session": "s", "expect": [], "name": "x"}),
        lambda v: v["steps"].append({"op": "clear_marks", "session": "s", "expect": []}),
        lambda v: v["steps"].append({"op": "clear_marks", "session": 5}),
        lambda v: v["options"].update(marks_ttl=24),
        lambda v: v["options"].update(max_sessions="10"),
        lambda v: v.update(audit_callback=False),
        lambda v: v["options"].update(request_max_bytes=True),
        lambda v: v.pop("steps"),
    ]
    for i, change in enumerate(bad):
        v = json.loads(json.dumps(good))
        change(v)
        p = tmp_path / f"bad-{i}.json"
        p.write_text(json.dumps(v))
        with pytest.raises(SchemaError):
            read_vector(p)


# ------------------------------------------------------------------ running


class Recorder:
    """An audit callback that keeps every record it is given; on request it raises
    (`fail_next`) or runs `during` first (the guarded steps' `mutate`)."""

    def __init__(self) -> None:
        self.records: List[Dict[str, Any]] = []
        self.fail_next = False
        self.during: Optional[Callable[[], None]] = None

    def __call__(self, record: Dict[str, Any]) -> None:
        self.records.append(record)
        if self.during is not None:
            self.during()
        if self.fail_next:
            self.fail_next = False
            raise OSError("the vector's callback fails this call")

    def take(self) -> List[Dict[str, Any]]:
        out, self.records = self.records, []
        return out


def _check_fields(d: aegis.Decision, exp: Dict[str, Any]) -> None:
    assert isinstance(d.outcome, aegis.Outcome)
    assert d.outcome == exp["outcome"]
    assert d.outcome.value == exp["outcome"]
    assert d.allowed is (exp["outcome"] == "allow")
    assert d.rules == exp["rules"]
    assert d.reason == exp["reason"]
    if "approval" in exp:
        assert d.approval is not None
        assert d.approval.id == exp["approval"]["id"]
        assert d.approval.approvers == exp["approval"]["approvers"]
    else:
        assert d.approval is None
    assert d.errors == exp.get("errors", [])
    assert d.audit == exp["audit"]
    assert list(d.audit) == list(exp["audit"]), "the record dict keeps the canonical key order"


def _same_record(got: Dict[str, Any], want: Dict[str, Any]) -> None:
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


def _run_config_errors(v: Dict[str, Any]) -> int:
    for case in v["config_errors"]:
        with pytest.raises(aegis.ConfigError) as ei:
            aegis.Engine.from_yaml(v["policy_yaml"], **case["options"])
        e = ei.value
        assert (e.code, e.field, str(e)) == (case["code"], case["field"], case["message"]), case
        assert e.errors == [] and isinstance(e, ValueError)
    return len(v["config_errors"])


def _run_load_errors(v: Dict[str, Any]) -> int:
    with pytest.raises(aegis.PolicyError) as ei:
        aegis.Engine.from_yaml(v["policy_yaml"], **v["options"])
    assert ei.value.code == "policy_invalid" and ei.value.field == ""
    got = ei.value.errors
    assert len(got) == len(v["load_errors"]), [str(e) for e in got]
    for g, want in zip(got, v["load_errors"]):
        assert isinstance(g, aegis.PolicyLoadError)
        assert g.file == "<yaml>"
        assert g.line == want["line"], str(g)
        assert g.column == want["column"], str(g)
        assert want["message"] in str(g), str(g)  # message, or message — help
    return len(got)


def _run_steps(v: Dict[str, Any]) -> int:
    callback = v.get("audit_callback", False)
    recorders = (Recorder(), Recorder())
    engines = []
    for r in recorders:
        opts: Dict[str, Any] = dict(v["options"])
        if callback:
            opts["audit"] = r
        engines.append(aegis.Engine.from_yaml(v["policy_yaml"], **opts))
    by_json, native = engines
    assert by_json.policy_hash() == v["policy_hash"]
    done = 0
    for step in v["steps"]:
        op = step["op"]
        if op == "guarded":
            _run_guarded(native, recorders[1], step)
        elif op == "marks":
            for e in engines:
                assert e.marks(step["session"]) == step["expect"], ("marks", step["session"])
        elif op == "clear_marks":
            for e in engines:
                assert isinstance(e.clear_marks(step["session"]), bool)
            assert all(not r.take() for r in recorders), "clearing marks records nothing"
        elif op in ("kill", "revive"):
            for e in engines:
                if op == "kill":
                    e.kill(step["scope"], step["id"], step["reason"])
                else:
                    e.revive(step["scope"], step["id"])
        elif step.get("expect_error") == "request":
            text = step["request_json"]
            with pytest.raises(aegis.RequestError):
                by_json.evaluate_json(text)
            try:
                req = json.loads(text)
            except ValueError:
                req = None  # not JSON at all: nothing native to try
            if isinstance(req, dict) and len(text.encode()) < (1 << 20):
                with pytest.raises(aegis.RequestError):
                    native.evaluate(req)
            assert all(not r.take() for r in recorders), "no record for a refused request"
        elif step.get("expect_error") == "audit_failed":
            for r in recorders:
                r.fail_next = True
            with pytest.raises(aegis.AegisError) as ei:
                by_json.evaluate_json(step["request_json"])
            assert ei.value.code == "audit_failed" and "the vector's callback fails" in str(ei.value)
            with pytest.raises(aegis.AegisError) as ei:
                native.evaluate(json.loads(step["request_json"]))
            assert ei.value.code == "audit_failed"
            assert [len(r.take()) for r in recorders] == [1, 1], "the callback was called once, and failed"
        else:
            out = by_json.evaluate_json(step["request_json"])
            assert out == step["expect_json"], step["name"]
            expected = json.loads(step["expect_json"])
            if callback:
                got = recorders[0].take()
                assert len(got) == 1, step["name"]
                _same_record(got[0], expected["audit"])
            d = native.evaluate(json.loads(step["request_json"]))
            _check_fields(d, expected)
            if callback:
                got = recorders[1].take()
                assert len(got) == 1 and got[0] == d.audit, step["name"]
        done += 1
    return done


def _replace_contents(target: Any, new: Any) -> None:
    if isinstance(target, list):
        target[:] = new
    else:
        target.clear()
        target.update(new)


def _run_guarded(engine: aegis.Engine, recorder: Recorder, step: Dict[str, Any]) -> None:
    name = step["name"]
    received: List[Dict[str, Any]] = []

    @aegis.secure_tool(engine, tool=step["tool"], action=step.get("action"))
    def tool(**kwargs: Any) -> str:
        received.append(kwargs)
        return "ran"

    # the very objects passed to the guarded function (fresh ones, never the vector's)
    args: Dict[str, Any] = json.loads(json.dumps(step["args"]))
    mutate = step.get("mutate", {})

    def during() -> None:
        for k, new in mutate.items():
            _replace_contents(args[k], json.loads(json.dumps(new)))

    recorder.take()
    recorder.during = during if mutate else None
    try:
        with contextlib.ExitStack() as stack:
            for c in step["contexts"]:
                stack.enter_context(aegis.agent_context(**c))
            if "expect_error" in step:
                with pytest.raises(aegis.AegisError) as ei:
                    tool(**args)
                assert ei.value.code == step["expect_error"], (name, ei.value)
            else:
                assert tool(**args) == "ran", name
    finally:
        recorder.during = None
    records = recorder.take()
    if "expect_record" in step:
        assert len(records) == 1, (name, records)
        rec, want = records[0], step["expect_record"]
        for k, value in want.items():
            assert rec.get(k) == value, (name, k, rec.get(k), value)
        for k in RECORD_OPTIONAL:
            if k not in want:
                assert k not in rec, (name, k, rec[k])
    else:
        assert records == [], (name, "nothing is decided, nothing recorded")
    if "expect_tool_args" in step:
        assert received == [step["expect_tool_args"]], (name, received)
        for k in mutate:
            assert args[k] == mutate[k], "the caller's objects were changed while deciding"
            assert received[0][k] is not args[k], "the tool got the snapshot, not the caller's object"
    else:
        assert received == [], (name, "the tool must not run")


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(path: pathlib.Path) -> None:
    v = read_vector(path)
    if "config_errors" in v:
        n = _run_config_errors(v)
    elif "load_errors" in v:
        n = _run_load_errors(v)
    else:
        n = _run_steps(v)
    assert n > 0, "a vector that checks nothing"
