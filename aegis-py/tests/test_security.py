"""Issue 15 item 5 and issue 16 in the Python binding (SPEC §9a, §17): `**kwargs`
flattened, empty keys and bad key ids refused, byte strings / lone surrogates / big
integers refused, NULs in control arguments refused (never cut off), bounded
conversion, audit callbacks that are async / raise / re-enter, one audit file per
engine, and the `.code` of every error. Every test uses the real engine."""

from __future__ import annotations

import asyncio
import gc
import json
import pathlib
import threading
import time
import warnings
from typing import Any, Callable, Dict, List

import pytest

import aegis
from aegis import agent_context, secure_tool

POLICY = """
aegis: 1
default: deny
rules:
  - id: no-bcc
    match: {tool: email}
    when: {params.bcc: {exists: true}}
    outcome: deny
  - id: email
    match: {tool: email}
    outcome: allow
  - id: no-secret
    match: {tool: notes}
    when: {params.text: {contains_any: [secret]}}
    outcome: deny
  - id: notes
    match: {tool: notes}
    outcome: allow
  - id: big-pay
    match: {tool: pay}
    when: {params.amount: {gt: 100}}
    outcome: require_approval
    approvers: [boss]
  - id: pay
    match: {tool: pay}
    outcome: allow
  - id: t
    match: {tool: t}
    outcome: allow
"""

T = "2026-01-05T10:00:00Z"


def make(**options: Any) -> aegis.Engine:
    return aegis.Engine.from_yaml(POLICY, **options)


def tr() -> Dict[str, Any]:
    return {"agent": "a", "tool": "t", "time": T}


def note(text: Any) -> Dict[str, Any]:
    return {"agent": "a", "tool": "notes", "time": T, "params": {"text": text}}


# ---------------------------------------------------------------- 1. **kwargs (§9a)


def test_kwargs_are_params_at_the_top_level() -> None:
    e = make()
    sent: List[str] = []

    @secure_tool(e, tool="email")
    def email(to: str, subject: str = "", **extra: Any) -> str:
        sent.append(to)
        return "sent"

    with agent_context(agent="mailer"):
        assert email("bob@example.com", subject="hi", cc="x@example.com") == "sent"
        with pytest.raises(aegis.PolicyDenied) as ei:
            email("bob@example.com", bcc="eve@evil.net")  # was params.extra.bcc
    assert ei.value.decision.rules == ["no-bcc"] and ei.value.code == "denied"
    assert sent == ["bob@example.com"]  # the bcc call never ran


def test_kwargs_flattened_in_the_request_and_args_stay_a_list() -> None:
    e = make()
    seen: List[Dict[str, Any]] = []
    orig = e._guarded

    class Spy:
        def _guarded(self, req: Dict[str, Any]) -> Any:
            # the request as decided: the params as the engine converted them
            decided = orig(req)
            seen.append({**req, "params": decided[1]})
            return decided

    @secure_tool(Spy(), tool="t")  # type: ignore[arg-type]
    def f(a: int, *rest: int, b: int = 2, **kw: Any) -> None:
        pass

    with agent_context(agent="x"):
        f(1, 7, 8, c=3, d={"e": 4})
        f(1)
    # the request is the snapshot: `rest` is a list, as the engine sees it
    assert seen[0]["params"] == {"a": 1, "rest": [7, 8], "b": 2, "c": 3, "d": {"e": 4}}
    assert seen[1]["params"] == {"a": 1, "rest": [], "b": 2}
    d = e.evaluate(seen[0])
    assert d.allowed


def test_kwargs_key_that_collides_with_a_named_param_is_refused() -> None:
    # Only a positional-only parameter (or the *args name) can collide with a
    # **kwargs key: the call is refused, the body never runs.
    e = make()
    ran: List[Any] = []

    @secure_tool(e, tool="t")
    def f(a: int, /, **kw: Any) -> None:
        ran.append((a, kw))

    @secure_tool(e, tool="t")
    def g(*args: Any, **kw: Any) -> None:
        ran.append((args, kw))

    with agent_context(agent="x"):
        with pytest.raises(aegis.ArgumentError, match="given twice") as ei:
            f(1, a=2)
        assert ei.value.code == "invalid_argument"
        with pytest.raises(aegis.ArgumentError):
            g(1, args=[2])
        f(1, b=2)
    assert ran == [(1, {"b": 2})]


