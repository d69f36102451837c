"""§17: the keyword arguments of Engine.from_path/from_yaml are one configuration
document validated by the core (the same messages in every language), and every error
has `.code`, `.field` and `.errors`."""

from __future__ import annotations

import base64
import json
import pathlib
from typing import Any, Dict, List

import pytest

import aegis

from conftest import POLICIES

ALLOW = "aegis: 1\ndefault: allow\n"
T = "2026-01-05T10:00:00Z"


def refused(**options: Any) -> aegis.ConfigError:
    with pytest.raises(aegis.ConfigError) as ei:
        aegis.Engine.from_yaml(ALLOW, **options)
    e = ei.value
    assert e.code == "config_invalid" and e.errors == [] and isinstance(e, ValueError)
    return e


# ------------------------------------------------------------- the acceptance cases


def test_the_same_wrong_option_gets_the_cores_message() -> None:
    e = refused(fsnyc="always")
    assert (e.field, str(e)) == ("fsnyc", "unknown option `fsnyc` (did you mean `fsync`?)")
    e = refused(request_max_bytes="big")
    assert (e.field, str(e)) == (
        "request_max_bytes",
        '`request_max_bytes` must be an integer number of bytes from 1 to 67108864, not "big"',
    )
    e = refused(colour="red")
    assert e.field == "colour"
    assert str(e).startswith("unknown option `colour`; the options are audit, fsync, rotate_bytes, signing_key,")
    with pytest.raises(aegis.ConfigError) as ei:
        aegis.Engine.from_path(POLICIES / "finance", fsnyc="always")  # type: ignore[call-arg]
    assert str(ei.value) == "unknown option `fsnyc` (did you mean `fsync`?)"


def test_a_misspelt_option_is_named_whatever_its_value() -> None:
    # the names are judged first: a callable (or any non-JSON value) under a typo still
    # gets the did-you-mean, never a complaint about the value
    assert str(refused(adit=lambda r: None)) == "unknown option `adit` (did you mean `audit`?)"
    assert refused(signing_kye=object()).field == "signing_kye"


def test_options_of_later_releases_are_refused_not_ignored() -> None:
    for name, value in [
        ("inbox", "sqlite:///x"),
        ("inbox_ttl", "1h"),
        ("metrics_agent_label", True),
        ("notify", {"webhook": "http://h"}),
    ]:
        e = refused(**{name: value})
        assert e.field == name and str(e).startswith(f"`{name}` is not supported yet"), str(e)


def test_a_value_json_cannot_carry_is_config_invalid_naming_the_option(tmp_path: pathlib.Path) -> None:
    e = refused(request_max_depth={1, 2})
    assert e.field == "request_max_depth" and "`request_max_depth` is of type set" in str(e)
    e = refused(request_max_bytes=2**70)
    assert e.field == "request_max_bytes" and "beyond ±9007199254740991" in str(e)
    e = refused(request_max_bytes=float("inf"))
    assert e.field == "request_max_bytes" and "finite" in str(e)
    e = refused(audit=str(tmp_path / "a.jsonl"), collector={"endpoint": "http://h", "headers": {"X": object()}})
    assert e.field == "collector" and "`collector.headers.X` is of type object" in str(e)
    assert not (tmp_path / "a.jsonl").exists(), "nothing is opened when an option is refused"
    nested: Dict[str, Any] = {}
    for _ in range(20):
        nested = {"a": nested}
    assert refused(audit=str(tmp_path / "a.jsonl"), collector=nested).field == "collector"


def test_options_are_bounded_as_the_json_document_is(tmp_path: pathlib.Path) -> None:
    # The core's bounds of an options document given as JSON text (aegis_core::config::
    # DOC_MAX_DEPTH, the document being depth 1, and DOC_MAX_BYTES), so C's JSON options
    # and Python's keyword arguments refuse the same documents.
    def headers(levels: int) -> Dict[str, Any]:
        v: Any = "x"
        for _ in range(levels):
            v = [v]
        return {"endpoint": "http://h", "headers": {"X": v}}

    audit = str(tmp_path / "a.jsonl")
    # document 1, collector 2, headers 3, five lists 4–8: walked, judged by the shipper
    e = refused(audit=audit, collector=headers(5))
    assert e.field == "collector" and "header `X` must be a string" in str(e), str(e)
    # a sixth list is depth 9
    e = refused(audit=audit, collector=headers(6))
    assert (e.field, str(e)) == (
        "collector",
        "`collector.headers.X.0.0.0.0.0` is nested deeper than 8 levels (or is a cyclic structure)",
    )
    # a top-level value is charged too: one string beyond 1 MiB is a document beyond it
    e = refused(signing_key="k" * (1 << 20), signing_key_id="ops")
    assert str(e) == "the options are larger than 1048576 bytes"
    assert not (tmp_path / "a.jsonl").exists()


