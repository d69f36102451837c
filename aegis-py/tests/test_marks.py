"""Session marks (SPEC §10): rules that label a session, rules over `session.marks`,
`Engine.marks` / `Engine.clear_marks`, the `max_sessions` and `marks_ttl` options and
the record's `marks`."""

from __future__ import annotations

import datetime
import json
from typing import Any, Dict, List

import pytest

import aegis

TRIFECTA = """
aegis: 1
rules:
  - id: hr-reads
    match: {tool: files, action: read}
    when: {params.path: {within: /hr-docs}}
    outcome: allow
    marks: [pii]
  - id: web-fetch
    match: {tool: browser, action: fetch}
    outcome: allow
    marks: [{label: untrusted, ttl: 2h}]
  - id: sql-injection-attempt
    match: {tool: db}
    when: {params.query: {contains_any: [DROP, "; DELETE"]}}
    outcome: deny
    marks: [suspicious]
  - id: lethal-trifecta
    match: {tool: send_email}
    when:
      session.marks: {contains_all: [pii, untrusted]}
      not: {params.to: {domain_in: [example.com]}}
    outcome: require_approval
    approvers: [security]
  - id: quarantine
    match: {tool: [files, browser, db, send_email]}
    when: {session.marks: {contains: suspicious}}
    outcome: deny
    reason: session quarantined
  - id: email-ok
    match: {tool: send_email}
    outcome: allow
  - id: db-ok
    match: {tool: db}
    outcome: allow
  - id: calc-ok
    match: {tool: calc}
    outcome: allow
"""

# The requests below carry no `time`: they are decided at the engine's clock, which is
# the clock `marks()` reads too.


def read_hr(session: str = "s1") -> Dict[str, Any]:
    return {"agent": "a", "tool": "files", "action": "read", "session": session, "params": {"path": "/hr-docs/pay.csv"}}


def fetch(session: str = "s1", **extra: Any) -> Dict[str, Any]:
    return {"agent": "a", "tool": "browser", "action": "fetch", "session": session, **extra}


def email(to: str, session: str = "s1", **extra: Any) -> Dict[str, Any]:
    return {"agent": "a", "tool": "send_email", "session": session, "params": {"to": to}, **extra}


def test_the_lethal_trifecta() -> None:
    e = aegis.Engine.from_yaml(TRIFECTA)
    assert e.marks("s1") == []
    d = e.evaluate(read_hr())
    assert d.allowed and d.audit["marks"] == ["pii"]
    assert e.marks("s1") == ["pii"]
    assert e.evaluate(email("bob@evil.test")).rules == ["email-ok"], "pii alone is not the trifecta"
    d = e.evaluate(fetch())
    assert d.allowed and d.audit["marks"] == ["pii", "untrusted"]
    assert e.marks("s1") == ["pii", "untrusted"]
    d = e.evaluate(email("bob@evil.test"))
    assert d.outcome is aegis.Outcome.REQUIRE_APPROVAL and d.rules == ["lethal-trifecta"]
    assert d.approval is not None and d.approval.approvers == ["security"]
    assert d.audit["marks"] == ["pii", "untrusted"]
    assert e.evaluate(email("alice@example.com")).allowed
    # another session is untouched (its marks are tested, but empty, so omitted)
    d = e.evaluate(email("bob@evil.test", session="s2"))
    assert d.rules == ["email-ok"] and "marks" not in d.audit
    assert e.marks("s2") == []
    # a denied attempt marks the session; the quarantine then holds
    d = e.evaluate(agent="a", tool="db", session="s1", params={"query": "DROP TABLE users"})
    assert d.outcome is aegis.Outcome.DENY and d.audit["marks"] == ["pii", "suspicious", "untrusted"]
    d = e.evaluate(agent="a", tool="db", session="s1", params={"query": "SELECT 1"})
    assert d.rules == ["quarantine"] and d.reason == "session quarantined"
    d = e.evaluate(agent="a", tool="calc", session="s1")
    assert d.allowed and "marks" not in d.audit, "a call that touches no marks records none"
    assert e.marks("s1") == ["pii", "suspicious", "untrusted"]