# ------------------------------------------------------- 2. keys and key ids (§9a)


@pytest.mark.parametrize("option", ["approval_key", "signing_key"])
@pytest.mark.parametrize("empty", [b"", "", bytearray()], ids=["bytes", "str", "bytearray"])
def test_empty_keys_are_config_invalid(option: str, empty: Any) -> None:
    with pytest.raises(aegis.ConfigError) as ei:
        make(**{option: empty})
    assert ei.value.code == "config_invalid" and ei.value.field == option
    assert isinstance(ei.value, aegis.AegisError) and isinstance(ei.value, ValueError)
    with pytest.raises(aegis.ConfigError):
        aegis.Engine.from_path(pathlib.Path(__file__).parent.parent.parent / "policies" / "finance", **{option: empty})


def test_an_empty_approval_key_never_issues_or_accepts_grants() -> None:
    # The forged grant of the review: MACed with the empty key. With no engine
    # accepting an empty key, a grant needs the real one.
    good = make(approval_key=b"real")
    d = good.evaluate(agent="a", tool="pay", time=T, params={"amount": 500})
    assert d.approval is not None
    import base64
    import hashlib
    import hmac

    payload = base64.urlsafe_b64encode(
        json.dumps({"by": "mallory", "exp": 4102444800, "id": d.approval.id}, separators=(",", ":")).encode()
    ).rstrip(b"=")
    mac = base64.urlsafe_b64encode(hmac.new(b"", payload, hashlib.sha256).digest()).rstrip(b"=")
    forged = f"v1.{payload.decode()}.{mac.decode()}"
    d2 = good.evaluate(agent="a", tool="pay", time=T, params={"amount": 500}, approval=forged)
    assert d2.outcome is aegis.Outcome.REQUIRE_APPROVAL and d2.errors


@pytest.mark.parametrize("kid", ["ops\x00evil", "", "a\x07b", "x" * 257, "\ud800"])
def test_bad_signing_key_ids_are_config_invalid(kid: str) -> None:
    with pytest.raises(aegis.ConfigError) as ei:
        make(signing_key=b"k", signing_key_id=kid)
    assert ei.value.code == "config_invalid" and ei.value.field == "signing_key_id"


@pytest.mark.parametrize("key", ["\ud800", [1, 2], (1, 2), 5, memoryview(b"k")], ids=repr)
def test_bad_key_types_are_config_invalid(key: Any) -> None:
    with pytest.raises(aegis.ConfigError) as ei:
        make(approval_key=key)
    assert ei.value.code == "config_invalid" and ei.value.field == "approval_key"


def test_bytearray_and_str_keys_are_the_same_key() -> None:
    a, b = make(signing_key=bytearray(b"k"), signing_key_id="ops"), make(signing_key="k", signing_key_id="ops")
    r = dict(agent="a", tool="t", time=T)
    assert a.evaluate(r).audit["sig"] == b.evaluate(r).audit["sig"]


def test_other_bad_options_are_config_invalid(tmp_path: pathlib.Path) -> None:
    for kwargs, field in [
        ({"fsync": "sometimes"}, "fsync"),
        ({"audit": 42}, "audit"),
        ({"audit": str(tmp_path / "a\x00b.jsonl")}, "audit"),
        ({"collector": {"endpiont": "http://h"}, "audit": str(tmp_path / "c.jsonl")}, "collector"),
        ({"collector": {"endpoint": "http://h"}}, "collector"),
        ({"collector": [1]}, "collector"),
    ]:
        with pytest.raises(aegis.ConfigError) as ei:
            make(**kwargs)
        assert ei.value.code == "config_invalid" and ei.value.field == field, kwargs


# ------------------------------------- 3. bytes, lone surrogates, big ints (§9a)

BYTES = [b"the secret is 42", bytearray(b"the secret is 42"), memoryview(b"the secret is 42")]


