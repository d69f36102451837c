#!/usr/bin/env python3
"""Converts tests/vectors/generated/*.json into a length-prefixed text file for the C runner.

Record: a line `TAG COUNT`, then COUNT fields, each a line `LEN` followed by LEN bytes and
a newline. Tags:
  N name                      start of a vector
  O key value                 an engine option (signing_key, signing_key_id, approval_key)
  P policy_yaml policy_hash   build the engine (from_yaml_with) and check its policy hash
  L line column message       the load must fail with this error (line/column/substring)
  R name request expect       evaluate_json must return expect byte for byte
  X name request              evaluate_json must fail with AEGIS_INVALID_REQUEST
  K scope id reason           kill
  V scope id                  revive
  Z                           end of vector (free the engine)
Usage: vectors_to_text.py GENERATED_DIR OUT_FILE
"""
import glob
import json
import os
import sys


def rec(out, tag, *fields):
    out.append(f"{tag} {len(fields)}\n".encode())
    for f in fields:
        b = str(f).encode("utf-8")
        out.append(f"{len(b)}\n".encode())
        out.append(b)
        out.append(b"\n")


def main():
    src, dst = sys.argv[1], sys.argv[2]
    out = []
    files = sorted(glob.glob(os.path.join(src, "*.json")))
    if not files:
        sys.exit(f"no vectors in {src}")
    for path in files:
        with open(path, encoding="utf-8") as f:
            v = json.load(f)
        rec(out, "N", v["name"])
        for key in ("signing_key", "signing_key_id", "approval_key"):
            if key in v.get("options", {}):
                rec(out, "O", key, v["options"][key])
        if "load_errors" in v:
            rec(out, "P", v["policy_yaml"], "")
            for e in v["load_errors"]:
                rec(out, "L", e["line"], e["column"], e["message"])
        else:
            rec(out, "P", v["policy_yaml"], v.get("policy_hash", ""))
            for s in v.get("steps", []):
                op = s["op"]
                if op == "evaluate" and "expect_error" in s:
                    rec(out, "X", s.get("name", ""), s["request_json"])
                elif op == "evaluate":
                    rec(out, "R", s.get("name", ""), s["request_json"], s["expect_json"])
                elif op == "kill":
                    rec(out, "K", s["scope"], s["id"], s.get("reason", ""))
                elif op == "revive":
                    rec(out, "V", s["scope"], s["id"])
                else:
                    sys.exit(f"{path}: unknown op {op!r}")
        rec(out, "Z")
    with open(dst, "wb") as f:
        f.write(b"".join(out))


if __name__ == "__main__":
    main()
