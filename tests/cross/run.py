"""Cross-binding check of odd inputs (issue 16): the CLI, Python, Node, C and Go must
give the same answer — the same decision line byte for byte, or the same refusal code —
for every case in cases.json. Run from the repository root with the venv's Python after
the bindings are built (the Makefile's `cross-test` does both):

    .venv/bin/python tests/cross/run.py target/release/aegis

Each foreign runner (node.mjs, c_runner.c, go/main.go) prints one JSON line
per case: {"name", "json": R, "native": N or null}; R is {"line": DECISION LINE} or
{"error": CODE}, N is {"outcome", "rules", "hash"} (the record's hash covers every
byte of the record) or {"error": CODE}. A fresh engine decides every case, so every
record is seq 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
Result = Dict[str, str]


def cli(aegis: str, policy: Path, cases: List[Dict[str, Any]], tmp: Path) -> List[Dict[str, Any]]:
    out = []
    for i, c in enumerate(cases):
        if "json" not in c:
            out.append({"name": c["name"], "json": None, "native": None})
            continue
        f = tmp / f"case{i}.json"
        f.write_bytes(c["json"].encode("utf-8"))
        p = subprocess.run([aegis, "eval", "-p", str(policy), str(f)], capture_output=True, text=True)
        if p.returncode == 0:
            r: Result = {"line": p.stdout.rstrip("\n")}
        elif p.returncode == 2:
            r = {"error": "request_invalid"}
        else:
            r = {"error": f"exit {p.returncode}: {p.stderr.strip()}"}
        out.append({"name": c["name"], "json": r, "native": None})
    return out


def python_native(c: Dict[str, Any]) -> Any:
    tag = c["native"]
    req = json.loads(tag["base"])
    key = tag["set"]
    value: Any = tag["bytes"].encode() if "bytes" in tag else int(tag["int"])
    req[key[0]][key[1]] = value
    return req


def python(policy_text: str, cases: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    import aegis

    def code_of(e: Exception) -> str:
        return str(getattr(e, "code", type(e).__name__))

    def run(f: Any) -> Result:
        try:
            return {"line": f()}
        except aegis.AegisError as e:
            return {"error": code_of(e)}

    out = []
    for c in cases:
        j: Optional[Result] = None
        if "json" in c:
            j = run(lambda: aegis.Engine.from_yaml(policy_text).evaluate_json(c["json"]))
            native_req = None
            try:
                if not c.get("host_parser_keeps_last"):
                    native_req = json.loads(c["json"])
            except ValueError:
                pass
        else:
            native_req = python_native(c)
        n: Optional[Dict[str, Any]] = None
        if native_req is not None:
            try:
                d = aegis.Engine.from_yaml(policy_text).evaluate(native_req)
                n = {"outcome": str(d.outcome.value), "rules": list(d.rules), "hash": d.audit["hash"]}
            except aegis.AegisError as e:
                n = {"error": code_of(e)}
        out.append({"name": c["name"], "json": j, "native": n})
    return out


def summary(r: Dict[str, Any]) -> Dict[str, Any]:
    """What a native answer is compared by: outcome, rules and the record's hash."""
    if "error" in r:
        return r
    d = json.loads(r["line"])
    return {"outcome": d["outcome"], "rules": d["rules"], "hash": d["audit"]["hash"]}


# The C ABI's status numbers (aegis.h) by the codes they stand for (docs/errors).
C_STATUS = {1: "invalid_argument", 2: "invalid_argument", 3: "request_invalid", 4: "policy_invalid", 5: "audit_failed",
            6: "invalid_argument", 7: "io", 8: "invalid_argument", 9: "collector_failed", 10: "config_invalid"}


def c_runner(policy: Path, cases: List[Dict[str, Any]], tmp: Path) -> List[Dict[str, Any]]:
    tsv = tmp / "cases.tsv"
    tsv.write_text("".join(f"{c['name']}\t{c['json']}\n" for c in cases if "json" in c), encoding="utf-8")
    p = subprocess.run([str(ROOT / "target/ffi-test/cross_c"), str(policy), str(tsv)], capture_output=True)
    if p.returncode != 0:
        sys.exit(f"cross: the C runner failed ({p.returncode}):\n{p.stderr.decode(errors='replace')}")
    out = []
    for line in p.stdout.decode("utf-8").splitlines():
        name, kind, rest = line.split("\t", 2)
        r: Result = {"line": rest} if kind == "OK" else {"error": C_STATUS.get(int(rest), f"status {rest}")}
        out.append({"name": name, "json": r, "native": None})
    return out


def foreign(cmd: List[str], cwd: Path, env: Optional[Dict[str, str]] = None) -> List[Dict[str, Any]]:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"cross: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def main() -> None:
    aegis_bin = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/aegis")
    spec = json.loads((HERE / "cases.json").read_text(encoding="utf-8"))
    cases = spec["cases"]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        policy = tmp / "policy.yaml"
        policy.write_text(spec["policy"], encoding="utf-8")
        cases_file = HERE / "cases.json"
        runs = {
            "cli": cli(aegis_bin, policy, cases, tmp),
            "python": python(spec["policy"], cases),
            "node": foreign(["node", str(HERE / "node.mjs"), str(cases_file)], ROOT),
            "c": c_runner(policy, cases, tmp),
            "go": foreign(["go", "run", ".", str(cases_file)], HERE / "go"),
        }
    reference = {r["name"]: r["json"] for r in runs["cli"]}
    failures = []
    checked = 0
    for c in cases:
        name = c["name"]
        if "json" in c:
            want = reference[name]
        elif "same_as" in c:
            want = reference[c["same_as"]]
        else:
            want = {"error": "request_invalid"}
        for binding, results in runs.items():
            got = next((r for r in results if r["name"] == name), None)
            if got is None and "json" not in c:
                continue  # the CLI and C take JSON text only: no native form to run
            if got is None:
                failures.append(f"{binding}: no answer for {name!r}")
                continue
            for form in ("json", "native"):
                g = got.get(form)
                if g is None:
                    continue
                checked += 1
                if g != (want if form == "json" else summary(want)):
                    failures.append(f"{binding} {form} {name!r}:\n  want {want}\n  got  {g}")
    for f in failures:
        print("FAIL", f)
    print(f"cross: {len(cases)} cases, {checked} answers from 5 bindings compared")
    print(f"{checked - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