@pytest.mark.parametrize("value", BYTES, ids=lambda v: type(v).__name__)
def test_byte_strings_are_request_errors_everywhere(value: Any) -> None:
    e = make()
    for req, field in [
        (note(value), "params"),
        (note(["ok", value]), "params"),
        (note({"deep": [{"x": value}]}), "params"),
        ({**note("hi"), "context": {"blob": value}}, "context"),
        ({**note("hi"), "agent": value}, "agent"),
        ({**note("hi"), "chain": [value]}, "chain"),
    ]:
        with pytest.raises(aegis.RequestError) as ei:
            e.evaluate(req)
        assert ei.value.code == "request_invalid" and ei.value.field == field, req
    with pytest.raises(aegis.RequestError, match="byte string"):
        e.evaluate(note(value))
    # nothing was recorded, nothing decided; the engine still works
    assert e.evaluate(note("hello")).audit["seq"] == 0


def test_byte_string_keys_are_request_errors() -> None:
    e = make()
    with pytest.raises(aegis.RequestError) as ei:
        e.evaluate({**note("x"), "params": {b"text": "the secret"}})
    assert ei.value.field == "params" and "bytes" in str(ei.value)
    with pytest.raises(aegis.RequestError):
        e.evaluate({**note("x"), "context": {"k": {(1, 2): 1, b"x": 2}}})


@pytest.mark.parametrize("s", ["\ud800", "a\udfffb", "\udc80", "x\ud83d"], ids=ascii)
def test_lone_surrogates_are_request_errors_never_fffd(s: str) -> None:
    e = make()
    cases = [
        (note(s), "params"),
        ({**note("x"), "params": {s: 1}}, "params"),
        ({**note("x"), "params": {"a": {s: 1}}}, "params"),
        ({**note("x"), "context": {"k": [s]}}, "context"),
        ({**note("x"), "agent": s}, "agent"),
        ({**note("x"), "chain": ["ok", s]}, "chain"),
        ({**note("x"), "session": s}, "session"),
    ]
    for req, field in cases:
        with pytest.raises(aegis.RequestError) as ei:
            e.evaluate(req)
        assert ei.value.field == field and "lone surrogate" in str(ei.value), req
    with pytest.raises(aegis.RequestError):
        e.evaluate_json('{"agent":"a","tool":"notes","params":{"text":"%s"}}' % s)
    # a real U+FFFD is ordinary text
    assert e.evaluate(note("\ufffd")).allowed


@pytest.mark.parametrize(
    "n",
    [2**53, -(2**53), 9007199254740993, 1234567890123456789, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, 2**1000, 10**400],
    ids=str,
)
def test_integers_beyond_2_pow_53_are_request_errors(n: int) -> None:
    e = make()
    for req, field in [
        ({**tr(), "params": {"account": n}}, "params"),
        ({**tr(), "params": {"a": [1, {"b": n}]}}, "params"),
        ({**tr(), "context": {"id": n}}, "context"),
    ]:
        with pytest.raises(aegis.RequestError) as ei:
            e.evaluate(req)
        assert ei.value.code == "request_invalid" and ei.value.field == field
        assert "9007199254740991" in str(ei.value) and "strings" in str(ei.value)
    assert e.evaluate({**tr(), "params": {"account": str(n)}}).allowed


def test_integer_subclasses_beyond_the_bound_are_refused_too() -> None:
    class Id(int):
        def __index__(self) -> int:
            return 1

        def __float__(self) -> float:
            return 1.0

    e = make()
    with pytest.raises(aegis.RequestError):
        e.evaluate({**note("x"), "params": {"account": Id(2**70)}})
    with pytest.raises(aegis.RequestError):
        e.evaluate({**note("x"), "params": {"account": Id(2**60)}})
    # read by its stored value, not by what __index__/__float__ claim
    d = e.evaluate({**note("x"), "params": {"account": Id(7)}})
    assert d.audit["params_sha256"] == e.evaluate({**note("x"), "params": {"account": 7}}).audit["params_sha256"]