# ------------------------------------------------------------- every option works


def test_request_bounds() -> None:
    e = aegis.Engine.from_yaml(ALLOW, request_max_bytes=200, request_max_depth=3)
    assert e.evaluate(agent="a", tool="t", time=T, params={"x": {"y": {"z": 1}}}).allowed
    with pytest.raises(aegis.RequestError) as ei:
        e.evaluate(agent="a", tool="t", time=T, params={"x": {"y": {"z": {"w": 1}}}})
    assert ei.value.field == "params" and "the limit is 3" in str(ei.value)
    with pytest.raises(aegis.RequestError) as ei:
        e.evaluate(agent="a", tool="t", time=T, params={"note": "x" * 300})
    assert "larger than 200 bytes" in str(ei.value)
    with pytest.raises(aegis.RequestError):
        e.evaluate_json(json.dumps({"agent": "a", "tool": "t", "params": {"note": "x" * 300}}))


def test_max_limit_counters_is_accepted_and_bounded() -> None:
    policy = (
        "aegis: 1\ndefault: allow\nlimits:\n  - id: per-session\n    match: {tool: t}\n"
        "    per: [session]\n    max_calls: 5\n    window: 1h\n"
    )
    small, default = aegis.Engine.from_yaml(policy, max_limit_counters=2), aegis.Engine.from_yaml(policy)
    got = [small.evaluate(agent="a", tool="t", session=s, time=T).allowed for s in ("s1", "s2", "s3")]
    assert got == [True, True, False], "a full table of live counters fails closed"
    assert all(default.evaluate(agent="a", tool="t", session=s, time=T).allowed for s in ("s1", "s2", "s3"))
    assert "from 1 to 10000000" in str(refused(max_limit_counters=0))


def test_file_options_and_rotation(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "audit.jsonl"
    e = aegis.Engine.from_yaml(ALLOW, audit=f, fsync="never", rotate_bytes=600)  # os.PathLike audit
    for i in range(6):
        e.evaluate(agent="a", tool="t", time=T, params={"i": i})
    e.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) > 1 and "audit.jsonl" in files, files
    assert str(refused(fsync="sometimes")).startswith("`fsync` must be")
    e2 = refused(fsync="batch")
    assert (e2.field, str(e2)) == ("fsync", "`fsync` sets how the audit file is written; give `audit` too (a file path)")
    e3 = refused(audit=lambda r: None, rotate_bytes=10)
    assert "`audit` is a callback here; give `audit` as a file path" in str(e3)


def test_audit_values(tmp_path: pathlib.Path) -> None:
    assert str(refused(audit="")) == '`audit` must be a file path (a non-empty string without NUL), not ""'
    assert refused(audit=str(tmp_path / "a\x00b")).field == "audit"
    assert refused(audit=42).field == "audit"
    assert refused(audit=b"/tmp/x").field == "audit"  # bytes are a key's form, not a path

    class BytesPath:
        def __fspath__(self) -> bytes:
            return b"/tmp/x"

    assert "a str path" in str(refused(audit=BytesPath()))
    seen: List[Dict[str, Any]] = []
    e = aegis.Engine.from_yaml(ALLOW, audit=seen.append)
    d = e.evaluate(agent="a", tool="t", time=T)
    assert seen == [d.audit]


def test_keys_in_every_form_are_the_same_key() -> None:
    r = dict(agent="a", tool="t", time=T)
    sigs = set()
    for key in (b"k1", bytearray(b"k1"), "k1", {"base64": base64.b64encode(b"k1").decode()}):
        e = aegis.Engine.from_yaml(ALLOW, signing_key=key, signing_key_id="ops")  # type: ignore[arg-type]
        sigs.add(e.evaluate(r).audit["sig"])
    assert len(sigs) == 1
    assert "is empty" in str(refused(signing_key={"base64": ""}))
    assert "not valid base64" in str(refused(approval_key={"base64": "!!"}))


