#!/usr/bin/env python3
"""Builds fuzz/corpus/<target>/ seed files from tests/vectors/generated and policies/."""
import glob, hashlib, json, os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")

def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)

policies, requests, decisions = [], [], []
for path in sorted(glob.glob(os.path.join(ROOT, "tests/vectors/generated/*.json"))):
    v = json.load(open(path))
    if v.get("policy_yaml"):
        policies.append(v["policy_yaml"])
    for s in v.get("steps", []):
        if "request_json" in s:
            requests.append(s["request_json"])
        if "expect_json" in s:
            decisions.append(s["expect_json"])
for path in sorted(glob.glob(os.path.join(ROOT, "policies/*/*.yaml"))):
    policies.append(open(path).read())
for path in sorted(glob.glob(os.path.join(ROOT, "policies/*/requests.jsonl"))):
    requests += [l for l in open(path).read().splitlines() if l.strip()]

for p in policies:
    put("load_yaml", p)
for r in requests:
    put("request_json", r)
    put("canonical_json", r)
for d in decisions:
    put("canonical_json", d)
    put("audit_file", json.dumps(json.loads(d)["audit"], separators=(",", ":")) + "\n")
# Evaluate: every vector policy paired with its own requests.
for path in sorted(glob.glob(os.path.join(ROOT, "tests/vectors/generated/*.json"))):
    v = json.load(open(path))
    for s in v.get("steps", []):
        if v.get("policy_yaml") and "request_json" in s:
            put("evaluate", v["policy_yaml"] + "\0" + s["request_json"])
# Audit files: whole chains from the vectors (records joined), then truncated copies.
for path in sorted(glob.glob(os.path.join(ROOT, "tests/vectors/generated/*.json"))):
    v = json.load(open(path))
    recs = [json.dumps(json.loads(s["expect_json"])["audit"], separators=(",", ":"))
            for s in v.get("steps", []) if "expect_json" in s]
    if recs:
        blob = "\n".join(recs) + "\n"
        put("audit_file", blob)
        put("audit_file", blob[: len(blob) * 2 // 3])
# Grant tokens: mode byte 0 (raw token) and 1 (mutate the genuine token).
for t in [b"\x00v1.e30.AAAA", b"\x00garbage", b"\x01", b"\x01\x00\x00\x00\x01", b"\x00v1..", b"\x01" + b"\x00" * 40 + b"\x02"]:
    put("grant_token", t)
# oracle: the bytes drive the generator's choices (8 bytes per draw); a few fixed
# byte patterns of different lengths give it different starting bundles.
import random
_r = random.Random(1)
for n in (0, 16, 64, 200, 512, 1024):
    put("oracle", bytes(_r.getrandbits(8) for _ in range(n)))
print("corpus written to", OUT)
