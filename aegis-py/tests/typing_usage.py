"""Checked with `mypy --strict` (make py-typecheck); also imported by the tests."""

from __future__ import annotations

import asyncio
from typing import Optional

import aegis

engine: aegis.Engine = aegis.Engine.from_yaml(
    "aegis: 1\ndefault: allow\n", approval_key=b"k", signing_key="s", request_max_bytes=1 << 16, max_limit_counters=1000
)
options: aegis.EngineOptions = {"request_max_depth": 16, "signing_key": bytearray(b"s"), "signing_key_id": None}
other: aegis.Engine = aegis.Engine.from_yaml("aegis: 1\ndefault: allow\n", **options)


def handler(decision: aegis.Decision) -> Optional[str]:
    return None if decision.approval is None else engine.grant(decision.approval.id, "me", 60)


@aegis.secure_tool(engine, tool="echo", approval_handler=handler)
def echo(text: str, times: int = 1) -> str:
    return text * times


@aegis.secure_tool(engine, tool="aecho")
async def aecho(text: str) -> str:
    return text


def run() -> str:
    d: aegis.Decision = engine.evaluate(agent="a", tool="t", params={"x": [1, 2.5, None, True]})
    outcome: aegis.Outcome = d.outcome
    ok: bool = d.allowed and outcome == aegis.Outcome.ALLOW
    line: str = engine.evaluate_json('{"agent":"a","tool":"t"}')
    with aegis.agent_context(agent="a", session="s", context={"tenant": "t"}):
        out = echo("x", times=2)
        out += asyncio.run(aecho("y"))
    try:
        engine.evaluate({"agent": "a", "tool": "t", "params": {"b": b"x"}})
    except aegis.RequestError as e:
        field: str = e.field
        code: str = e.code
        out += field if code == "request_invalid" else code
    try:
        aegis.Engine.from_yaml("aegis: 1\n", approval_key=b"")
    except aegis.ConfigError as c:
        assert c.code == "config_invalid" and c.field == "approval_key" and c.errors == []
    try:
        aegis.Engine.from_yaml("aegis: 1\nrules:\n  - {id: a, outcome: alow}\n")
    except aegis.PolicyError as p:
        at: aegis.PolicyLoadError = p.errors[0]
        assert p.code == "policy_invalid" and at.line == 3 and at.help is not None
    with aegis.Engine.from_yaml("aegis: 1\n") as closing:
        pass
    closed: bool = closing.closed
    try:
        closing.evaluate(agent="a", tool="t")
    except aegis.ArgumentError as a:
        assert closed and a.code == "invalid_argument"
    return out + line + str(ok)


def marks_usage() -> bool:
    e = aegis.Engine.from_yaml(
        "aegis: 1\nrules:\n  - {id: r, match: {tool: t}, outcome: allow, marks: [seen]}\n",
        max_sessions=1000,
        marks_ttl="1h",
    )
    e.evaluate(agent="a", tool="t", session="s")
    seen: list[str] = e.marks("s")
    had: bool = e.clear_marks("s")
    return had and seen == ["seen"] and e.marks("s") == []


def collector_usage(path: str) -> int:
    with aegis.Engine.from_yaml(
        "aegis: 1\nrules: []\n",
        audit=path,
        fsync="batch",
        rotate_bytes=1 << 20,
        collector={"endpoint": "http://127.0.0.1:4318", "headers": {"Authorization": "Bearer t"}, "batch": 64},
    ) as e:
        c: Optional[aegis.Collector] = e.collector
        if c is None:
            return 0
        c.flush(timeout=1.0)
        shipped: int = c.metrics()["shipped"]
        final = c.close(timeout=0.5)
        return shipped + int(final["pending"])
