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
    reqs = [s["request_json"] for s in v.get("steps", []) if "request_json" in s]
    if v.get("policy_yaml") and reqs:
        for r in reqs:
            put("evaluate", v["policy_yaml"] + "\0" + r)
        # the whole sequence on one engine (marks, limits and grants carry over)
        put("evaluate", v["policy_yaml"] + "\0" + "\0".join(reqs[:16]))
# Evaluate: session marks (§10) by hand — marks with and without ttl, every kind of
# session.marks test, the fuzz target's table of two sessions filling up, calls
# without a session, a back-dated call (requests separated by NUL, as above).
MARKS_POLICY = """aegis: 1
default: allow
rules:
  - id: reads
    match: {tool: files}
    outcome: allow
    marks: [pii, {label: a.b, ttl: 1s}]
  - id: fetch
    match: {tool: web}
    outcome: allow
    marks: [{label: untrusted, ttl: 2m}]
  - id: bad
    match: {tool: db}
    when: {params.q: {contains_any: [drop]}}
    outcome: deny
    marks: [sus]
  - id: trifecta
    match: {tool: mail}
    when: {session.marks: {contains_all: [pii, untrusted]}}
    outcome: require_approval
    approvers: [sec]
    marks: [mailed]
  - id: quarantine
    when: {any: [{session.marks: {contains: sus}}, {session.marks.0: {eq: B}}, {session.marks: {count: {gte: 4}}}]}
    outcome: deny
  - id: clean
    match: {tool: calc}
    when: {not: {session.marks: {exists: true}}}
    outcome: deny
"""
def marks_seq(*reqs):
    return MARKS_POLICY + "\0" + "\0".join(json.dumps(r, separators=(",", ":")) for r in reqs)
def mreq(tool, session=None, t=None, **params):
    r = {"agent": "a", "tool": tool}
    if session: r["session"] = session
    if t: r["time"] = "2026-01-05T" + t + "Z"
    if params: r["params"] = params
    return r
put("evaluate", marks_seq(mreq("files", "s1"), mreq("web", "s1"), mreq("mail", "s1"), mreq("mail", "s2")))
put("evaluate", marks_seq(mreq("db", "s1", q="DROP x"), mreq("calc", "s1"), mreq("files", "s2"), mreq("web", "s3"),
                          mreq("db", "s3", q="drop")))
put("evaluate", marks_seq(mreq("files"), mreq("calc"), mreq("db", q="drop"), mreq("mail")))
put("evaluate", marks_seq(mreq("files", "s1", "10:00:00"), mreq("files", "s1", "10:00:01"), mreq("web", "s2", "10:00:02"),
                          mreq("web", "s3", "10:02:03"), mreq("files", "s1", "09:00:00"), mreq("mail", "s1", "10:01:00")))
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
