#!/usr/bin/env python3
"""Runs a command (the C tests) beside a REAL OpenTelemetry collector (rotel).

    with_rotel.py -- COMMAND [ARGS...]

With env AEGIS_ROTEL set (the rotel-agent binary; the root Makefile exports it and
`make ship-rotel` installs it), starts it on two free loopback ports with its detailed
debug log of received log records going to a file, waits until it accepts
connections, and runs COMMAND with:

    AEGIS_TEST_OTLP_ENDPOINT  http://127.0.0.1:PORT
    AEGIS_TEST_ROTEL_OUT      the file rotel prints received records to
    AEGIS_TEST_TMP            a fresh temp folder (for audit files)
    AEGIS_TEST_ROTEL_PID      rotel's process id (the test pauses it with SIGSTOP/SIGCONT)

then stops rotel (SIGTERM, then SIGKILL), on every path. Exits with COMMAND's status.
AEGIS_ROTEL unset: COMMAND runs without these variables (its collector end-to-end test
skips, saying why). AEGIS_ROTEL set but not an executable file: fails at once.
Standard library only.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile

# Port helpers shared with the shipper's own end-to-end test (standard library only).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "aegis-ship", "tests"))
from e2e_rotel import free_port, wait_port  # noqa: E402


def stop(proc):
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGCONT)  # in case the test left it paused
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def main():
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    rotel = os.environ.get("AEGIS_ROTEL", "")
    if not rotel:
        print("with_rotel: AEGIS_ROTEL is unset: the collector end-to-end test will skip "
              "(run `make ship-rotel`, or the root Makefile's targets, to run it)", flush=True)
        return subprocess.call(args)
    if not (os.path.isfile(rotel) and os.access(rotel, os.X_OK)):
        print(f"with_rotel: FAIL: AEGIS_ROTEL={rotel} is not an executable file "
              "(run `make ship-rotel`)", file=sys.stderr, flush=True)
        return 1
    tmp = tempfile.mkdtemp(prefix="aegis-c-rotel-")
    http_port = free_port()
    grpc_port = free_port()
    while grpc_port == http_port:
        grpc_port = free_port()
    out_path = os.path.join(tmp, "rotel.out")
    proc = None
    ok = False
    try:
        with open(out_path, "w") as out:
            proc = subprocess.Popen(
                [rotel, "start",
                 "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
                 "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
                 "--exporter", "blackhole",
                 "--debug-log", "logs", "--debug-log-verbosity", "detailed",
                 "--log-file", os.path.join(tmp, "rotel.log"),
                 "--pid-file", os.path.join(tmp, "rotel.pid")],
                stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
        wait_port(http_port, proc)
        print(f"with_rotel: rotel (pid {proc.pid}) listening on 127.0.0.1:{http_port}", flush=True)
        env = dict(os.environ,
                   AEGIS_TEST_OTLP_ENDPOINT=f"http://127.0.0.1:{http_port}",
                   AEGIS_TEST_ROTEL_OUT=out_path,
                   AEGIS_TEST_TMP=tmp,
                   AEGIS_TEST_ROTEL_PID=str(proc.pid))
        rc = subprocess.call(args, env=env)
        ok = rc == 0
        return rc
    except Exception as e:  # rotel did not start: fail, never skip
        print(f"with_rotel: FAIL: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        if proc is not None:
            stop(proc)
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"with_rotel: kept {tmp} (rotel.out, audit files) for inspection", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