def test_the_largest_exact_integers_are_accepted_and_equal_to_json() -> None:
    a, b = make(), make()
    for n in (2**53 - 1, -(2**53 - 1), 0, -1):
        req = {**note("x"), "params": {"account": n}}
        assert json.loads(a.evaluate_json(json.dumps(req)))["audit"] == b.evaluate(req).audit


def test_evaluate_json_refuses_duplicate_keys_that_json_loads_drops() -> None:
    e = make()
    text = '{"agent":"a","tool":"notes","time":"%s","params":{"text":"the secret"},"params":{"text":"hi"}}' % T
    assert e.evaluate(json.loads(text)).allowed  # json.loads kept the last one
    with pytest.raises(aegis.RequestError) as ei:
        e.evaluate_json(text)
    assert ei.value.code == "request_invalid"
    with pytest.raises(aegis.RequestError):
        e.evaluate_json(b'{"agent":"a","tool":"t"}')  # type: ignore[arg-type]


# ------------------------------------------------- 4. NULs in control arguments


def test_nul_in_kill_and_revive_ids_is_refused_never_truncated() -> None:
    e = make()
    e.kill("agent", "bot", "compromised")
    with pytest.raises(aegis.ArgumentError) as ei:
        e.revive("agent", "bot\x00whatever")
    assert ei.value.code == "invalid_argument"
    assert e.evaluate(agent="bot", tool="t", time=T).rules == ["kill:agent:bot"]  # still killed
    with pytest.raises(aegis.ArgumentError):
        e.kill("agent", "evil\x00")
    assert e.evaluate(agent="evil", tool="t", time=T).allowed
    for bad in ["\ud800", "a\x07", "", 5]:
        with pytest.raises(aegis.ArgumentError):
            e.kill("agent", bad)  # type: ignore[arg-type]
    for scope in ["planet", "agent\x00", "\ud800"]:
        with pytest.raises(aegis.ArgumentError) as ei:
            e.kill(scope, "x")
        assert isinstance(ei.value, ValueError)
    assert e.revive("agent", "bot") is True


def test_nul_in_grant_arguments_is_refused() -> None:
    e = make(approval_key=b"k")
    d = e.evaluate(agent="a", tool="pay", time=T, params={"amount": 500})
    assert d.approval is not None
    aid = d.approval.id
    for args in [(aid + "\x00junk", "alice", 60), (aid, "alice\x00 (forged)", 60), (aid, "\ud800", 60),
                 (aid, "alice", 0), (aid, "alice", -1), (aid, "alice", True), (aid, "alice", 1.5)]:
        with pytest.raises(aegis.ArgumentError) as ei:
            e.grant(*args)  # type: ignore[arg-type]
        assert ei.value.code == "invalid_argument", args
    tok = e.grant(aid, "alice", 3600)
    assert e.evaluate(agent="a", tool="pay", time=T, params={"amount": 500}, approval=tok).audit["approved_by"] == "alice"


def test_no_engine_grants_without_a_key() -> None:
    with pytest.raises(aegis.ArgumentError, match="no approval key"):
        make().grant("apr_" + "0" * 32, "alice", 60)


# ---------------------------------------------------- 5. bounded conversion


def shared_dict(levels: int) -> Dict[str, Any]:
    o: Dict[str, Any] = {}
    for _ in range(levels):
        o = {"a": o, "b": o}
    return o


@pytest.mark.parametrize("levels", [20, 30, 60])
def test_shared_sub_objects_are_refused_by_their_expanded_size(levels: int) -> None:
    e = make()
    start = time.monotonic()
    for req in (
        {**note("x"), "params": {"o": shared_dict(levels)}},
        {**note("x"), "context": {"o": shared_dict(levels)}},
    ):
        with pytest.raises(aegis.RequestError, match="larger than 1048576 bytes") as ei:
            e.evaluate(req)
        assert ei.value.code == "request_invalid"
    lst: List[Any] = []
    for _ in range(levels):
        lst = [lst, lst, lst]
    with pytest.raises(aegis.RequestError, match="larger than"):
        e.evaluate({**note("x"), "params": {"l": lst}})
    s = "x" * 100_000
    with pytest.raises(aegis.RequestError, match="larger than"):
        e.evaluate({**note("x"), "params": {"many": [s] * 1000}})
    assert time.monotonic() - start < 5, "the walk must stop at the limit, not expand everything"
    assert e.evaluate(note("hello")).allowed


