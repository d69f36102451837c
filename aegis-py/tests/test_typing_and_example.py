from __future__ import annotations

import pathlib
import runpy
import subprocess
import sys

import pytest

import aegis
from conftest import ROOT


def test_usage_file_runs() -> None:
    import typing_usage

    assert typing_usage.run().startswith("xxyparams")


def test_collector_usage_runs(tmp_path: pathlib.Path) -> None:
    import typing_usage

    assert typing_usage.collector_usage(str(tmp_path / "audit.jsonl")) == 0  # nothing written, nothing shipped


def test_exports() -> None:
    for name in aegis.__all__:
        assert hasattr(aegis, name), name
    for exc in (
        aegis.PolicyError,
        aegis.RequestError,
        aegis.PolicyDenied,
        aegis.ApprovalRequired,
        aegis.ConfigError,
        aegis.ArgumentError,
    ):
        assert issubclass(exc, aegis.AegisError) and issubclass(exc, Exception)
    assert issubclass(aegis.Outcome, str)
    assert aegis.Outcome("require_approval") is aegis.Outcome.REQUIRE_APPROVAL
    assert "Collector" in aegis.__all__ and aegis.Collector is aegis._engine.Collector


def test_example_agent(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "python" / "agent.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "allow: paid 1200 USD" in out and "deny ['path-traversal'" in out
    assert "deny ['no-writes-or-ddl']" in out


def test_mypy_strict() -> None:
    mypy = pytest.importorskip("mypy.api")
    stdout, stderr, rc = mypy.run(["--strict", str(ROOT / "aegis-py/tests/typing_usage.py")])
    assert rc == 0, stdout + stderr


def test_stubtest() -> None:
    pytest.importorskip("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy.stubtest", "aegis._aegis"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