def test_the_record_key_and_the_json_line_agree() -> None:
    e = aegis.Engine.from_yaml(TRIFECTA)
    e.evaluate(read_hr())
    # a fixed time (the JSON line and the dict must be the same record) near the clock
    # the first mark was added at, so that it is live then
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    req = fetch(time=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    d = e.evaluate(req)
    line = json.loads(e.evaluate_json(json.dumps(req)))
    assert line["audit"]["marks"] == d.audit["marks"] == ["pii", "untrusted"]
    keys = list(d.audit)
    assert keys == sorted(keys), "the record dict keeps the canonical key order"
    assert keys.index("marks") == keys.index("outcome") - 1


def test_clear_marks() -> None:
    e = aegis.Engine.from_yaml(TRIFECTA)
    e.evaluate(read_hr())
    e.evaluate(fetch())
    assert e.evaluate(email("bob@evil.test")).outcome is aegis.Outcome.REQUIRE_APPROVAL
    assert e.clear_marks("s1") is True
    assert e.marks("s1") == []
    assert e.clear_marks("s1") is False, "nothing left to clear"
    assert e.clear_marks("never-seen") is False
    assert e.evaluate(email("bob@evil.test")).rules == ["email-ok"]


def test_marks_survive_reload() -> None:
    e = aegis.Engine.from_yaml(TRIFECTA)
    e.evaluate(read_hr())
    e.reload_yaml(TRIFECTA.replace("reason: session quarantined", "reason: quarantined"))
    assert e.marks("s1") == ["pii"]


def test_a_request_without_session_records_no_marks() -> None:
    e = aegis.Engine.from_yaml(MARK_ONE)
    d = e.evaluate(agent="a", tool="t")
    assert d.allowed and d.rules == ["seen"] and "marks" not in d.audit
    assert d.errors == [{"rule": "seen", "path": "session", "message": "no session: marks not recorded"}]
    # session.marks does not resolve without a session: missing information never helps
    e = aegis.Engine.from_yaml(TRIFECTA)
    d = e.evaluate(agent="a", tool="browser", action="fetch")
    assert d.outcome is aegis.Outcome.DENY and d.rules == ["quarantine"]
    assert d.errors == [{"rule": "quarantine", "path": "session.marks", "message": 'no value at "session.marks"'}]


@pytest.mark.parametrize(
    "session, message",
    [
        ("", "`session` must not be empty"),
        ("x" * 257, "`session` is 257 bytes; the limit is 256"),
        ("é" * 129, "`session` is 258 bytes; the limit is 256"),
        ("a\nb", "`session` contains a control character"),
        ("a\0b", "`session` contains a control character"),
        ("\ud800", "session contains a lone surrogate"),
        (5, "session must be a str, not int"),
        (None, "session must be a str, not NoneType"),
    ],
)
def test_a_bad_session_name_is_an_argument_error(session: Any, message: str) -> None:
    e = aegis.Engine.from_yaml(TRIFECTA)
    for call in (e.marks, e.clear_marks):
        with pytest.raises(aegis.ArgumentError) as ei:
            call(session)
        assert ei.value.code == "invalid_argument" and ei.value.field == ""
        assert str(ei.value).startswith(message), str(ei.value)
    assert e.marks("x" * 256) == [], "256 bytes is the limit, not beyond it"


def test_marks_from_the_audit_callback_are_refused() -> None:
    holder: Dict[str, aegis.Engine] = {}
    errors: List[aegis.AegisError] = []

    def cb(rec: Dict[str, Any]) -> None:
        try:
            holder["e"].marks("s1")
        except aegis.AegisError as err:
            errors.append(err)
            raise

    holder["e"] = aegis.Engine.from_yaml(TRIFECTA, audit=cb)
    with pytest.raises(aegis.AegisError) as ei:
        holder["e"].evaluate(read_hr())
    assert ei.value.code == "audit_failed"
    assert errors and errors[0].code == "audit_failed" and "callbacks must not use the engine" in str(errors[0])


def test_a_closed_engine() -> None:
    e = aegis.Engine.from_yaml(TRIFECTA)
    e.close()
    for call in (e.marks, e.clear_marks):
        with pytest.raises(aegis.ArgumentError, match="this engine is closed"):
            call("s1")


# ------------------------------------------------------------------ the options


MARK_ONE = """
aegis: 1
rules:
  - id: seen
    match: {tool: t}
    outcome: allow
    marks: [seen]
  - id: check
    match: {tool: check}
    when: {session.marks: {contains: seen}}
    outcome: allow
"""


def at(tool: str, session: str, time: str) -> Dict[str, Any]:
    return {"agent": "a", "tool": tool, "session": session, "time": time}


def test_marks_ttl_is_the_default_ttl() -> None:
    e = aegis.Engine.from_yaml(MARK_ONE, marks_ttl="1h")
    assert e.evaluate(at("t", "s", "2026-01-05T10:00:00Z")).audit["marks"] == ["seen"]
    assert e.evaluate(at("check", "s", "2026-01-05T10:59:59.999Z")).allowed
    d = e.evaluate(at("check", "s", "2026-01-05T11:00:00Z"))
    assert d.outcome is aegis.Outcome.DENY and "marks" not in d.audit
    # the default is 24h
    e = aegis.Engine.from_yaml(MARK_ONE, marks_ttl=None)
    e.evaluate(at("t", "s", "2026-01-05T10:00:00Z"))
    assert e.evaluate(at("check", "s", "2026-01-06T09:59:59Z")).allowed
    assert not e.evaluate(at("check", "s", "2026-01-06T10:00:00Z")).allowed


def test_max_sessions_bounds_the_table() -> None:
    e = aegis.Engine.from_yaml(MARK_ONE, max_sessions=1)
    assert e.evaluate(agent="a", tool="t", session="s1").allowed
    d = e.evaluate(agent="a", tool="t", session="s2")
    assert d.outcome is aegis.Outcome.DENY and d.rules == ["state:full"], "a mark that cannot be stored"
    assert e.marks("s1") == ["seen"] and e.marks("s2") == []
    assert not e.evaluate(agent="a", tool="check", session="s2").allowed, "unknown marks fail closed"
    assert e.clear_marks("s1") is True
    assert e.evaluate(agent="a", tool="t", session="s2").allowed, "clearing makes room"
    assert e.marks("s2") == ["seen"]


@pytest.mark.parametrize(
    "options, field, message",
    [
        ({"max_sessions": 0}, "max_sessions", "`max_sessions` must be an integer number of sessions from 1 to 10000000, not 0"),
        (
            {"max_sessions": 10_000_001},
            "max_sessions",
            "`max_sessions` must be an integer number of sessions from 1 to 10000000, not 10000001",
        ),
        ({"max_sessions": True}, "max_sessions", "`max_sessions` must be an integer number of sessions from 1 to 10000000, not true"),
        ({"max_sessions": "5"}, "max_sessions", '`max_sessions` must be an integer number of sessions from 1 to 10000000, not "5"'),
        (
            {"marks_ttl": "forever"},
            "marks_ttl",
            '`marks_ttl` must be a duration like "24h" (a whole number above 0 and s, m, h or d), not "forever"',
        ),
        ({"marks_ttl": "0h"}, "marks_ttl", '`marks_ttl` must be a duration like "24h" (a whole number above 0 and s, m, h or d), not "0h"'),
        ({"marks_ttl": 3600}, "marks_ttl", '`marks_ttl` must be a duration like "24h" (a whole number above 0 and s, m, h or d), not 3600'),
        ({"marks_tll": "1h"}, "marks_tll", "unknown option `marks_tll` (did you mean `marks_ttl`?)"),
    ],
)
def test_a_bad_marks_option_gets_the_cores_message(options: Dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(aegis.ConfigError) as ei:
        aegis.Engine.from_yaml(MARK_ONE, **options)
    e = ei.value
    assert (e.code, e.field, str(e)) == ("config_invalid", field, message)


def test_the_options_are_accepted() -> None:
    e = aegis.Engine.from_yaml(MARK_ONE, max_sessions=10_000_000, marks_ttl="30d")
    e.evaluate(at("t", "s", "2026-01-05T10:00:00Z"))
    assert e.evaluate(at("check", "s", "2026-02-04T09:59:59Z")).allowed
    assert not e.evaluate(at("check", "s", "2026-02-04T10:00:00Z")).allowed
