"""Runs the independent verifier printed in docs/audit.md against real logs written
by `aegis eval --audit`, and against tampered copies that it must reject."""
import json
import os
import re
import subprocess
import sys
import tempfile

aegis = sys.argv[1]
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
doc = open(os.path.join(root, "docs", "audit.md"), encoding="utf-8").read()
code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
body = code.split('if __name__ == "__main__":')[0]
assert len(code.strip().splitlines()) <= 40, "the documented verifier should stay short"
ns = {}
exec(compile(body, "docs/audit.md", "exec"), ns)
verify = ns["verify"]

failures = 0
with tempfile.TemporaryDirectory() as tmp:
    key = os.path.join(tmp, "key")
    open(key, "wb").write(b"audit-doc-test-key")
    log = os.path.join(tmp, "audit.jsonl")
    for bundle in ["finance", "support", "hr-files"]:
        subprocess.run(
            [aegis, "eval", "-p", f"policies/{bundle}", "--audit", log, "--signing-key-file", key,
             f"policies/{bundle}/requests.jsonl"],
            cwd=root, check=True, stdout=subprocess.DEVNULL)
    lines = open(log, encoding="utf-8").read().splitlines()
    good = verify(log, open(key, "rb").read())
    cli = subprocess.run([aegis, "audit", "verify", log, "--signing-key-file", key], capture_output=True, text=True)
    print("doc verifier:", good, "| cli:", cli.stdout.strip())
    if not good.startswith(f"ok: {len(lines)} records") or cli.returncode != 0 or cli.stdout.strip() != good:
        failures += 1
        print("FAIL: both verifiers must accept the log with the same head")

    def tampered(name, new_lines, keybytes=b"audit-doc-test-key"):
        global failures
        p = os.path.join(tmp, name + ".jsonl")
        open(p, "w", encoding="utf-8").write("".join(l + "\n" for l in new_lines))
        doc_result = verify(p, keybytes)
        kf = os.path.join(tmp, name + ".key")
        open(kf, "wb").write(keybytes)
        cli = subprocess.run([aegis, "audit", "verify", p, "--signing-key-file", kf], capture_output=True, text=True)
        ok = not doc_result.startswith("ok") and cli.returncode == 1 and "seq" in cli.stdout
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: doc says {doc_result!r}; cli says {cli.stdout.strip()!r}")
        failures += 0 if ok else 1

    rec = json.loads(lines[3])
    rec["outcome"] = "allow" if rec["outcome"] != "allow" else "deny"
    edited = lines[:3] + [json.dumps(rec, separators=(",", ":"), sort_keys=True, ensure_ascii=False)] + lines[4:]
    tampered("edited-outcome", edited)
    tampered("deleted-record", lines[:5] + lines[6:])
    tampered("reordered", lines[:2] + [lines[3], lines[2]] + lines[4:])
    tampered("duplicated", lines[:4] + [lines[3]] + lines[4:])
    tampered("wrong-key", lines, b"another-key")
print("audit-doc-test:", "1 failed" if failures else "passed")
sys.exit(1 if failures else 0)