def test_shared_sub_objects_within_the_limit_are_fine_and_equal_to_json() -> None:
    a, b = make(), make()
    req = {**note("x"), "params": {"o": shared_dict(8)}}  # 2^8 leaves, small
    assert json.loads(a.evaluate_json(json.dumps(req)))["audit"] == b.evaluate(req).audit


def test_the_walk_never_refuses_what_the_core_accepts() -> None:
    # Just under the limit through the native walk is accepted, as the same JSON is.
    a, b = make(), make()
    req = {**note("x"), "params": {"s": "y" * ((1 << 20) - 200)}}
    line = a.evaluate_json(json.dumps(req))
    assert json.loads(line)["audit"] == b.evaluate(req).audit
    big = {**note("x"), "params": {"s": "y" * (1 << 20)}}
    with pytest.raises(aegis.RequestError):
        a.evaluate_json(json.dumps(big))
    with pytest.raises(aegis.RequestError):
        b.evaluate(big)


@pytest.mark.parametrize("depth", [66, 1000, 100_000])
def test_deep_nesting_is_a_request_error_not_a_recursion_error(depth: int) -> None:
    e = make()
    d: Any = "leaf"
    for _ in range(depth):
        d = {"k": d}
    lst: Any = 1
    for _ in range(depth):
        lst = [lst]
    for v in (d, lst):
        with pytest.raises(aegis.RequestError) as ei:
            e.evaluate({**note("x"), "params": {"v": v}})
        assert ei.value.field == "params"


def test_cyclic_structures_are_request_errors() -> None:
    e = make()
    d: Dict[str, Any] = {}
    d["self"] = d
    lst: List[Any] = []
    lst.append(lst)
    for v in (d, lst):
        with pytest.raises(aegis.RequestError):
            e.evaluate({**note("x"), "params": {"v": v}})


# ------------------------------------------------ 6. audit callbacks (§9a, §17)


def assert_audit_failed(e: aegis.Engine, ran: List[Any]) -> aegis.AegisError:
    @secure_tool(e, tool="notes")
    def tool(text: str) -> None:
        ran.append(text)

    with agent_context(agent="a"):
        with pytest.raises(aegis.AegisError) as ei:
            tool("hello")
    assert ei.value.code == "audit_failed", ei.value
    assert not isinstance(ei.value, (aegis.RequestError, aegis.PolicyDenied))
    with pytest.raises(aegis.AegisError) as ej:
        e.evaluate_json(json.dumps(note("hello")))
    assert ej.value.code == "audit_failed"
    return ei.value


def test_async_audit_callback_fails_the_call_and_leaks_no_warning() -> None:
    async def cb(rec: Dict[str, Any]) -> None:
        pass

    ran: List[Any] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        err = assert_audit_failed(make(audit=cb), ran)
        gc.collect()
    assert "synchronous" in str(err) and "coroutine" in str(err)
    assert ran == []
    assert not [w for w in caught if "never awaited" in str(w.message)], [str(w.message) for w in caught]


def test_callback_returning_a_coroutine_or_a_future_fails_the_call() -> None:
    async def later() -> None:
        pass

    loop = asyncio.new_event_loop()
    try:
        makers: List[Callable[[Dict[str, Any]], Any]] = [lambda rec: later(), lambda rec: loop.create_future()]
        for cb in makers:
            ran: List[Any] = []
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                assert_audit_failed(make(audit=cb), ran)
                gc.collect()
            assert ran == []
            assert not [w for w in caught if "never awaited" in str(w.message)]
    finally:
        loop.close()


def test_callback_returning_a_plain_value_is_fine() -> None:
    seen: List[Dict[str, Any]] = []

    def cb(rec: Dict[str, Any]) -> bool:
        seen.append(rec)
        return True

    d = make(audit=cb).evaluate(note("hi"))
    assert seen == [d.audit]