def test_none_is_not_given() -> None:
    e = aegis.Engine.from_yaml(
        ALLOW,
        audit=None,
        fsync=None,
        rotate_bytes=None,
        signing_key=None,
        signing_key_id=None,
        approval_key=None,
        request_max_bytes=None,
        request_max_depth=None,
        max_limit_counters=None,
        collector=None,
    )
    d = e.evaluate(agent="a", tool="t", time=T)
    assert d.allowed and "sig" not in d.audit and e.collector is None


def test_the_typed_signature_catches_a_typo_statically(tmp_path: pathlib.Path) -> None:
    mypy = pytest.importorskip("mypy.api")
    src = tmp_path / "typo.py"
    src.write_text('import aegis\naegis.Engine.from_yaml("aegis: 1\\n", fsnyc="always")\n')
    stdout, _, rc = mypy.run(["--strict", "--no-incremental", str(src)])
    assert rc == 1 and 'Unexpected keyword argument "fsnyc"' in stdout, stdout


# ------------------------------------------------------------- structured errors


def test_three_load_errors_are_three_structured_errors() -> None:
    with pytest.raises(aegis.PolicyError) as ei:
        aegis.Engine.from_yaml(
            "aegis: 1\nrules:\n  - id: a\n    outcome: alow\n  - id: b\n    outcome: dney\n    colour: red\n"
        )
    e = ei.value
    assert e.code == "policy_invalid" and e.field == ""
    assert [(x.file, x.line, x.column) for x in e.errors] == [("<yaml>", 4, 14), ("<yaml>", 6, 14), ("<yaml>", 7, 5)]
    assert all(isinstance(x, aegis.PolicyLoadError) and x.message for x in e.errors)
    assert e.errors[0].help == 'did you mean "allow"?'
    assert str(e) == '<yaml>:4:14: error: unknown outcome "alow" — did you mean "allow"? (and 2 more)'


def test_load_errors_of_a_folder_name_their_files(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a.yaml").write_text("aegis: 1\nrules:\n  - id: a\n    outcome: alow\n")
    (tmp_path / "b.yaml").write_text("aegis: 1\nrules:\n  - id: b\n    outcome: dney\n")
    with pytest.raises(aegis.PolicyError) as ei:
        aegis.Engine.from_path(tmp_path)
    assert [(pathlib.Path(x.file).name, x.line) for x in ei.value.errors] == [("a.yaml", 4), ("b.yaml", 4)]


def test_every_error_has_code_field_and_errors() -> None:
    e = aegis.Engine.from_yaml("aegis: 1\nrules:\n  - {id: r, match: {tool: pay}, outcome: deny}\n", approval_key=b"k")
    cases: List[Any] = []
    with pytest.raises(aegis.RequestError) as r:
        e.evaluate(agent="a", tool=5)
    cases.append((r.value, "request_invalid", "tool"))
    with pytest.raises(aegis.ArgumentError) as a:
        e.kill("planet", "x")
    cases.append((a.value, "invalid_argument", ""))
    with pytest.raises(aegis.ConfigError) as c:
        aegis.Engine.from_yaml(ALLOW, approval_key=b"")
    cases.append((c.value, "config_invalid", "approval_key"))

    def fail(rec: Dict[str, Any]) -> None:
        raise OSError("full")

    with pytest.raises(aegis.AegisError) as au:
        aegis.Engine.from_yaml(ALLOW, audit=fail).evaluate(agent="a", tool="t")
    cases.append((au.value, "audit_failed", ""))
    with aegis.agent_context(agent="a"), pytest.raises(aegis.PolicyDenied) as d:
        aegis.secure_tool(e, tool="pay")(lambda: None)()
    cases.append((d.value, "denied", ""))
    for exc, code, field in cases:
        assert isinstance(exc, aegis.AegisError)
        assert (exc.code, exc.field, exc.errors) == (code, field, []), exc


def test_a_bundle_text_with_a_lone_surrogate_is_one_structured_error() -> None:
    with pytest.raises(aegis.PolicyError) as ei:
        aegis.Engine.from_yaml("aegis: 1\n# \ud800\n")
    assert [(x.file, x.line, x.column) for x in ei.value.errors] == [("<yaml>", 1, 1)]
    assert "lone surrogate" in ei.value.errors[0].message
