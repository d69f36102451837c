"""@secure_tool and agent_context."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from typing import Any, Dict, List, Optional

import pytest

import aegis
from aegis import agent_context, secure_tool

POLICY = """
aegis: 1
rules:
  - id: small
    match: {agent: "fin*", tool: payments}
    when: {params.amount: {lte: 5000}}
    outcome: allow
  - id: big
    match: {agent: "fin*", tool: payments}
    when: {params.amount: {gt: 5000}}
    outcome: require_approval
    approvers: [manager]
  - id: read
    match: {tool: files, action: read}
    when: {params.path: {within: /data}}
    outcome: allow
  - id: chained
    match: {tool: payments}
    when: {chain: {contains: rogue}}
    outcome: deny
    reason: rogue in chain
"""


def make(**kw: Any) -> aegis.Engine:
    return aegis.Engine.from_yaml(POLICY, approval_key=b"key", **kw)


def test_allow_runs_with_bound_params() -> None:
    records: List[Dict[str, Any]] = []
    e = make(audit=records.append)
    ran = []

    @secure_tool(e, tool="payments", action="create")
    def pay(amount: float, currency: str = "USD", *, memo: Optional[str] = None) -> str:
        ran.append(amount)
        return f"paid {amount} {currency}"

    assert pay.__name__ == "pay"
    assert list(inspect.signature(pay).parameters) == ["amount", "currency", "memo"]
    with agent_context(agent="fin-bot", session="s1", environment="prod", context={"tenant": "t"}):
        assert pay(10) == "paid 10 USD"
    assert ran == [10]
    rec = records[-1]
    assert rec["agent"] == "fin-bot" and rec["tool"] == "payments" and rec["action"] == "create"
    assert rec["session"] == "s1" and rec["environment"] == "prod"


def test_params_are_bound_arguments() -> None:
    seen: List[Dict[str, Any]] = []
    e = make()
    orig = e._guarded

    class Spy:
        def __getattr__(self, n: str) -> Any:
            return getattr(e, n)

        def _guarded(self, req: Dict[str, Any]) -> Any:
            seen.append(req)
            return orig(req)

    @secure_tool(Spy(), tool="payments")  # type: ignore[arg-type]
    def pay(amount: int, currency: str = "USD", **extra: Any) -> None:
        pass

    class Svc:
        @secure_tool(Spy(), tool="payments")  # type: ignore[arg-type]
        def pay(self, amount: int) -> int:
            return amount

    with agent_context(agent="fin"):
        pay(5, note="x")
        assert Svc().pay(7) == 7
    assert seen[0]["params"] == {"amount": 5, "currency": "USD", "note": "x"}  # §9a: **kwargs flattened
    assert seen[1]["params"] == {"amount": 7}


def test_deny_raises_and_body_does_not_run() -> None:
    e = make()
    ran = []

    @secure_tool(e, tool="files", action="read")
    def read(path: str) -> None:
        ran.append(path)

    with agent_context(agent="fin"):
        read("/data/x")
        with pytest.raises(aegis.PolicyDenied) as ei:
            read("/data/../etc/passwd")
    assert ran == ["/data/x"]
    assert ei.value.decision.outcome is aegis.Outcome.DENY
    assert isinstance(ei.value, aegis.AegisError)


def test_missing_context() -> None:
    ran = []

    @secure_tool(make(), tool="payments")
    def pay(amount: int) -> None:
        ran.append(amount)

    with pytest.raises(aegis.AegisError):
        pay(1)
    assert ran == []


def test_unconvertible_argument_is_request_error() -> None:
    ran = []

    @secure_tool(make(), tool="payments")
    def pay(amount: Any) -> None:
        ran.append(amount)

    with agent_context(agent="fin"), pytest.raises(aegis.RequestError):
        pay(object())
    assert ran == []


def test_approval_without_handler() -> None:
    ran = []

    @secure_tool(make(), tool="payments")
    def pay(amount: int) -> None:
        ran.append(amount)

    with agent_context(agent="fin"), pytest.raises(aegis.ApprovalRequired) as ei:
        pay(9000)
    assert ran == []
    d = ei.value.decision
    assert d.approval is not None and d.approval.approvers == ["manager"]


def test_approval_with_handler_grants() -> None:
    records: List[Dict[str, Any]] = []
    e = make(audit=records.append)
    asked: List[aegis.Decision] = []

    def handler(d: aegis.Decision) -> Optional[str]:
        asked.append(d)
        assert d.approval is not None
        return e.grant(d.approval.id, "alice", 600)

    ran = []

    @secure_tool(e, tool="payments", approval_handler=handler)
    def pay(amount: int) -> str:
        ran.append(amount)
        return "ok"

    with agent_context(agent="fin"):
        assert pay(9000) == "ok"
    assert ran == [9000] and len(asked) == 1
    assert [r["outcome"] for r in records] == ["require_approval", "allow"]
    assert records[0]["time"] == records[1]["time"]  # same resolved time
    assert records[1]["approved_by"] == "alice"


def test_approval_handler_declines_or_bad_token() -> None:
    e = make()
    ran = []

    @secure_tool(e, tool="payments", approval_handler=lambda d: None)
    def pay(amount: int) -> None:
        ran.append(amount)

    @secure_tool(e, tool="payments", approval_handler=lambda d: "v1.bogus.token")
    def pay2(amount: int) -> None:
        ran.append(amount)

    with agent_context(agent="fin"):
        with pytest.raises(aegis.ApprovalRequired):
            pay(9000)
        with pytest.raises(aegis.ApprovalRequired) as ei:
            pay2(9000)
    assert ran == []
    assert ei.value.decision.errors[-1]["path"] == "approval"


def test_approval_handler_timeout() -> None:
    def slow(d: aegis.Decision) -> Optional[str]:
        time.sleep(1.0)
        return None

    ran = []

    @secure_tool(make(), tool="payments", approval_handler=slow, approval_timeout=0.05)
    def pay(amount: int) -> None:
        ran.append(amount)

    with agent_context(agent="fin"), pytest.raises(aegis.ApprovalRequired, match="timed out"):
        pay(9000)
    assert ran == []


def test_async_tools_and_async_handler() -> None:
    e = make()

    async def handler(d: aegis.Decision) -> Optional[str]:
        await asyncio.sleep(0)
        assert d.approval is not None
        return e.grant(d.approval.id, "bob", 600)

    ran = []

    @secure_tool(e, tool="payments", approval_handler=handler)
    async def pay(amount: int) -> int:
        await asyncio.sleep(0)
        ran.append(amount)
        return amount

    assert inspect.iscoroutinefunction(pay)

    async def main() -> None:
        with agent_context(agent="fin"):
            assert await pay(1) == 1
            assert await pay(9000) == 9000
        with pytest.raises(aegis.AegisError):
            await pay(2)

    asyncio.run(main())
    assert ran == [1, 9000]


def test_async_handler_timeout() -> None:
    async def slow(d: aegis.Decision) -> Optional[str]:
        await asyncio.sleep(5)
        return None

    @secure_tool(make(), tool="payments", approval_handler=slow, approval_timeout=0.05)
    async def pay(amount: int) -> None:
        raise AssertionError("must not run")

    async def main() -> None:
        with agent_context(agent="fin"):
            await pay(9000)

    with pytest.raises(aegis.ApprovalRequired, match="timed out"):
        asyncio.run(main())


def test_gather_tasks_with_different_agents() -> None:
    records: List[Dict[str, Any]] = []
    e = make(audit=records.append)

    @secure_tool(e, tool="payments")
    async def pay(amount: int) -> str:
        await asyncio.sleep(0.001)
        return aegis.current_agent_context().agent or ""

    async def as_agent(agent: str) -> Any:
        with agent_context(agent=agent):
            await asyncio.sleep(0)
            return await pay(1)

    async def main() -> List[Any]:
        return await asyncio.gather(
            *(as_agent(a) for a in ["fin-1", "fin-2", "intruder", "fin-3"]), return_exceptions=True
        )

    out = asyncio.run(main())
    assert out[0] == "fin-1" and out[1] == "fin-2" and out[3] == "fin-3"
    assert isinstance(out[2], aegis.PolicyDenied)
    assert sorted(r["agent"] for r in records) == ["fin-1", "fin-2", "fin-3", "intruder"]


def test_threads_with_different_agents() -> None:
    e = make()

    @secure_tool(e, tool="payments")
    def pay(amount: int) -> Optional[str]:
        return aegis.current_agent_context().agent

    results: Dict[str, Any] = {}

    def worker(agent: str) -> None:
        with agent_context(agent=agent):
            out = []
            for i in range(50):
                try:
                    out.append(pay(i))
                except aegis.PolicyDenied:
                    out.append("denied")
            results[agent] = out

    ts = [threading.Thread(target=worker, args=(a,)) for a in ["fin-a", "fin-b", "evil"]]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results["fin-a"] == ["fin-a"] * 50
    assert results["fin-b"] == ["fin-b"] * 50
    assert results["evil"] == ["denied"] * 50


def test_nested_contexts_build_the_chain() -> None:
    records: List[Dict[str, Any]] = []
    e = make(audit=records.append)

    @secure_tool(e, tool="payments")
    def pay(amount: int) -> None:
        pass

    with agent_context(agent="rogue", session="s", environment="prod"):
        with agent_context(agent="planner"):
            with agent_context(agent="fin"):
                ctx = aegis.current_agent_context()
                assert ctx.chain == ("rogue", "planner") and ctx.session == "s"
                with pytest.raises(aegis.PolicyDenied) as ei:
                    pay(1)
    assert ei.value.decision.reason == "rogue in chain"
    assert records[-1]["chain"] == ["rogue", "planner"]
    assert records[-1]["session"] == "s" and records[-1]["environment"] == "prod"
    with agent_context(agent="fin", chain=["x"]):
        with agent_context(session="t"):  # no new agent: same agent and chain
            c = aegis.current_agent_context()
            assert c.agent == "fin" and c.chain == ("x",) and c.session == "t"
    assert aegis.current_agent_context().agent is None


def test_kill_switch_through_decorator() -> None:
    e = make()
    ran = []

    @secure_tool(e, tool="payments")
    def pay(amount: int) -> None:
        ran.append(amount)

    e.kill("tool", "payments", "incident")
    with agent_context(agent="fin"), pytest.raises(aegis.PolicyDenied, match="incident"):
        pay(1)
    e.revive("tool", "payments")
    with agent_context(agent="fin"):
        pay(2)
    assert ran == [2]


# --------------------------------------------- §17: chains only grow inside a context


def test_an_explicit_inner_chain_cannot_hide_the_callers() -> None:
    records: List[Dict[str, Any]] = []
    e = make(audit=records.append)
    ran: List[int] = []

    @secure_tool(e, tool="payments")
    def pay(amount: int) -> None:
        ran.append(amount)

    with agent_context(agent="rogue"):
        # before §17 an explicit chain replaced the outer one: ["helper"] hid "rogue"
        with agent_context(agent="fin", chain=["helper"]):
            assert aegis.current_agent_context().chain == ("rogue", "helper")
            with pytest.raises(aegis.PolicyDenied):
                pay(1)
        with agent_context(chain=[]):  # an empty chain adds nothing and removes nothing
            assert aegis.current_agent_context().chain == ()
        with agent_context(agent="a", chain=[]):
            assert aegis.current_agent_context().chain == ("rogue",)
    assert ran == [] and records[-1]["chain"] == ["rogue", "helper"]
    with agent_context(agent="fin", chain=["user"]):
        with agent_context(session="s", chain=["relay"]):  # no agent: same agent, chain grows
            c = aegis.current_agent_context()
            assert (c.agent, c.chain, c.session) == ("fin", ("user", "relay"), "s")
            with agent_context(agent="worker", chain=["x", "y"]):
                assert aegis.current_agent_context().chain == ("user", "relay", "fin", "x", "y")
        assert aegis.current_agent_context().chain == ("user",)


def test_a_chain_given_as_a_str_is_refused() -> None:
    with pytest.raises(aegis.ArgumentError) as ei:
        with agent_context(agent="a", chain="rogue"):
            pass
    assert ei.value.code == "invalid_argument" and ei.value.field == "chain"


# -------------------------------- §17: the tool receives the snapshot that was decided


def test_the_tool_receives_the_snapshot_not_the_callers_objects() -> None:
    to = ["alice@example.com"]
    memo = {"note": "rent"}

    def mutate(record: Dict[str, Any]) -> None:
        # while the call is decided: the caller's objects change
        to[:] = ["mallory@evil.example"]
        memo["note"] = "exfiltrate"

    e = make(audit=mutate)
    got: List[Any] = []

    @secure_tool(e, tool="files", action="read")
    def send(path: str, to: List[str], memo: Dict[str, str], *, cc: Optional[List[str]] = None) -> str:
        got.append((to, memo, cc))
        return "sent"

    with agent_context(agent="fin"):
        assert send("/data/out", to, memo) == "sent"
    assert got == [(["alice@example.com"], {"note": "rent"}, None)]
    assert got[0][0] is not to and got[0][1] is not memo
    assert to == ["mallory@evil.example"], "the caller's list did change meanwhile"


def test_the_snapshot_is_what_is_re_decided_with_a_grant() -> None:
    records: List[Dict[str, Any]] = []
    e = make(audit=records.append)
    args = {"amount": 6000}
    got: List[Any] = []

    def handler(d: aegis.Decision) -> Optional[str]:
        args["amount"] = 1  # a handler (or another thread) changes the caller's dict
        assert d.approval is not None
        return e.grant(d.approval.id, "alice", 60)

    @secure_tool(e, tool="payments", approval_handler=handler)
    def pay(payment: Dict[str, int]) -> None:
        got.append(payment)

    with agent_context(agent="fin"):
        pay(args)
    assert got == [{"amount": 6000}]
    first, second = records[-2], records[-1]
    assert first["params_sha256"] == second["params_sha256"], "the grant was for the same params"
    assert second["outcome"] == "allow" and second["approved_by"] == "alice"


def test_a_guarded_call_converts_its_arguments_once() -> None:
    # One native conversion per decision: the request is walked once and that
    # converted request is what is decided and, with a grant, re-decided (never a
    # snapshot walked again by `evaluate`).
    e = make()
    native = e._native
    calls: List[str] = []

    class Counting:
        def __getattr__(self, n: str) -> Any:
            calls.append(n)
            return getattr(native, n)

    e._native = Counting()  # type: ignore[misc]

    def handler(d: aegis.Decision) -> Optional[str]:
        assert d.approval is not None
        return native.grant(d.approval.id, "alice", 60)

    @secure_tool(e, tool="payments", approval_handler=handler)
    def pay(amount: int, memo: Dict[str, Any]) -> int:
        return amount

    with agent_context(agent="fin"):
        assert pay(10, {"k": [1, 2]}) == 10
        assert calls == ["evaluate_guarded"]
        calls.clear()
        assert pay(6000, {"k": [1, 2]}) == 6000
        assert calls == ["evaluate_guarded", "evaluate_granted"]


def test_a_bad_token_from_the_handler_is_refused_as_a_request_field() -> None:
    # the re-decided request is validated by the core like any request
    ran: List[int] = []
    for token, message in [("", "`approval` must be 1–4096 bytes"), ("\ud800", "`approval` contains a lone surrogate")]:

        @secure_tool(make(), tool="payments", approval_handler=lambda d, t=token: t)
        def pay(amount: int) -> None:
            ran.append(amount)

        with agent_context(agent="fin"):
            with pytest.raises(aegis.RequestError) as ei:
                pay(6000)
        assert ei.value.field == "approval" and message in str(ei.value), str(ei.value)
    assert ran == []


def test_the_snapshot_rebuilds_every_kind_of_parameter() -> None:
    e = make()
    got: List[Any] = []

    class Tools:
        @secure_tool(e, tool="files", action="read")
        def read(self, path: str, /, mode: str = "r", *rest: Any, flag: bool = False, **extra: Any) -> Any:
            got.append((self, path, mode, rest, flag, extra))
            return "ok"

        @classmethod
        @secure_tool(e, tool="files", action="read")
        def cread(cls, path: str) -> Any:
            got.append((cls, path))
            return "ok"

    t = Tools()
    with agent_context(agent="fin"):
        assert t.read("/data/a", "rb", (1, 2), 5.0, flag=True, z={"k": (3,)}, a=None) == "ok"
        assert t.read("/data/b") == "ok"
        assert Tools.cread("/data/c") == "ok"
    # self/cls passed through as given; the rest is the snapshot: plain JSON values, a
    # tuple as a list, an integral float as an int; **extra in the caller's order
    assert got[0] == (t, "/data/a", "rb", ([1, 2], 5), True, {"z": {"k": [3]}, "a": None})
    assert got[0][0] is t and type(got[0][3]) is tuple and type(got[0][3][1]) is int
    assert list(got[0][5]) == ["z", "a"]
    assert got[1] == (t, "/data/b", "r", (), False, {})
    assert got[2] == (Tools, "/data/c")


def test_async_tools_receive_the_snapshot_too() -> None:
    items = [1, 2]

    def mutate(record: Dict[str, Any]) -> None:
        items.append(3)

    e = make(audit=mutate)

    @secure_tool(e, tool="files", action="read")
    async def read(path: str, items: List[int]) -> List[int]:
        await asyncio.sleep(0)
        return items

    async def main() -> List[int]:
        with agent_context(agent="fin"):
            return await read("/data/x", items)

    assert asyncio.run(main()) == [1, 2] and items == [1, 2, 3]


def test_a_failing_audit_callback_fails_the_guarded_call_before_it_runs() -> None:
    seen: List[Dict[str, Any]] = []

    def cb(record: Dict[str, Any]) -> None:
        seen.append(record)
        raise OSError("disk full")

    e = make(audit=cb)
    ran: List[int] = []

    @secure_tool(e, tool="payments")
    def pay(amount: int) -> None:
        ran.append(amount)

    with agent_context(agent="fin"), pytest.raises(aegis.AegisError) as ei:
        pay(1)
    assert ei.value.code == "audit_failed" and "disk full" in str(ei.value)
    assert not isinstance(ei.value, aegis.PolicyDenied)
    assert len(seen) == 1 and ran == [], "the callback ran before evaluate returned; the tool never ran"