def test_raising_callback_fails_the_call() -> None:
    def cb(rec: Dict[str, Any]) -> None:
        raise RuntimeError("sink down")

    ran: List[Any] = []
    err = assert_audit_failed(make(audit=cb), ran)
    assert "sink down" in str(err) and ran == []


@pytest.mark.parametrize("call", ["evaluate", "evaluate_json", "kill", "revive", "grant", "reload_yaml", "reload"])
def test_callback_calling_back_into_its_engine_fails_the_outer_call(call: str) -> None:
    holder: Dict[str, aegis.Engine] = {}
    inner: List[BaseException] = []

    def cb(rec: Dict[str, Any]) -> None:
        e = holder["e"]
        try:
            if call == "evaluate":
                e.evaluate(note("again"))
            elif call == "evaluate_json":
                e.evaluate_json(json.dumps(note("again")))
            elif call == "kill":
                e.kill("agent", "x")
            elif call == "revive":
                e.revive("agent", "x")
            elif call == "grant":
                e.grant("apr_" + "0" * 32, "alice", 60)
            elif call == "reload_yaml":
                e.reload_yaml("aegis: 1\ndefault: allow\n")
            else:
                e.reload()
        except aegis.AegisError as x:
            inner.append(x)  # swallowed: the outer call must fail all the same

    holder["e"] = make(audit=cb, approval_key=b"k")
    ran: List[Any] = []
    box: Dict[str, Any] = {}

    def outer() -> None:
        try:
            assert_audit_failed(holder["e"], ran)
            box["ok"] = True
        except BaseException as x:  # noqa: BLE001 - reported below
            box["error"] = x

    t = threading.Thread(target=outer)
    t.start()
    t.join(timeout=20)
    assert not t.is_alive(), "deadlock"
    assert box.get("ok"), box.get("error")
    assert ran == [] and inner
    if call in ("evaluate", "evaluate_json", "kill", "revive", "grant", "reload_yaml", "reload"):
        assert all(getattr(x, "code", None) == "audit_failed" for x in inner), inner
    # a reload refused from the callback is the engine misused, not a bundle that failed
    assert not any(isinstance(x, aegis.PolicyError) or x.errors for x in inner), inner
    assert all("must not use the engine" in str(x) for x in inner), inner
    # the engine is not harmed: the bundle was not replaced
    assert holder["e"].policy_hash() == make().policy_hash()


def test_callback_may_use_another_engine() -> None:
    other = make()
    got: List[str] = []

    def cb(rec: Dict[str, Any]) -> None:
        got.append(other.evaluate(note("x")).outcome.value)

    assert make(audit=cb).evaluate(note("hi")).allowed
    assert got == ["allow"]


def test_callback_with_threads_does_not_deadlock_on_the_gil() -> None:
    # Callbacks run under the chain lock and need the GIL; other threads evaluate and
    # use the control functions meanwhile.
    seen: List[int] = []

    def cb(rec: Dict[str, Any]) -> None:
        time.sleep(0.0005)  # lets other threads take the GIL while the lock is held
        seen.append(rec["seq"])

    e = make(audit=cb, approval_key=b"k")
    errors: List[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(40):
                e.evaluate(note(f"{i}-{j}"))
                e.kill("agent", f"z{i}")
                e.revive("agent", f"z{i}")
                d = e.evaluate(agent="a", tool="pay", time=T, params={"amount": 500 + j})
                assert d.approval is not None
                e.grant(d.approval.id, "alice", 60)
        except BaseException as x:  # noqa: BLE001
            errors.append(x)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in ts), "deadlock"
    assert not errors, errors
    assert seen == list(range(4 * 80))


def test_a_failing_callback_records_nothing_and_the_chain_stays_whole() -> None:
    fail = [True]

    def cb(rec: Dict[str, Any]) -> None:
        if fail[0]:
            raise RuntimeError("sink down")

    e = make(audit=cb)
    with pytest.raises(aegis.AegisError) as ei:
        e.evaluate(note("a"))
    assert ei.value.code == "audit_failed"
    fail[0] = False
    first = e.evaluate(note("b")).audit
    second = e.evaluate(note("c")).audit
    assert (first["seq"], second["seq"]) == (0, 1) and second["prev"] == first["hash"]


