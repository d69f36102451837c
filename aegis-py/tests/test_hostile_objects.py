"""Hostile Python objects in a request: exploding dunder methods, subclasses that lie,
mappings and sequences that fail half-way. Each must give a clean Python exception
(never a crash, a SystemError or a decision), and the engine must keep working."""
import math

import pytest

import aegis

POLICY = """
aegis: 1
default: deny
rules:
  - id: ok
    match: {tool: t}
    outcome: allow
"""


class Boom(Exception):
    pass


class ExplodingStr:
    def __str__(self) -> str:
        raise Boom("__str__")

    def __repr__(self) -> str:
        raise Boom("__repr__")


class ExplodingLenList(list):
    def __len__(self) -> int:
        raise Boom("__len__")


class ExplodingIterList(list):
    def __iter__(self):
        raise Boom("__iter__")


class ExplodingItemsDict(dict):
    def items(self):
        raise Boom("items")

    def keys(self):
        raise Boom("keys")

    def __iter__(self):
        raise Boom("__iter__")


class LyingFloat(float):
    def __float__(self) -> float:
        raise Boom("__float__")


class LyingInt(int):
    def __index__(self) -> int:
        raise Boom("__index__")

    def __int__(self) -> int:
        raise Boom("__int__")


class ExplodingHashKey(str):
    def __hash__(self) -> int:
        raise Boom("__hash__")


class NotAMapping:
    def keys(self):
        raise Boom("keys")

    def __getitem__(self, k):
        raise Boom("__getitem__")


HOSTILE = [
    ExplodingStr(),
    ExplodingLenList([1, 2]),
    ExplodingIterList([1, 2]),
    ExplodingItemsDict(a=1),
    LyingFloat(1.5),
    LyingFloat(math.nan),
    LyingInt(5),
    LyingInt(2**70),
    NotAMapping(),
    "hash-exploding key",
    [ExplodingStr()],
    {"nested": {"deeper": [ExplodingStr()]}},
]


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: type(v).__name__)
def test_hostile_param_values_raise_cleanly(value: object) -> None:
    e = aegis.Engine.from_yaml(POLICY)
    if value == "hash-exploding key":
        # A dict whose key's __hash__ raises cannot even be built by the caller.
        with pytest.raises(Boom):
            value = {ExplodingHashKey("k"): 1}
    try:
        d = e.evaluate(agent="a", tool="t", params={"x": value})
    except aegis.RequestError:
        pass  # rejected as a bad request: the expected outcome for most
    except Boom:
        pass  # the object's own exception propagated cleanly
    else:
        # Subclasses of float/int/list/dict may be read by value; then the decision
        # must be a real one, made on the value the engine saw.
        assert d.outcome in (aegis.Outcome.ALLOW, aegis.Outcome.DENY)
    # The engine is unharmed.
    assert e.evaluate(agent="a", tool="t").allowed


@pytest.mark.parametrize("field", ["agent", "tool", "action", "session", "environment"])
def test_hostile_name_fields_raise_request_error(field: str) -> None:
    e = aegis.Engine.from_yaml(POLICY)
    req = {"agent": "a", "tool": "t", field: ExplodingStr()}
    with pytest.raises((aegis.RequestError, Boom)):
        e.evaluate(req)
    assert e.evaluate(agent="a", tool="t").allowed


def test_dict_subclass_is_read_by_its_stored_items() -> None:
    # The binding reads dicts through the C API: overridden items()/keys()/__iter__
    # never run, so the decision is made on what the dict really holds.
    e = aegis.Engine.from_yaml(POLICY)
    d = e.evaluate(ExplodingItemsDict(agent="a", tool="t"))  # type: ignore[arg-type]
    assert d.allowed and d.audit["agent"] == "a"


def test_request_errors_name_the_place_in_policy_path_syntax() -> None:
    e = aegis.Engine.from_yaml(POLICY)
    with pytest.raises(aegis.RequestError) as info:
        e.evaluate(agent="a", tool="t", params={"items": [1, {1, 2}]})
    assert info.value.field == "params"
    assert "`params.items.1`" in str(info.value)


def test_lists_are_read_by_their_stored_elements() -> None:
    # Overridden __len__/__iter__ never run (and so cannot lie about the length, raise,
    # or mutate a container half-way through the walk): the engine decides on what
    # the list really holds, exactly as for a plain list.
    e = aegis.Engine.from_yaml(POLICY)
    plain = e.evaluate(agent="a", tool="t", params={"x": [1, 2]}).audit["params_sha256"]
    for cls in (ExplodingLenList, ExplodingIterList):
        d = e.evaluate(agent="a", tool="t", params={"x": cls([1, 2])})
        assert d.audit["params_sha256"] == plain


class HugeLen(list):
    def __len__(self) -> int:
        return 2**62  # a declared length is never trusted


class MutatingKey(str):
    def __len__(self) -> int:
        raise Boom("__len__")


def test_declared_lengths_are_never_trusted() -> None:
    e = aegis.Engine.from_yaml(POLICY)
    assert e.evaluate(agent="a", tool="t", params={"x": HugeLen([1])}).allowed
    assert e.evaluate(agent="a", tool="t", params={MutatingKey("k"): MutatingKey("v")}).allowed


def test_shared_and_deep_values_through_subclasses_stay_bounded() -> None:
    class D(dict):
        pass

    e = aegis.Engine.from_yaml(POLICY)
    o: object = D()
    for _ in range(40):
        o = D(a=o, b=o)
    with pytest.raises(aegis.RequestError, match="larger than"):
        e.evaluate(agent="a", tool="t", params={"o": o})
    t: object = ()
    for _ in range(50_000):
        t = (t,)
    with pytest.raises(aegis.RequestError):
        e.evaluate(agent="a", tool="t", params={"t": t})
    assert e.evaluate(agent="a", tool="t").allowed
