"""The `collector` option: configuration errors, and shipping end to end to a REAL
OpenTelemetry collector (rotel; `AEGIS_ROTEL` names its binary, exported by the root
Makefile after `make ship-rotel`)."""

from __future__ import annotations

import gc
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import threading
import time
from typing import Iterator, List, Tuple

import pytest

import aegis

from conftest import POLICIES

def test_unknown_key_is_named_with_a_suggestion(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError) as e:
        aegis.Engine.from_path(
            POLICIES / "finance", audit=str(tmp_path / "a.jsonl"), collector={"endpiont": "http://127.0.0.1:1"}
        )
    assert str(e.value) == (
        "invalid collector configuration: unknown option `endpiont` (did you mean `endpoint`?)"
    )
    assert not (tmp_path / "a.jsonl").exists(), "validated before the audit file is opened"


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"endpoint": "ftp://x"}, "`endpoint` must be an http:// or https:// URL"),
        ({"endpoint": "http://h", "batch": True}, "`batch` must be an integer"),
        ({"endpoint": "http://h", "batch_age_ms": float("nan")}, "`collector.batch_age_ms` is NaN; numbers must be finite"),
        ({"endpoint": "http://h", "headers": {"X": "a\r\nEvil: 1"}}, "control character"),
        ({"endpoint": "http://h", "headers": {"X": object()}}, "`collector.headers.X` is of type object, which is not allowed"),
        ([("endpoint", "http://h")], '`collector` must be an object, not [["endpoint","http://h"]]'),
        ("http://h", '`collector` must be an object, not "http://h"'),
        ({"endpoint": "http://h", "headers": {1: "x"}}, "`collector.headers` has a key that is not a str: int"),
        ({"endpoint": "http://h", 2: 3}, "`collector` has a key that is not a str: int"),
        ({"endpoint": b"http://h"}, 'invalid collector configuration: `endpoint` must be a string, not `{"base64":'),
        ({}, "`endpoint` is required"),
    ],
)
def test_bad_configurations(tmp_path: pathlib.Path, cfg: object, message: str) -> None:
    with pytest.raises(aegis.ConfigError) as e:
        aegis.Engine.from_yaml("aegis: 1\nrules: []\n", audit=str(tmp_path / "a.jsonl"), collector=cfg)  # type: ignore[arg-type]
    assert message in str(e.value)
    assert e.value.code == "config_invalid" and e.value.field == "collector" and e.value.errors == []
    assert isinstance(e.value, ValueError)
    assert not (tmp_path / "a.jsonl").exists(), "validated before the audit file is opened"


def test_collector_needs_a_file_audit_sink() -> None:
    for audit, fix in [
        (None, "give `audit` too (a file path)"),
        (lambda rec: None, "`audit` is a callback here; give `audit` as a file path"),
    ]:
        with pytest.raises(aegis.ConfigError) as e:
            aegis.Engine.from_yaml("aegis: 1\nrules: []\n", audit=audit, collector={"endpoint": "http://h"})
        assert str(e.value) == f"`collector` ships the audit file; {fix}"
        assert e.value.field == "collector"


def test_no_collector() -> None:
    e = aegis.Engine.from_yaml("aegis: 1\nrules: []\n")
    assert e.collector is None
    e.close()  # a no-op
    with e:
        pass


