"""Property: a native dict and its JSON text give the same decision and record."""

from __future__ import annotations

import json
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

import aegis  # noqa: E402

POLICY = """
aegis: 1
rules:
  - id: r
    match: {tool: t}
    when: {params.a: {lte: 10}}
    outcome: allow
"""

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    # Every finite float, including 2**64 <= |x| < 1e21 (a request error on both paths).
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, database=None)
@given(params=st.dictionaries(st.text(max_size=5), json_values, max_size=5))
def test_native_equals_json(params: Any) -> None:
    try:
        text = json.dumps({"agent": "a", "tool": "t", "params": params, "time": "2026-01-05T10:00:00Z"}, allow_nan=False)
        text.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return
    a = aegis.Engine.from_yaml(POLICY)
    b = aegis.Engine.from_yaml(POLICY)
    try:
        line = json.loads(a.evaluate_json(text))
    except aegis.RequestError:
        # The same request is refused natively too.
        with pytest.raises(aegis.RequestError):
            b.evaluate(json.loads(text))
        return
    d = b.evaluate(json.loads(text))
    assert d.audit == line["audit"]
    assert d.errors == line["errors"]


hostile = st.recursive(
    json_values | st.binary(max_size=3) | st.sets(st.integers(), max_size=2) | st.integers() | st.floats(),
    lambda kids: st.lists(kids, max_size=3)
    | st.tuples(kids, kids)
    | st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), kids, max_size=3),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None, database=None)
@given(params=hostile)
def test_hostile_never_crashes(params: Any) -> None:
    e = aegis.Engine.from_yaml(POLICY)
    try:
        d = e.evaluate(agent="a", tool="t", params={"a": params})
    except aegis.RequestError:
        return
    assert d.outcome in (aegis.Outcome.ALLOW, aegis.Outcome.DENY)


@pytest.mark.parametrize(
    "lit",
    ["1e300", "1e21", "-1e21", "1.8446744073709550e+19", "1.8446744073709552e+19", "1e20", "-9.9e20", "9007199254740992.0"],
)
def test_floats_beyond_2_pow_53_are_refused(lit: str) -> None:
    # §9a: every number beyond ±(2^53 − 1) is refused (it is no longer exact), in JSON
    # text as in a native float, naming the path; never rounded or decided on.
    e = aegis.Engine.from_yaml(POLICY)
    with pytest.raises(aegis.RequestError):
        e.evaluate_json('{"agent":"a","tool":"t","params":{"a":%s}}' % lit)
    with pytest.raises(aegis.RequestError) as err:
        e.evaluate(agent="a", tool="t", params={"a": float(lit)})
    assert err.value.code == "request_invalid" and err.value.field == "params"
    assert "`params.a`" in str(err.value) and "2^53" in str(err.value)


def test_big_integer_literal_is_a_request_error() -> None:
    e = aegis.Engine.from_yaml(POLICY)
    with pytest.raises(aegis.RequestError):
        e.evaluate_json('{"agent":"a","tool":"t","params":{"a":100000000000000000000}}')
    with pytest.raises(aegis.RequestError):
        e.evaluate(agent="a", tool="t", params={"a": 10**20})