# ---------------------------------------------- 7. one audit file per engine


def test_a_second_engine_on_the_same_audit_file_is_refused(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "audit.jsonl"
    first = make(audit=f)
    first.evaluate(note("a"))
    for path in (f, str(f), str(tmp_path / "." / "audit.jsonl")):
        with pytest.raises(aegis.AegisError, match="in use by another engine") as ei:
            make(audit=path)
        assert ei.value.code == "audit_failed"
    first.evaluate(note("b"))  # the first engine is unharmed
    first.close()
    assert first.closed
    with pytest.raises(aegis.ArgumentError, match="closed") as ej:
        first.evaluate(note("c"))
    assert ej.value.code == "invalid_argument"
    first.close()  # idempotent
    second = make(audit=f)  # released: resumes the chain
    assert second.evaluate(note("c")).audit["seq"] == 2
    lines = [json.loads(x) for x in f.read_text().splitlines()]
    assert [x["seq"] for x in lines] == [0, 1, 2]
    assert all(lines[i + 1]["prev"] == lines[i]["hash"] for i in range(2))


def test_the_with_block_and_dropping_release_the_audit_file(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "audit.jsonl"
    with make(audit=f) as e:
        e.evaluate(note("a"))
    with make(audit=f) as e2:
        assert e2.evaluate(note("b")).audit["seq"] == 1
    e3 = make(audit=f)
    e3.evaluate(note("c"))
    del e3
    gc.collect()
    assert make(audit=f).evaluate(note("d")).audit["seq"] == 3


def test_every_control_function_refuses_a_closed_engine() -> None:
    e = make(approval_key=b"k")
    e.close()
    for f in (
        lambda: e.evaluate(note("x")),
        lambda: e.evaluate_json("{}"),
        lambda: e.kill("agent", "x"),
        lambda: e.revive("agent", "x"),
        lambda: e.grant("apr_" + "0" * 32, "a", 1),
        lambda: e.reload_yaml("aegis: 1\n"),
        lambda: e.policy_hash(),
    ):
        with pytest.raises(aegis.ArgumentError, match="closed"):
            f()


# ------------------------------------------------------------- 8. error codes


def test_every_error_has_its_code() -> None:
    with pytest.raises(aegis.PolicyError) as p:
        aegis.Engine.from_yaml("aegis: 1\nrules: [{id: x}]\n")
    assert p.value.code == "policy_invalid"
    with pytest.raises(aegis.PolicyError) as p:
        aegis.Engine.from_yaml("aegis: 1\n# \ud800\n")
    assert p.value.code == "policy_invalid" and p.value.errors
    e = make(approval_key=b"k")
    with pytest.raises(aegis.RequestError) as r:
        e.evaluate(agent="a")
    assert r.value.code == "request_invalid" and r.value.field == "tool"

    @secure_tool(e, tool="notes")
    def notes(text: str) -> str:
        return text

    @secure_tool(e, tool="pay", approval_handler=lambda d: None)
    def pay(amount: int) -> int:
        return amount

    @secure_tool(e, tool="pay")
    def pay2(amount: int) -> int:
        return amount

    with pytest.raises(aegis.ArgumentError) as a:
        notes("x")  # no agent in context
    assert a.value.code == "invalid_argument"
    with agent_context(agent="a"):
        with pytest.raises(aegis.PolicyDenied) as d:
            notes("the secret")
        assert d.value.code == "denied"
        with pytest.raises(aegis.ApprovalRequired) as q:
            pay2(500)
        assert q.value.code == "approval_required"
        with pytest.raises(aegis.ApprovalRequired) as q:
            pay(500)
        assert q.value.code == "approval_rejected"
    assert aegis.AegisError("x").code == "invalid_argument"
    assert aegis.AegisError("x", "io").code == "io"


def test_an_unopenable_audit_file_is_audit_failed(tmp_path: pathlib.Path) -> None:
    with pytest.raises(aegis.AegisError) as ei:
        make(audit=tmp_path / "missing" / "a.jsonl")
    assert ei.value.code == "audit_failed"