def test_unreachable_collector_fails_flush_and_close_but_loses_nothing(tmp_path: pathlib.Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    audit = tmp_path / "a.jsonl"
    e = aegis.Engine.from_path(
        POLICIES / "finance",
        audit=str(audit),
        collector={"endpoint": f"http://127.0.0.1:{port}", "max_backoff_ms": 50, "close_timeout_ms": 200},
    )
    e.evaluate(agent="finance-agent", tool="payments", action="create", params={"amount": 5, "currency": "USD"})
    assert e.collector is not None
    with pytest.raises(aegis.AegisError):
        e.collector.flush(timeout=0.3)
    with pytest.raises(aegis.AegisError):
        e.collector.close()
    m = e.collector.metrics()
    assert (m["shipped"], m["pending"]) == (0, 1) and m["retries"] >= 1 and m["last_error"]
    # evaluate still works after close; the record is in the file for the next start.
    e.evaluate(agent="finance-agent", tool="payments", action="create", params={"amount": 6, "currency": "USD"})
    assert len(audit.read_text().splitlines()) == 2


def dead_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_timeouts_are_checked(tmp_path: pathlib.Path) -> None:
    e = aegis.Engine.from_yaml(
        "aegis: 1\nrules: []\n", audit=str(tmp_path / "a.jsonl"), collector={"endpoint": dead_endpoint()}
    )
    assert e.collector is not None
    for bad in (-1.0, float("nan"), float("inf"), 3601.0):
        with pytest.raises(ValueError, match="timeout must be from 0 to 3600 seconds"):
            e.collector.flush(timeout=bad)
        with pytest.raises(ValueError, match="timeout must be from 0 to 3600 seconds"):
            e.collector.close(timeout=bad)
    assert not e.collector.close(timeout=0)["pending"]  # nothing written: nothing to ship


def test_flush_and_close_release_the_gil(tmp_path: pathlib.Path) -> None:
    # While flush/close wait on an unreachable collector, another Python thread runs:
    # it records a timestamp every 10 ms, which it cannot do while the GIL is held.
    e = aegis.Engine.from_yaml(
        "aegis: 1\ndefault: allow\nrules: []\n",
        audit=str(tmp_path / "a.jsonl"),
        collector={"endpoint": dead_endpoint(), "max_backoff_ms": 50},
    )
    e.evaluate(agent="a", tool="t")
    c = e.collector
    assert c is not None
    ticks: List[float] = []
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    t = threading.Thread(target=tick)
    t.start()
    try:
        time.sleep(0.05)
        for name, wait in (("flush", lambda: c.flush(timeout=0.6)), ("close", lambda: c.close(timeout=0.6))):
            with pytest.raises(aegis.AegisError):
                t0 = time.monotonic()
                try:
                    wait()
                finally:
                    t1 = time.monotonic()
            assert t1 - t0 >= 0.5, (name, t1 - t0)
            inside = [x for x in ticks if t0 + 0.1 < x < t1 - 0.1]
            assert len(inside) >= 5, f"{name} held the GIL: {len(inside)} ticks in {t1 - t0:.2f} s"
    finally:
        stop.set()
        t.join()


def test_exit_does_not_mask_the_blocks_exception(tmp_path: pathlib.Path) -> None:
    with pytest.raises(KeyError):
        with aegis.Engine.from_yaml(
            "aegis: 1\ndefault: allow\nrules: []\n",
            audit=str(tmp_path / "a.jsonl"),
            collector={"endpoint": dead_endpoint(), "close_timeout_ms": 100},
        ) as e:
            e.evaluate(agent="a", tool="t")  # undelivered: close() fails
            raise KeyError("from the block")
    assert e.collector is not None and e.collector.metrics()["pending"] == 1
    with pytest.raises(aegis.AegisError):
        e.close()  # idempotent: the first close's outcome, at once
    with pytest.raises(aegis.AegisError):  # without an exception in the block, close raises
        with e:
            pass


def test_dropping_an_open_engine_is_fine(tmp_path: pathlib.Path) -> None:
    e = aegis.Engine.from_yaml(
        "aegis: 1\ndefault: allow\nrules: []\n", audit=str(tmp_path / "a.jsonl"), collector={"endpoint": dead_endpoint()}
    )
    e.evaluate(agent="a", tool="t")
    start = time.monotonic()
    del e
    gc.collect()
    assert time.monotonic() - start < 5
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def rotel(tmp_path: pathlib.Path) -> Iterator[Tuple[str, pathlib.Path]]:
    binary = os.environ.get("AEGIS_ROTEL")
    if not binary:
        pytest.skip("AEGIS_ROTEL is not set (run `make py-test`, which installs rotel and sets it)")
    assert os.path.exists(binary), f"AEGIS_ROTEL={binary} does not exist"
    http, grpc = free_port(), free_port()
    out = tmp_path / "rotel.out"
    with open(out, "w") as f:
        p = subprocess.Popen(
            [binary, "start", "--otlp-http-endpoint", f"127.0.0.1:{http}", "--otlp-grpc-endpoint",
             f"127.0.0.1:{grpc}", "--exporter", "blackhole", "--debug-log", "logs",
             "--debug-log-verbosity", "detailed", "--log-file", str(tmp_path / "rotel.log"),
             "--pid-file", str(tmp_path / "rotel.pid")],
            stdout=f, stderr=subprocess.STDOUT, cwd=tmp_path,
        )
    try:
        end = time.monotonic() + 20
        while True:
            assert p.poll() is None, f"rotel exited: {out.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", http), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < end, "rotel did not listen"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{http}", out
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_ships_every_record_to_rotel(tmp_path: pathlib.Path, rotel: Tuple[str, pathlib.Path]) -> None:
    url, out = rotel
    audit = tmp_path / "audit.jsonl"
    reqs: List[str] = [l for l in (POLICIES / "finance/requests.jsonl").read_text().splitlines() if l.strip()]
    with aegis.Engine.from_path(
        POLICIES / "finance",
        audit=str(audit),
        collector={"endpoint": url, "batch_age_ms": 50, "service_name": "python-test"},
    ) as engine:
        for i in range(24):
            engine.evaluate_json(reqs[i % len(reqs)])
        assert engine.collector is not None
        engine.collector.flush(timeout=10)
        lines = audit.read_text().splitlines()
        m = engine.collector.metrics()
        assert (m["shipped"], m["pending"], m["rejected_batches"]) == (len(lines), 0, 0)
        assert m["cursor"]["seq"] == len(lines) - 1
        body = re.compile(r"^Body: Str\((.*)\)$")
        attr = re.compile(r"-> aegis\.hash: Str\(([0-9a-f]{64})\)$")
        want = {json.loads(l)["hash"] for l in lines}
        end = time.monotonic() + 10
        while True:
            text = out.read_text(errors="replace").splitlines()
            bodies = {b.group(1) for b in map(body.match, text) if b}
            hashes = {h.group(1) for h in map(attr.search, text) if h}
            if want <= hashes and set(lines) <= bodies:
                break
            assert time.monotonic() < end, f"rotel got {len(want & hashes)} of {len(want)} hashes"
            time.sleep(0.2)
        assert "python-test" in "\n".join(text)
        # Closing only the collector: the engine keeps evaluating; a second close is a
        # no-op with the same metrics.
        assert engine.collector.close()["shipped"] == len(lines)
        assert engine.collector.close()["shipped"] == len(lines)
        assert engine.collector.metrics()["shipped"] == len(lines)
        # After close: flush returns at once when everything written was delivered...
        engine.collector.flush(timeout=1)
        # ...and raises once the engine has written records nobody will ship now (they
        # stay in the file for the next engine on it); metrics stay the final ones.
        engine.evaluate_json(reqs[0])
        with pytest.raises(aegis.AegisError, match="shipping has stopped") as ei:
            engine.collector.flush(timeout=1)
        assert ei.value.code == "collector_failed"
        assert engine.collector.metrics()["shipped"] == len(lines)
        assert len(audit.read_text().splitlines()) == len(lines) + 1
    # The context manager closed the engine too (its audit file is released).
    assert engine.closed
    with pytest.raises(aegis.ArgumentError, match="closed"):
        engine.evaluate_json(reqs[0])
    with aegis.Engine.from_path(POLICIES / "finance", audit=str(audit)) as again:
        assert json.loads(again.evaluate_json(reqs[0]))["audit"]["seq"] == len(lines) + 1
