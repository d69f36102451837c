#!/usr/bin/env python3
"""Converts tests/vectors/generated/*.json into a length-prefixed text file for the C runner.

The files are read strictly, per "Schema (v2)" of tests/vectors/README.md (schema.json):
an unknown key at any level, a key of the wrong type, a missing required key, a
duplicate key or an unknown step `op` is an error that fails the run (no file is
skipped). Standard library only.

Record: a line `TAG COUNT`, then COUNT fields, each a line `LEN` followed by LEN bytes and
a newline. Tags:
  N name                              start of a vector
  O options_json                      aegis_engine_options_set_json with `options` as JSON text
  C                                   add the runner's audit callback (`audit_callback: true`)
  P policy_yaml policy_hash errors    build the engine (from_yaml_with); policy_hash "" and
                                      errors > 0: the load must fail with that many errors
  L line column message               the next load error (in order): line, column, substring
  R name request expect audit         evaluate_json must return expect byte for byte; audit
                                      (callback vectors) is the record the callback must get
  X name request                      evaluate_json must fail with AEGIS_INVALID_REQUEST
  F name request                      the callback fails on this call: AEGIS_IO_ERROR, audit_failed
  K scope id reason                   kill
  V scope id                          revive
  M session expect                    aegis_engine_marks(session) must give expect (the step's
                                      `expect` as canonical JSON) byte for byte
  E session                           aegis_engine_clear_marks(session)
  G name                              a guarded-tool step: not applicable in C, counted
  Q options code field message yaml   a configuration error: set_json (or, if it passes, the
                                      constructor) must fail with exactly this code, field, message
  Z                                   end of vector (free the engine)
Usage: vectors_to_text.py GENERATED_DIR OUT_FILE
"""
import glob
import json
import os
import re
import sys


class VectorError(Exception):
    pass


def no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise VectorError(f"duplicate key {k!r}")
        out[k] = v
    return out


def is_type(v, t):
    # bool is not an int, an int is not a float: JSON types exactly
    if t is int:
        return type(v) is int
    return type(v) is t


def check(obj, where, required, optional=None):
    """obj is an object with exactly the keys of `required` (name → type) and some of
    `optional`; returns it."""
    optional = optional or {}
    if type(obj) is not dict:
        raise VectorError(f"{where}: not an object")
    for k in obj:
        if k not in required and k not in optional:
            raise VectorError(f"{where}: unknown key {k!r}")
    for k, t in required.items():
        if k not in obj:
            raise VectorError(f"{where}: missing key {k!r}")
    for k, v in obj.items():
        t = required.get(k, optional.get(k))
        if t is not None and not is_type(v, t):
            raise VectorError(f"{where}: {k!r} must be a {t.__name__}, not {type(v).__name__}")
    return obj


def string_list(v, where):
    if type(v) is not list or any(type(x) is not str for x in v):
        raise VectorError(f"{where}: not a list of strings")


def const(v, allowed, where):
    if v not in allowed:
        raise VectorError(f"{where}: {v!r} is not one of {sorted(allowed)}")


OPTIONS = {"signing_key": str, "signing_key_id": str, "approval_key": str,
           "request_max_bytes": int, "request_max_depth": int, "max_limit_counters": int,
           "max_sessions": int, "marks_ttl": str}
SCOPES = {"agent", "tool", "session", "all"}
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")  # a mark label (SPEC §10)


def session_name(v, where):
    """A session given to a control call: not empty, and no NUL (a C string cannot carry it)."""
    if v == "" or "\0" in v:
        raise VectorError(f"{where}: {v!r} is empty or has a NUL")


def label_list(v, where):
    """The `expect` of a marks step: unique mark labels (schema.json `label`)."""
    string_list(v, where)
    for x in v:
        if not LABEL.fullmatch(x):
            raise VectorError(f"{where}: {x!r} is not a mark label")
    if len(set(v)) != len(v):
        raise VectorError(f"{where}: a label twice")


def guarded_step(s, where):
    check(s, where, {"op": str, "name": str, "contexts": list, "tool": str, "args": dict},
          {"action": str, "mutate": dict, "expect_record": dict, "expect_tool_args": dict, "expect_error": str})
    for i, c in enumerate(s["contexts"]):
        w = f"{where}: contexts[{i}]"
        check(c, w, {}, {"agent": str, "chain": list, "session": str, "environment": str, "context": dict})
        if "chain" in c:
            string_list(c["chain"], w + ": chain")
    if "expect_record" in s:
        w = where + ": expect_record"
        r = check(s["expect_record"], w,
                  {"agent": str, "tool": str, "outcome": str, "rules": list, "params_sha256": str},
                  {"chain": list, "session": str, "environment": str, "action": str})
        const(r["outcome"], {"allow", "deny", "require_approval"}, w + ": outcome")
        string_list(r["rules"], w + ": rules")
        if "chain" in r:
            string_list(r["chain"], w + ": chain")
    if "expect_error" in s:
        const(s["expect_error"], {"denied", "approval_required", "invalid_argument"}, where + ": expect_error")


