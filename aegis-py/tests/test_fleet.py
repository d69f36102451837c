"""Fleet state (SPEC §11) through the Python keyword arguments: ``state`` and its
settings against a real redis-server started on a free loopback port with a password
and stopped after."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from typing import Callable, Iterator

import pytest

import aegis

PASSWORD = "fleet-py-pw"

POLICY = """
aegis: 1
rules:
  - id: pay
    match: {tool: pay}
    outcome: allow
limits:
  - id: budget
    match: {tool: pay}
    window: 1d
    max_calls: 1000
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server not on PATH (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
         "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)
        yield f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


def fleet_engine(url: str) -> aegis.Engine:
    return aegis.Engine.from_yaml(
        POLICY, state=url, state_prefix="py-test:", state_timeout_ms=500, state_stale_ms=2000,
        state_max_skew_ms=300_000,
    )


def pay(e: aegis.Engine) -> aegis.Decision:
    return e.evaluate(agent="a", tool="pay")


def within(seconds: float, what: str, ok: Callable[[], bool]) -> float:
    start = time.monotonic()
    while not ok():
        if time.monotonic() - start > seconds:
            pytest.fail(f"{what}: not within {seconds} s")
        time.sleep(0.005)
    return time.monotonic() - start


def test_a_kill_by_one_engine_reaches_another_within_a_second(redis_url: str) -> None:
    with fleet_engine(redis_url) as a, fleet_engine(redis_url) as b:
        within(2, "an engine with state allows", lambda: pay(a).allowed)
        within(2, "the second engine allows", lambda: pay(b).allowed)
        a.kill("tool", "pay", "stop")
        assert pay(a).rules == ["kill:tool:pay"]
        within(1, "the kill reaches the second engine", lambda: pay(b).rules == ["kill:tool:pay"])
        assert b.revive("tool", "pay") is True
        within(1, "the revive reaches the first engine", lambda: pay(a).allowed)


def test_a_wrong_password_is_config_invalid_at_construction(redis_url: str) -> None:
    wrong = redis_url.replace(PASSWORD, "not-the-password")
    with pytest.raises(aegis.ConfigError) as info:
        aegis.Engine.from_yaml(POLICY, state=wrong)
    assert info.value.code == "config_invalid" and info.value.field == "state"
    assert "not-the-password" not in str(info.value)


def test_a_misspelt_state_option_gets_the_did_you_mean(redis_url: str) -> None:
    with pytest.raises(aegis.ConfigError) as info:
        aegis.Engine.from_yaml(POLICY, state=redis_url, state_timout_ms=50)  # type: ignore[call-arg]
    assert info.value.field == "state_timout_ms"
    assert str(info.value) == "unknown option `state_timout_ms` (did you mean `state_timeout_ms`?)"


def test_an_unreachable_store_denies_and_kill_is_state_unavailable() -> None:
    url = f"redis://:pw@127.0.0.1:{free_port()}/0"
    with aegis.Engine.from_yaml(POLICY, state=url, state_timeout_ms=50) as e:
        assert pay(e).rules == ["state:unavailable"]
        with pytest.raises(aegis.AegisError) as info:
            e.kill("tool", "pay")
        assert info.value.code == "state_unavailable"
        with pytest.raises(aegis.AegisError) as info:
            e.revive("tool", "pay")
        assert info.value.code == "state_unavailable"
