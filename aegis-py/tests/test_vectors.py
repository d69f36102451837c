"""Every shared vector: byte for byte through evaluate_json, field for field through
evaluate (native dicts, no JSON text)."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Dict

import pytest

import aegis

from conftest import VECTORS

assert VECTORS, "no vectors found in tests/vectors/generated"


def _options(v: Dict[str, Any]) -> Dict[str, Any]:
    o = v.get("options") or {}
    return {k: o[k] for k in ("signing_key", "signing_key_id", "approval_key") if k in o}


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


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(path: pathlib.Path) -> None:
    v = json.loads(path.read_text(encoding="utf-8"))
    if "load_errors" in v:
        with pytest.raises(aegis.PolicyError) as ei:
            aegis.Engine.from_yaml(v["policy_yaml"], **_options(v))
        got = ei.value.errors
        assert len(got) == len(v["load_errors"]), [str(e) for e in got]
        for g, want in zip(got, v["load_errors"]):
            assert g.file == "<yaml>"
            assert g.line == want["line"], str(g)
            assert g.column == want["column"], str(g)
            assert want["message"] in str(g), str(g)  # message, or message — help
        return

    by_json = aegis.Engine.from_yaml(v["policy_yaml"], **_options(v))
    native = aegis.Engine.from_yaml(v["policy_yaml"], **_options(v))
    assert by_json.policy_hash() == v["policy_hash"]
    evaluated = 0
    for step in v["steps"]:
        op = step["op"]
        if op in ("kill", "revive"):
            for e in (by_json, native):
                if op == "kill":
                    e.kill(step["scope"], step["id"], step.get("reason", ""))
                else:
                    e.revive(step["scope"], step["id"])
            continue
        assert op == "evaluate", op
        text = step["request_json"]
        if step.get("expect_error") == "request":
            with pytest.raises(aegis.RequestError):
                by_json.evaluate_json(text)
            try:
                req = json.loads(text)
            except ValueError:
                continue  # not JSON at all: nothing native to try
            if isinstance(req, dict) and len(text.encode()) < (1 << 20):
                with pytest.raises(aegis.RequestError):
                    native.evaluate(req)
            continue
        out = by_json.evaluate_json(text)
        assert out == step["expect_json"], step["name"]
        d = native.evaluate(json.loads(text))
        _check_fields(d, json.loads(step["expect_json"]))
        evaluated += 1