def step_records(s, where, callback):
    """The records of one step (validated)."""
    op = s.get("op") if type(s) is dict else None
    if op == "evaluate":
        base = {"op": str, "name": str, "request_json": str}
        if "expect_json" in s:
            check(s, where, {**base, "expect_json": str})
            audit = ""
            if callback:
                audit = audit_of(s["expect_json"], where)
            return [("R", s["name"], s["request_json"], s["expect_json"], audit)]
        if "callback" in s:
            check(s, where, {**base, "callback": str, "expect_error": str})
            const(s["callback"], {"fail"}, where + ": callback")
            const(s["expect_error"], {"audit_failed"}, where + ": expect_error")
            if not callback:
                raise VectorError(f"{where}: `callback` in a vector without `audit_callback`")
            return [("F", s["name"], s["request_json"])]
        check(s, where, {**base, "expect_error": str})
        const(s["expect_error"], {"request"}, where + ": expect_error")
        return [("X", s["name"], s["request_json"])]
    if op == "kill":
        check(s, where, {"op": str, "scope": str, "id": str, "reason": str})
        const(s["scope"], SCOPES, where + ": scope")
        return [("K", s["scope"], s["id"], s["reason"])]
    if op == "revive":
        check(s, where, {"op": str, "scope": str, "id": str})
        const(s["scope"], SCOPES, where + ": scope")
        return [("V", s["scope"], s["id"])]
    if op == "marks":
        check(s, where, {"op": str, "session": str, "expect": list})
        session_name(s["session"], where + ": session")
        label_list(s["expect"], where + ": expect")
        return [("M", s["session"], json.dumps(s["expect"], separators=(",", ":"), ensure_ascii=False))]
    if op == "clear_marks":
        check(s, where, {"op": str, "session": str})
        session_name(s["session"], where + ": session")
        return [("E", s["session"])]
    if op == "guarded":
        guarded_step(s, where)
        return [("G", s["name"])]
    raise VectorError(f"{where}: unknown op {op!r}")


def audit_of(expect_json, where):
    """The exact text of the top-level `audit` value of a decision line."""
    dec = json.JSONDecoder()
    text = expect_json
    if not text.startswith("{"):
        raise VectorError(f"{where}: expect_json is not an object")
    pos = 1
    while pos < len(text) and text[pos] != "}":
        key, pos = dec.raw_decode(text, pos)
        if text[pos] != ":":
            raise VectorError(f"{where}: expect_json is not canonical JSON")
        _, end = dec.raw_decode(text, pos + 1)
        if key == "audit":
            return text[pos + 1:end]
        pos = end + 1 if text[end] == "," else end
    raise VectorError(f"{where}: expect_json has no audit")


def vector_records(v, where):
    check(v, where, {"name": str, "description": str, "options": dict, "policy_yaml": str, "steps": list},
          {"policy_hash": str, "audit_callback": bool, "load_errors": list, "config_errors": list})
    check(v["options"], where + ": options", {}, OPTIONS)
    callback = v.get("audit_callback", False)
    if "audit_callback" in v and callback is not True:
        raise VectorError(f"{where}: audit_callback must be true when given")
    out = [("N", v["name"])]
    if "config_errors" in v:
        if v["steps"] or "load_errors" in v or "policy_hash" in v or callback or v["options"]:
            raise VectorError(f"{where}: a config_errors vector has no steps, load errors, hash, callback or options")
        for i, c in enumerate(v["config_errors"]):
            w = f"{where}: config_errors[{i}]"
            check(c, w, {"options": dict, "options_camel": dict, "code": str, "field": str, "message": str,
                         "field_camel": str, "message_camel": str})
            const(c["code"], {"config_invalid"}, w + ": code")
            out.append(("Q", json.dumps(c["options"], ensure_ascii=False), c["code"], c["field"], c["message"],
                        v["policy_yaml"]))
        if not v["config_errors"]:
            raise VectorError(f"{where}: config_errors is empty")
        out.append(("Z",))
        return out
    out.append(("O", json.dumps(v["options"], ensure_ascii=False)))
    if callback:
        out.append(("C",))
    if "load_errors" in v:
        if v["steps"] or "policy_hash" in v or not v["load_errors"]:
            raise VectorError(f"{where}: a load_errors vector has some errors, no steps and no policy_hash")
        out.append(("P", v["policy_yaml"], "", len(v["load_errors"])))
        for i, e in enumerate(v["load_errors"]):
            check(e, f"{where}: load_errors[{i}]", {"line": int, "column": int, "message": str})
            out.append(("L", e["line"], e["column"], e["message"]))
    else:
        if "policy_hash" not in v:
            raise VectorError(f"{where}: missing key 'policy_hash'")
        out.append(("P", v["policy_yaml"], v["policy_hash"], 0))
        for i, s in enumerate(v["steps"]):
            out.extend(step_records(s, f"{where}: steps[{i}]", callback))
    out.append(("Z",))
    return out


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
        try:
            with open(path, encoding="utf-8") as f:
                v = json.load(f, object_pairs_hook=no_duplicates)
            records = vector_records(v, os.path.basename(path))
        except (VectorError, ValueError) as e:
            sys.exit(f"{path}: {e}")
        for r in records:
            rec(out, *r)
    with open(dst, "wb") as f:
        f.write(b"".join(out))


if __name__ == "__main__":
    main()
