#!/usr/bin/env python3
"""Build the shared Aegis test vectors: tests/vectors/*.yaml -> generated/*.json.

This is an independent implementation of ONLY the hashing and format rules of
SPEC.md (RFC 8785 canonical JSON, SHA-256, HMAC-SHA256, base64url, the audit record
and the decision object).  It never calls Aegis: outcomes, rules, reasons and errors
are authored by hand in the vectors; this script fills in the bytes (params hash,
policy hash, approval ids, grant tokens, the record chain and signatures).

Usage (Python 3.9+, `pip install -r requirements-dev.txt` for ruamel.yaml):
    python3 tests/vectors/generate.py              # (re)write generated/*.json
    python3 tests/vectors/generate.py --check      # exit 1 if anything would change
    python3 tests/vectors/generate.py --self-test  # canonical JSON self-checks

The format of the authored and generated files is described in README.md.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import math
import re
import sys
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "generated"


class VectorError(Exception):
    """An authored vector is wrong or would be ambiguous."""


# --------------------------------------------------------------------------
# RFC 8785 canonical JSON (JCS), written from the RFC's words
# --------------------------------------------------------------------------

_SHORT_ESCAPES = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}
MAX_SAFE_INT = 2 ** 53


def es6_number(x):
    """ECMAScript Number::toString for a finite IEEE-754 double (RFC 8785 §3.2.2.3)."""
    if isinstance(x, bool):
        raise VectorError("a boolean is not a number")
    if isinstance(x, int):
        if abs(x) > MAX_SAFE_INT:
            raise VectorError(f"integer {x} is beyond 2^53; I-JSON cannot carry it exactly")
        x = float(x)
    if not isinstance(x, float):
        raise VectorError(f"not a number: {x!r}")
    if not math.isfinite(x):
        raise VectorError("NaN and infinities have no JSON form")
    if x == 0:
        return "0"  # also -0
    sign = "-" if x < 0 else ""
    # repr() gives the shortest digit string that round-trips (closest on ties),
    # which is exactly the k/s/n choice ES6 asks for.
    text = repr(abs(x))
    if "e" in text:
        mantissa, exp_text = text.split("e")
        exp = int(exp_text)
    else:
        mantissa, exp = text, 0
    if "." in mantissa:
        int_part, frac_part = mantissa.split(".")
    else:
        int_part, frac_part = mantissa, ""
    digits = int_part + frac_part
    point = len(int_part) + exp  # decimal point sits after `point` digits
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    s = stripped.rstrip("0")
    k, n = len(s), point  # value = 0.s * 10^n  ==  s * 10^(n-k)
    if k <= n <= 21:
        out = s + "0" * (n - k)
    elif 0 < n <= 21:
        out = s[:n] + "." + s[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + s
    else:
        e = n - 1
        e_text = ("+" if e >= 0 else "-") + str(abs(e))
        out = (s if k == 1 else s[0] + "." + s[1:]) + "e" + e_text
    return sign + out


def jcs_string(s):
    parts = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            parts.append('\\"')
        elif ch == "\\":
            parts.append("\\\\")
        elif o < 0x20:
            parts.append(_SHORT_ESCAPES.get(o, "\\u%04x" % o))
        elif 0xD800 <= o <= 0xDFFF:
            raise VectorError("lone surrogate in a string: not valid I-JSON")
        else:
            parts.append(ch)
    parts.append('"')
    return "".join(parts)


def _utf16_key(k):
    return k.encode("utf-16-be")  # byte order of UTF-16BE == code-unit order


def jcs(value):
    """Canonical JSON text of a JSON value built from dict/list/str/int/float/bool/None."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return es6_number(value)
    if isinstance(value, str):
        return jcs_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise VectorError(f"non-string object key {k!r}")
        keys = sorted(value, key=_utf16_key)
        return "{" + ",".join(jcs_string(k) + ":" + jcs(value[k]) for k in keys) + "}"
    raise VectorError(f"not a JSON value: {value!r} ({type(value).__name__})")


def jcs_bytes(value):
    return jcs(value).encode("utf-8")


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def b64url(data):
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


# --------------------------------------------------------------------------
# YAML 1.2 core schema, cross-checked against ruamel.yaml
# --------------------------------------------------------------------------

_CORE_NULL = re.compile(r"~|null|Null|NULL|")
_CORE_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")
_CORE_INT10 = re.compile(r"[-+]?[0-9]+")
_CORE_INT8 = re.compile(r"0o[0-7]+")
_CORE_INT16 = re.compile(r"0x[0-9a-fA-F]+")
_CORE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_CORE_INF = re.compile(r"[-+]?(\.inf|\.Inf|\.INF)")
_CORE_NAN = re.compile(r"\.nan|\.NaN|\.NAN")

_TAG = "tag:yaml.org,2002:"


def _core_scalar(node):
    """(tag, value) of a scalar node under the YAML 1.2 core schema."""
    text = node.value
    if node.style is not None:  # quoted, literal or folded: always a string
        return "str", text
    if _CORE_NULL.fullmatch(text):
        return "null", None
    if _CORE_BOOL.fullmatch(text):
        return "bool", text.lower() == "true"
    if _CORE_INT10.fullmatch(text):
        return "int", int(text, 10)
    if _CORE_INT8.fullmatch(text):
        return "int", int(text[2:], 8)
    if _CORE_INT16.fullmatch(text):
        return "int", int(text[2:], 16)
    if _CORE_FLOAT.fullmatch(text):
        return "float", float(text)
    if _CORE_INF.fullmatch(text) or _CORE_NAN.fullmatch(text):
        return "float", float(text.replace(".", "").lower())
    return "str", text


def _mark(node):
    m = node.start_mark
    return f"line {m.line + 1}, column {m.column + 1}"


def _core_construct(node, where):
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    tag = getattr(node.tag, "value", node.tag)
    if isinstance(node, ScalarNode):
        kind, value = _core_scalar(node)
        if tag != _TAG + kind:
            raise VectorError(
                f"{where}: {_mark(node)}: scalar {node.value!r} is {tag} for ruamel.yaml but "
                f"{kind} under the YAML 1.2 core schema; quote it or write it differently")
        if isinstance(value, float) and not math.isfinite(value):
            raise VectorError(f"{where}: {_mark(node)}: .inf/.nan are not allowed")
        return value
    if isinstance(node, SequenceNode):
        if tag != _TAG + "seq":
            raise VectorError(f"{where}: {_mark(node)}: unexpected tag {tag}")
        return [_core_construct(n, where) for n in node.value]
    if isinstance(node, MappingNode):
        if tag != _TAG + "map":
            raise VectorError(f"{where}: {_mark(node)}: unexpected tag {tag}")
        out = {}
        for knode, vnode in node.value:
            key = _core_construct(knode, where)
            if not isinstance(key, str):
                raise VectorError(f"{where}: {_mark(knode)}: non-string key {key!r}")
            if key == "<<" and knode.style is None:
                raise VectorError(f"{where}: {_mark(knode)}: merge keys are not YAML 1.2")
            if key in out:
                raise VectorError(f"{where}: {_mark(knode)}: duplicate key {key!r}")
            out[key] = _core_construct(vnode, where)
        return out
    raise VectorError(f"{where}: unexpected YAML node {node!r}")


def _node_starts(text, where):
    """1-based (line, column) of every node of a YAML text (even one with duplicate
    keys), to check that authored load-error positions point at a key or value."""
    from ruamel.yaml import YAML
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    try:
        root = YAML(typ="safe", pure=True).compose(text)
    except Exception as e:
        raise VectorError(f"{where}: policy is not even YAML: {e}") from None
    starts, todo = set(), [root]
    # An alias shares its anchor's node, so its own position comes from the events.
    from ruamel.yaml.events import AliasEvent
    for ev in YAML(typ="safe", pure=True).parse(text):
        if isinstance(ev, AliasEvent):
            starts.add((ev.start_mark.line + 1, ev.start_mark.column + 1))
    while todo:
        n = todo.pop()
        starts.add((n.start_mark.line + 1, n.start_mark.column + 1))
        if isinstance(n, SequenceNode):
            todo.extend(n.value)
        elif isinstance(n, MappingNode):
            for k, v in n.value:
                todo.extend((k, v))
    return starts


def _same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def load_yaml(text, where):
    """Parse YAML 1.2 with ruamel.yaml and insist the core schema reads it the same."""
    try:
        from ruamel.yaml import YAML
    except ImportError:
        sys.exit("generate.py needs ruamel.yaml: pip install -r requirements-dev.txt")
    yaml = YAML(typ="safe", pure=True)
    try:
        data = yaml.load(text)
        node = yaml.compose(text)
    except Exception as e:  # ruamel's errors have no common base worth naming
        raise VectorError(f"{where}: YAML error: {e}") from None
    mine = None if node is None else _core_construct(node, where)
    if not _same(data, mine):
        raise VectorError(f"{where}: ruamel.yaml and the YAML 1.2 core schema disagree")
    return data


# --------------------------------------------------------------------------
# Requests (§1) and time
# --------------------------------------------------------------------------

REQUEST_FIELDS = ("agent", "tool", "action", "params", "chain", "session", "environment",
                  "context", "time", "approval")
NAME_FIELDS = ("agent", "tool", "action", "session", "environment")
MAX_DEPTH = 64
MAX_SIZE = 1 << 20

_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})")
_TIME_LAX_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def parse_time(text, where):
    """RFC 3339 -> (epoch milliseconds, record form). None if clearly invalid.

    Raises VectorError for forms a vector should avoid because RFC 3339 readers
    legitimately differ on them (lower-case t/z, a space, leap seconds, -00:00,
    years before 1970)."""
    m = _TIME_RE.fullmatch(text)
    if not m:
        if _TIME_LAX_RE.fullmatch(text):
            raise VectorError(f"{where}: avoid time {text!r}: lower-case or space form")
        return None
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    frac, off = m.group(7) or "", m.group(8)
    if s == 60 or off == "-00:00" or y < 1970:
        raise VectorError(f"{where}: avoid time {text!r}: leap second, -00:00 or pre-1970")
    if off == "Z":
        offset = datetime.timedelta(0)
    else:
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            return None
        offset = datetime.timedelta(hours=oh, minutes=om) * (1 if off[0] == "+" else -1)
    try:
        local = datetime.datetime(y, mo, d, h, mi, s, tzinfo=datetime.timezone(offset))
    except ValueError:
        return None
    ms = int((frac + "000")[:3])  # finer digits are truncated
    utc = local.astimezone(datetime.timezone.utc)
    epoch_ms = int(utc.timestamp()) * 1000 + ms
    return epoch_ms, utc.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % ms


def _depth(value):
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _has_nested_null(value):
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_nested_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nested_null(v) for v in value)
    return False


MAX_EXACT_INT = 2**53 - 1  # §9a: numbers are exact or refused


def _has_inexact_number(value):
    """Whether a JSON value holds a number of magnitude beyond 2^53 − 1 (§9a). Python
    reads integer literals exactly, so 9007199254740993 is not mistaken for …992."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return abs(value) > MAX_EXACT_INT
    if isinstance(value, list):
        return any(_has_inexact_number(x) for x in value)
    if isinstance(value, dict):
        return any(_has_inexact_number(x) for x in value.values())
    return False


def _name_problem(field, value):
    if not isinstance(value, str):
        return f"{field} is not a string"
    n = len(value.encode("utf-8", "surrogatepass"))
    if not 1 <= n <= 256:
        return f"{field} is {n} bytes"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise VectorError(f"avoid lone surrogates in {field}")
    if any(unicodedata.category(c) == "Cc" for c in value):
        if any(0x7F <= ord(c) <= 0x9F for c in value):
            raise VectorError(f"avoid DEL/C1 characters in {field}: the spec does not say")
        return f"{field} has a control character"
    return None


def request_problems(req, text, where, max_size=MAX_SIZE, max_depth=MAX_DEPTH):
    """The §1 violations of a request (empty list: valid) under the engine's request
    bounds (§1 defaults; §17 `request_max_bytes`, `request_max_depth`).  Raises
    VectorError for requests whose validity the spec leaves open."""
    if not isinstance(req, dict):
        return ["request is not an object"]
    problems = []
    for k, v in req.items():
        if k not in REQUEST_FIELDS:
            problems.append(f"unknown field {k!r}")
        elif v is None:
            problems.append(f"{k} is null")
    for f in ("agent", "tool"):
        if f not in req:
            problems.append(f"{f} is missing")
    for f in NAME_FIELDS:
        if req.get(f) is not None:
            p = _name_problem(f, req[f])
            if p:
                problems.append(p)
    if req.get("chain") is not None:
        if not isinstance(req["chain"], list):
            problems.append("chain is not a list")
        else:
            for i, entry in enumerate(req["chain"]):
                p = _name_problem(f"chain[{i}]", entry)
                if p:
                    problems.append(p)
    for f in ("params", "context"):
        v = req.get(f)
        if v is None:
            continue
        if not isinstance(v, dict):
            problems.append(f"{f} is not an object")
            continue
        if any(_has_nested_null(x) for x in v.values()):
            raise VectorError(f"{where}: avoid null inside {f}: the spec does not say")
        if _depth(v) > max_depth:
            problems.append(f"{f} is nested deeper than {max_depth}")
        if _has_inexact_number(v):
            problems.append(f"{f} holds a number beyond ±(2^53 − 1)")
    if req.get("time") is not None:
        if not isinstance(req["time"], str):
            problems.append("time is not a string")
        elif parse_time(req["time"], where) is None:
            problems.append("time is not RFC 3339")
    if req.get("approval") is not None:
        if not isinstance(req["approval"], str):
            problems.append("approval is not a string")
        elif req["approval"] == "":
            raise VectorError(f"{where}: avoid an empty approval: the spec does not say")
    if len(text.encode("utf-8")) > max_size:
        problems.append(f"request is larger than {max_size} bytes")
    return problems


def strict_json(text, where):
    def pairs(items):
        out = {}
        for k, v in items:
            if k in out:
                raise VectorError(f"{where}: duplicate key {k!r} in request_json: avoid it")
            out[k] = v
        return out

    def bad_constant(name):
        raise VectorError(f"{where}: {name} in request_json")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=bad_constant)
    except json.JSONDecodeError as e:
        raise VectorError(f"{where}: request_json is not JSON ({e}); native runners could "
                          "not build it, so avoid it") from None


# --------------------------------------------------------------------------
# Hashes of §2, §4, §5 and §6.2
# --------------------------------------------------------------------------

def policy_hash(files):
    return sha256_hex(jcs_bytes(files))


def approval_request(req):
    """R of §4: no time/approval; params, context, chain always present."""
    r = {k: v for k, v in req.items() if k not in ("time", "approval")}
    r.setdefault("params", {})
    r.setdefault("context", {})
    r.setdefault("chain", [])
    return r


def approval_id(phash, req, rules):
    doc = {"policy": phash, "request": approval_request(req), "rules": list(rules)}
    return "apr_" + sha256_hex(jcs_bytes(doc))[:32]


def grant_token(key, by, exp, apr_id, extra=None):
    payload = {"by": by, "exp": exp, "id": apr_id}
    payload.update(extra or {})
    p = b64url(jcs_bytes(payload))
    m = b64url(hmac.new(key.encode("utf-8"), p.encode("ascii"), hashlib.sha256).digest())
    return f"v1.{p}.{m}"


def raw_grant_token(key, payload_text):
    p = b64url(payload_text.encode("utf-8"))
    m = b64url(hmac.new(key.encode("utf-8"), p.encode("ascii"), hashlib.sha256).digest())
    return f"v1.{p}.{m}"


def signing_kid(options):
    if "signing_key_id" in options:
        return options["signing_key_id"]
    return sha256_hex(options["signing_key"].encode("utf-8"))[:16]


# --------------------------------------------------------------------------
# Vector validation helpers
# --------------------------------------------------------------------------

OUTCOMES = ("allow", "deny", "require_approval")
KILL_SCOPES = ("agent", "tool", "session", "all")


def keys_of(d, where, required=(), optional=()):
    if not isinstance(d, dict):
        raise VectorError(f"{where}: expected a mapping, found {type(d).__name__}")
    unknown = [k for k in d if k not in required and k not in optional]
    if unknown:
        raise VectorError(f"{where}: unknown key(s) {unknown}; allowed: "
                          f"{sorted(set(required) | set(optional))}")
    missing = [k for k in required if k not in d]
    if missing:
        raise VectorError(f"{where}: missing key(s) {missing}")


def want(value, types, where, what):
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        raise VectorError(f"{where}: {what} must be {' or '.join(t.__name__ for t in types)}, "
                          f"found {type(value).__name__}")
    return value


def str_list(value, where, what, nonempty=False):
    want(value, (list,), where, what)
    for v in value:
        want(v, (str,), where, f"each of {what}")
    if nonempty and not value:
        raise VectorError(f"{where}: {what} must not be empty")
    return value


# --------------------------------------------------------------------------
# One vector
# --------------------------------------------------------------------------

KEY_OPTIONS = ("signing_key", "signing_key_id", "approval_key")
BOUND_OPTIONS = {"request_max_bytes": (1, 64 << 20), "request_max_depth": (1, 100),
                 "max_limit_counters": (1, 10_000_000), "max_sessions": (1, 10_000_000)}
DURATION_OPTIONS = ("marks_ttl",)
# §10: a mark label; a duration N s|m|h|d with N a whole number above 0
LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
DURATION_RE = re.compile(r"[1-9][0-9]*[smhd]")
# a vector with `marks` steps asks the engine at the real wall clock, so its marks
# must still be live then: every request at or after this time (2030-01-01T00:00:00Z)
MARKS_STEP_MIN_MS = 1893456000000


def label_list(value, where, what, nonempty=False):
    """A sorted list of unique §10 mark labels (as the engine reports them)."""
    str_list(value, where, what, nonempty=nonempty)
    for v in value:
        if not LABEL_RE.fullmatch(v):
            raise VectorError(f"{where}: {what}: {v!r} is not a mark label (§10)")
    if value != sorted(set(value)):
        raise VectorError(f"{where}: {what} must be sorted and unique")
    return value


def camel(key):
    """§17: the JS spelling of a snake_case option key."""
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def camel_options(options):
    """The options object a JS caller writes: keys in camelCase, also inside
    `collector` and `notify` (never header names)."""
    out = {}
    for k, v in options.items():
        if k in ("collector", "notify") and isinstance(v, dict):
            v = {(camel(ik) if ik != "headers" else ik): iv for ik, iv in v.items()}
        out[camel(k)] = v
    return out


def build_vector(path):
    name = path.stem
    where = path.name
    doc = load_yaml(path.read_text(encoding="utf-8"), where)
    keys_of(doc, where, required=("description", "spec", "policy"),
            optional=("options", "steps", "load_errors", "config_errors", "audit_callback"))
    want(doc["description"], (str,), where, "description")
    str_list(doc["spec"], where, "spec", nonempty=True)
    policy_text = want(doc["policy"], (str,), where, "policy")
    options = doc.get("options", {})
    keys_of(options, f"{where}: options",
            optional=KEY_OPTIONS + tuple(BOUND_OPTIONS) + DURATION_OPTIONS)
    for k, v in options.items():
        if k in KEY_OPTIONS:
            want(v, (str,), where, f"options.{k}")
            if v == "":
                raise VectorError(f"{where}: options.{k} is empty")
        elif k in DURATION_OPTIONS:
            if not DURATION_RE.fullmatch(want(v, (str,), where, f"options.{k}")):
                raise VectorError(f"{where}: options.{k} must be a duration like \"24h\"")
        else:
            lo, hi = BOUND_OPTIONS[k]
            if not lo <= want(v, (int,), where, f"options.{k}") <= hi:
                raise VectorError(f"{where}: options.{k} must be from {lo} to {hi}")
    if "signing_key_id" in options and "signing_key" not in options:
        raise VectorError(f"{where}: signing_key_id without signing_key")
    if sum(k in doc for k in ("steps", "load_errors", "config_errors")) != 1:
        raise VectorError(f"{where}: give exactly one of steps, load_errors and config_errors")
    callback = want(doc.get("audit_callback", False), (bool,), where, "audit_callback")
    if callback and "steps" not in doc:
        raise VectorError(f"{where}: audit_callback goes with steps")

    out = {"name": name, "description": doc["description"].strip(), "options": options,
           "policy_yaml": policy_text}
    if callback:
        out["audit_callback"] = True

    if "config_errors" in doc:
        if options:
            raise VectorError(f"{where}: a config_errors vector gives its options per case")
        out["config_errors"] = config_cases(doc["config_errors"], where)
        out["steps"] = []
        return out

    if "load_errors" in doc:
        errs = want(doc["load_errors"], (list,), where, "load_errors")
        if not errs:
            raise VectorError(f"{where}: load_errors is empty")
        for i, e in enumerate(errs):
            w = f"{where}: load_errors[{i}]"
            keys_of(e, w, required=("line", "column", "message"))
            for k in ("line", "column"):
                if want(e[k], (int,), w, k) < 1:
                    raise VectorError(f"{w}: {k} is 1-based")
            if not want(e["message"], (str,), w, "message"):
                raise VectorError(f"{w}: empty message")
        starts = _node_starts(policy_text, where)
        for e in errs:
            if (e["line"], e["column"]) not in starts:
                raise VectorError(f"{where}: load error at {e['line']}:{e['column']} is not "
                                  "where a YAML key or value starts in the policy")
        # a bundle that fails to load has no policy hash (it may not even be data)
        out["load_errors"] = errs
        out["steps"] = []
        return out

    files = [load_yaml(policy_text, f"{where}: policy")]
    if not isinstance(files[0], dict):
        raise VectorError(f"{where}: policy is not a mapping")
    phash = policy_hash(files)
    out["policy_hash"] = phash
    # for cross-checks of the authored expectations only (never to decide anything)
    # rule id -> approvers; limit ids; rule id -> the labels of its §10 marks (a label
    # or {label, ttl}); every label some rule carries
    known = {"rules": {}, "limits": set(), "marks": {}, "labels": set()}
    for r in files[0].get("rules") or []:
        if isinstance(r, dict) and isinstance(r.get("id"), str):
            known["rules"][r["id"]] = r.get("approvers") or []
            labels = [m.get("label") if isinstance(m, dict) else m for m in r.get("marks") or []]
            if labels:
                known["marks"][r["id"]] = labels
                known["labels"].update(labels)
    for l in files[0].get("limits") or []:
        if isinstance(l, dict) and isinstance(l.get("id"), str):
            known["limits"].add(l["id"])

    steps = want(doc["steps"], (list,), where, "steps")
    if not steps:
        raise VectorError(f"{where}: no steps")
    chain = {"seq": 0, "prev": "0" * 64}
    bounds = (options.get("request_max_bytes", MAX_SIZE), options.get("request_max_depth", MAX_DEPTH))
    guarded = [isinstance(st, dict) and "guarded" in st for st in steps]
    if any(guarded):
        if not all(guarded) or not callback:
            raise VectorError(f"{where}: a vector with guarded steps has only guarded steps "
                              "and audit_callback: true (their records' time is the engine's clock)")
    out_steps = []
    names = set()
    earlier = {}  # step name -> approval id of its request under its expected rules
    kills = set()  # kill:SCOPE:ID now in force
    times = []  # (epoch ms, where) of every request that is decided
    marks_steps = False
    for i, step in enumerate(steps):
        w = f"{where}: step {i + 1}"
        want(step, (dict,), w, "a step")
        if "kill" in step:
            keys_of(step, w, required=("kill",))
            k = step["kill"]
            keys_of(k, f"{w}: kill", required=("scope", "id", "reason"))
            _check_scope(k, w)
            want(k["reason"], (str,), w, "kill.reason")
            kills.add(f"kill:{k['scope']}:{k['id']}")
            out_steps.append({"op": "kill", "scope": k["scope"], "id": k["id"],
                              "reason": k["reason"]})
        elif "revive" in step:
            keys_of(step, w, required=("revive",))
            r = step["revive"]
            keys_of(r, f"{w}: revive", required=("scope", "id"))
            _check_scope(r, w)
            kills.discard(f"kill:{r['scope']}:{r['id']}")
            out_steps.append({"op": "revive", "scope": r["scope"], "id": r["id"]})
        elif "marks" in step:  # engine.marks(S) at the real wall clock (§10)
            keys_of(step, w, required=("marks",))
            m = step["marks"]
            keys_of(m, f"{w}: marks", required=("session", "expect"))
            _check_session(m["session"], f"{w}: marks")
            label_list(m["expect"], f"{w}: marks", "expect")
            _check_labels(m["expect"], f"{w}: marks", known)
            marks_steps = True
            out_steps.append({"op": "marks", "session": m["session"], "expect": m["expect"]})
        elif "clear_marks" in step:  # engine.clear_marks(S) (§10)
            keys_of(step, w, required=("clear_marks",))
            c = step["clear_marks"]
            keys_of(c, f"{w}: clear_marks", required=("session",))
            _check_session(c["session"], f"{w}: clear_marks")
            out_steps.append({"op": "clear_marks", "session": c["session"]})
        else:
            if "guarded" in step:
                s = guarded_step(step, w, known)
            else:
                s = evaluate_step(step, w, options, phash, chain, earlier, known, kills,
                                  callback, bounds, times)
            if s["name"] in names:
                raise VectorError(f"{w}: step name {s['name']!r} is used twice")
            names.add(s["name"])
            out_steps.append(s)
    if marks_steps:
        for ms, tw in times:
            if ms < MARKS_STEP_MIN_MS:
                raise VectorError(f"{tw}: a vector with `marks` steps asks the engine at the "
                                  "real clock: give every request a time from 2030-01-01 on, "
                                  "so that its marks are still live")
    out["steps"] = out_steps
    return out


def _check_labels(labels, w, known):
    """Authoring typos: a mark can only be live if some rule of the policy carries it."""
    for label in labels:
        if label not in known["labels"]:
            raise VectorError(f"{w}: mark {label!r} is carried by no rule of the policy")


def _check_session(value, w):
    want(value, (str,), w, "session")
    p = _name_problem("session", value)
    if p:
        raise VectorError(f"{w}: {p}")


def _check_scope(k, w):
    if k["scope"] not in KILL_SCOPES:
        raise VectorError(f"{w}: scope must be one of {KILL_SCOPES}")
    want(k["id"], (str,), w, "id")
    if (k["scope"] == "all") != (k["id"] == "*"):
        raise VectorError(f"{w}: scope all goes with id '*' (and only it)")


def _check_names(expect, ew, known, kills):
    """Authoring typos: every id named in an expectation must exist."""
    def check(rule_id, what):
        if rule_id.startswith("limit:"):
            ok = rule_id[6:] in known["limits"]
        elif rule_id.startswith("kill:"):
            ok = rule_id in kills
        elif rule_id == "state:full":  # §10: the session table is full
            ok = True
        else:
            ok = rule_id in known["rules"] or (rule_id == "default" and what == "rules")
        if not ok:
            raise VectorError(f"{ew}: {what} names {rule_id!r}, which is not in the policy "
                              "(or no such kill is active)")
    for r in expect["rules"]:
        check(r, "rules")
    for e in expect.get("errors", []):
        check(e["rule"], "errors")
    for l in (expect.get("audit") or {}).get("limits") or []:
        check("limit:" + l["id"], "audit.limits")
    if expect["outcome"] == "require_approval":
        union = []
        for r in expect["rules"]:
            for a in known["rules"].get(r, []):
                if a not in union:
                    union.append(a)
        if expect["approval"]["approvers"] != union:
            raise VectorError(f"{ew}: approvers should be {union} (the union of the "
                              "determining rules' approvers in bundle order)")


NO_SESSION = "no session: marks not recorded"
FULL_REASON = "session table full: the call's marks cannot be stored"
DEFAULT_MAX_SESSIONS = 100_000


def _check_marks_errors(expect, ew, known, options, req):
    """The fixed shapes of §10's decisions, as cross-checks of what was authored: a
    `state:full` denial has its fixed reason and exactly one error; a request without
    `session` lists `no session: marks not recorded` once for each rule in `rules` that
    has marks, in `rules` order, after all other errors (and a request with a session
    never does)."""
    rules, errors = expect["rules"], expect.get("errors", [])
    if rules == ["state:full"]:
        n = options.get("max_sessions", DEFAULT_MAX_SESSIONS)
        want_errors = [{"rule": "state:full", "path": "state",
                        "message": f"max_sessions ({n}) sessions hold live marks"}]
        if expect["reason"] != FULL_REASON:
            raise VectorError(f"{ew}: a state:full denial has reason {FULL_REASON!r}")
        if errors != want_errors:
            raise VectorError(f"{ew}: a state:full denial has exactly the errors {want_errors}")
        return
    if any(e["rule"] == "state:full" for e in errors):
        raise VectorError(f"{ew}: a state:full error goes with rules [state:full]")
    tail = [e for e in errors if e["path"] == "session" and e["message"] == NO_SESSION]
    has_session = isinstance(req, dict) and "session" in req
    want_tail = [] if has_session else [
        {"rule": r, "path": "session", "message": NO_SESSION}
        for r in rules if r in known["marks"]]
    if tail != want_tail or errors[len(errors) - len(tail):] != tail:
        raise VectorError(f"{ew}: the {NO_SESSION!r} errors must be {want_tail}, after "
                          "all other errors (one per rule in `rules` with marks, when the "
                          "request has no session)")


def evaluate_step(step, w, options, phash, chain, earlier, known, kills, callback, bounds,
                  times):
    keys_of(step, w, required=("name",),
            optional=("request", "request_json", "expect", "expect_error", "grant",
                      "grant_rules", "callback"))
    name = want(step["name"], (str,), w, "name")
    w = f"{w} ({name})"
    if ("request" in step) == ("request_json" in step):
        raise VectorError(f"{w}: give exactly one of request and request_json")
    if ("expect" in step) == ("expect_error" in step):
        raise VectorError(f"{w}: give exactly one of expect and expect_error")
    if ("grant" in step or "grant_rules" in step) and "expect" not in step:
        raise VectorError(f"{w}: grant needs expect")

    if "request" in step:
        req = step["request"]
        if "grant" in step:
            if "request_json" in step or not isinstance(req, dict) or "approval" in req:
                raise VectorError(f"{w}: grant needs a request mapping without approval")
        text = None
    else:
        text = want(step["request_json"], (str,), w, "request_json")
        if "grant" in step:
            raise VectorError(f"{w}: grant needs `request`, not request_json")
        req = strict_json(text, w)

    if "callback" in step:
        if not callback or step["callback"] != "fail":
            raise VectorError(f"{w}: callback: fail needs audit_callback: true")
        if step.get("expect_error") != "audit_failed":
            raise VectorError(f"{w}: a failing callback fails the call: expect_error: audit_failed")
    if "expect_error" in step:
        if text is None:
            text = jcs(req)
        problems = request_problems(req, text, w, *bounds)
        if step["expect_error"] == "audit_failed":
            if "callback" not in step:
                raise VectorError(f"{w}: expect_error: audit_failed needs callback: fail")
            if problems:
                raise VectorError(f"{w}: the request is invalid ({'; '.join(problems)}): "
                                  "it would fail before any record")
            # no decision without its record, and the chain is not advanced (§9a, §17)
            return {"op": "evaluate", "name": name, "request_json": text,
                    "callback": "fail", "expect_error": "audit_failed"}
        if step["expect_error"] != "request":
            raise VectorError(f"{w}: expect_error must be 'request' or 'audit_failed'")
        if not problems:
            raise VectorError(f"{w}: this request is valid under §1, yet expect_error is given")
        return {"op": "evaluate", "name": name, "request_json": text, "expect_error": "request"}

    expect = step["expect"]
    ew = f"{w}: expect"
    keys_of(expect, ew, required=("outcome", "rules", "reason"),
            optional=("approval", "errors", "audit"))
    outcome = expect["outcome"]
    if outcome not in OUTCOMES:
        raise VectorError(f"{ew}: outcome must be one of {OUTCOMES}")
    rules = str_list(expect["rules"], ew, "rules", nonempty=True)
    if len(set(rules)) != len(rules):
        raise VectorError(f"{ew}: rules has duplicates")
    if any(r.startswith("kill:") or r == "default" for r in rules) and len(rules) != 1:
        raise VectorError(f"{ew}: a kill or the default decides alone")
    if any(r.startswith("kill:") for r in rules) and outcome != "deny":
        raise VectorError(f"{ew}: a kill denies")
    if "state:full" in rules and (len(rules) != 1 or outcome != "deny"):
        raise VectorError(f"{ew}: state:full denies, alone")
    seen_limit = False
    for r in rules:
        if r.startswith("limit:"):
            seen_limit = True
        elif seen_limit:
            raise VectorError(f"{ew}: limits come after rule ids")
    reason = want(expect["reason"], (str,), ew, "reason")
    if not reason:
        raise VectorError(f"{ew}: empty reason")

    errors = expect.get("errors", [])
    want(errors, (list,), ew, "errors")
    for j, e in enumerate(errors):
        keys_of(e, f"{ew}: errors[{j}]", required=("rule", "path", "message"))
        for k in ("rule", "path", "message"):
            want(e[k], (str,), ew, f"errors[{j}].{k}")

    audit = expect.get("audit", {})
    keys_of(audit, f"{ew}: audit", optional=("approved_by", "limits", "marks"))
    approved_by = audit.get("approved_by")
    limits = audit.get("limits")
    marks = audit.get("marks")
    if marks is not None:
        if not marks:
            raise VectorError(f"{ew}: audit.marks is empty; leave it out instead (records omit it)")
        label_list(marks, ew, "audit.marks", nonempty=True)
        if not isinstance(req, dict) or "session" not in req:
            raise VectorError(f"{ew}: audit.marks without a session (§10: never recorded)")
        if "state:full" in rules:
            raise VectorError(f"{ew}: a state:full denial stores no marks")
        _check_labels(marks, ew, known)
    if limits is not None:
        want(limits, (list,), ew, "audit.limits")
        if not limits:
            raise VectorError(f"{ew}: audit.limits is empty; leave it out instead")
        for j, l in enumerate(limits):
            lw = f"{ew}: audit.limits[{j}]"
            keys_of(l, lw, required=("id", "calls"), optional=("sum",))
            want(l["id"], (str,), lw, "id")
            if want(l["calls"], (int,), lw, "calls") < 0:
                raise VectorError(f"{lw}: negative calls")
            if "sum" in l:
                want(l["sum"], (int, float), lw, "sum")

    if outcome == "require_approval":
        if "approval" not in expect:
            raise VectorError(f"{ew}: require_approval needs approval: {{approvers: [...]}}")
        keys_of(expect["approval"], f"{ew}: approval", required=("approvers",))
        approvers = str_list(expect["approval"]["approvers"], ew, "approval.approvers")
        if len(set(approvers)) != len(approvers):
            raise VectorError(f"{ew}: approvers has duplicates")
    elif "approval" in expect:
        raise VectorError(f"{ew}: approval only goes with require_approval")

    _check_names(expect, ew, known, kills)
    _check_marks_errors(expect, ew, known, options, req)
    if approved_by is not None:
        want(approved_by, (str,), ew, "audit.approved_by")
        if outcome != "allow":
            raise VectorError(f"{ew}: approved_by only goes with a granted allow")
        if not reason.startswith(f"approved by {approved_by}: "):
            raise VectorError(f"{ew}: a granted reason starts with 'approved by WHO: '")
        if "grant" not in step and not (isinstance(req, dict) and "approval" in req):
            raise VectorError(f"{ew}: approved_by without a grant")

    # the grant token, if any, goes into the request before it is written out
    if "grant" in step:
        g = step["grant"]
        gw = f"{w}: grant"
        if "raw_payload" in g:  # P is these exact bytes (for malformed-payload tests)
            keys_of(g, gw, required=("raw_payload",), optional=("key",))
            want(g["raw_payload"], (str,), gw, "raw_payload")
        else:
            keys_of(g, gw, required=("by", "exp"), optional=("id", "id_of", "key", "extra"))
            want(g["by"], (str,), gw, "by")
            want(g["exp"], (int,), gw, "exp")
        key = g.get("key", options.get("approval_key"))
        if key is None:
            raise VectorError(f"{gw}: no approval key in options; give grant.key")
        want(key, (str,), gw, "key")
        req = dict(req)
        if "raw_payload" in g:
            if approved_by is not None:
                raise VectorError(f"{gw}: a raw payload cannot approve")
            req["approval"] = raw_grant_token(key, g["raw_payload"])
        else:
            extra = g.get("extra", {})
            keys_of(extra, f"{gw}: extra", optional=tuple(k for k in extra
                                                          if k not in ("by", "exp", "id")))
            g_rules = step.get("grant_rules", rules)
            str_list(g_rules, gw, "grant_rules", nonempty=True)
            if "id" in g and "id_of" in g:
                raise VectorError(f"{gw}: give at most one of id and id_of")
            if "id_of" in g:  # the approval id of an earlier step's request
                if g["id_of"] not in earlier:
                    raise VectorError(f"{gw}: no earlier evaluate step named {g['id_of']!r}")
                g_id = earlier[g["id_of"]]
            else:
                g_id = g.get("id") or approval_id(phash, req, g_rules)
            want(g_id, (str,), gw, "id")
            if approved_by is not None and approved_by != g["by"]:
                raise VectorError(f"{gw}: by differs from expect.audit.approved_by")
            req["approval"] = grant_token(key, g["by"], g["exp"], g_id, extra)
    elif "grant_rules" in step:
        raise VectorError(f"{w}: grant_rules without grant")

    if text is None:
        text = jcs(req)
    earlier[name] = approval_id(phash, req, rules)
    problems = request_problems(req, text, w, *bounds)
    if problems:
        raise VectorError(f"{w}: the request is invalid under §1 ({'; '.join(problems)}); "
                          "use expect_error: request")
    if "time" not in req:
        raise VectorError(f"{w}: every request step must give time")
    time_ms, record_time = parse_time(req["time"], w)
    times.append((time_ms, w))

    record = {
        "v": 1,
        "seq": chain["seq"],
        "time": record_time,
        "agent": req["agent"],
        "tool": req["tool"],
        "params_sha256": sha256_hex(jcs_bytes(req.get("params", {}))),
        "outcome": outcome,
        "rules": rules,
        "reason": reason,
        "policy": phash,
        "prev": chain["prev"],
    }
    if req.get("chain"):
        record["chain"] = req["chain"]
    for f in ("action", "session", "environment"):
        if f in req:
            record[f] = req[f]
    apr = None
    if outcome == "require_approval" or approved_by is not None:
        apr = approval_id(phash, req, rules)
        record["approval_id"] = apr
    if approved_by is not None:
        record["approved_by"] = approved_by
    if errors:
        record["errors"] = len(errors)
    if limits:
        record["limits"] = limits
    if marks:
        record["marks"] = marks
    if "signing_key" in options:
        record["kid"] = signing_kid(options)
    record["hash"] = sha256_hex(jcs_bytes(record))
    if "signing_key" in options:
        record["sig"] = hmac.new(options["signing_key"].encode("utf-8"),
                                 record["hash"].encode("ascii"), hashlib.sha256).hexdigest()
    chain["seq"] += 1
    chain["prev"] = record["hash"]

    decision = {"outcome": outcome, "rules": rules, "reason": reason, "errors": errors,
                "audit": record}
    if outcome == "require_approval":
        decision["approval"] = {"id": apr, "approvers": expect["approval"]["approvers"]}
    return {"op": "evaluate", "name": name, "request_json": text,
            "expect_json": jcs(decision)}


def config_cases(cases, where):
    """§17 configuration errors: the options a caller gives and the one error every
    language must answer with (the JS spelling of both beside them)."""
    want(cases, (list,), where, "config_errors")
    if not cases:
        raise VectorError(f"{where}: config_errors is empty")
    out = []
    for i, c in enumerate(cases):
        w = f"{where}: config_errors[{i}]"
        keys_of(c, w, required=("options", "error"), optional=("camel",))
        opts = want(c["options"], (dict,), w, "options")
        err = c["error"]
        keys_of(err, f"{w}: error", required=("field", "message"))
        cam = c.get("camel", {})
        keys_of(cam, f"{w}: camel", optional=("field", "message"))
        for k in ("field", "message"):
            want(err[k], (str,), w, f"error.{k}")
            want(cam.get(k, ""), (str,), w, f"camel.{k}")
        if err["field"] and err["field"] not in opts:
            raise VectorError(f"{w}: error.field names no option of the case")
        out.append({"options": opts, "options_camel": camel_options(opts), "code": "config_invalid",
                    "field": err["field"], "message": err["message"],
                    "field_camel": cam.get("field", camel(err["field"])),
                    "message_camel": cam.get("message", err["message"])})
    return out


CONTEXT_KEYS = ("agent", "chain", "session", "environment", "context")


def nested_context(contexts, w):
    """§17: the request fields of nested agent contexts, outer to inner. An inner
    context naming an agent is called by the outer agent: its chain is the outer chain,
    then the outer agent, then any explicit `chain` — a chain only grows. Fields not
    given are inherited."""
    cur = {"chain": []}
    for j, c in enumerate(want(contexts, (list,), w, "contexts")):
        keys_of(c, f"{w}: contexts[{j}]", optional=CONTEXT_KEYS)
        chain = list(cur["chain"])
        if "agent" in c and cur.get("agent") is not None:
            chain.append(cur["agent"])
        chain += str_list(c.get("chain", []), w, "chain")
        nxt = dict(cur)
        nxt.update({k: v for k, v in c.items() if k != "chain"})
        nxt["chain"] = chain
        cur = nxt
    return cur


def guarded_step(step, w, known):
    keys_of(step, w, required=("name", "guarded"),
            optional=("expect_record", "tool_runs", "expect_error"))
    name = want(step["name"], (str,), w, "name")
    w = f"{w} ({name})"
    g = step["guarded"]
    keys_of(g, f"{w}: guarded", required=("contexts", "tool", "args"),
            optional=("action", "mutate"))
    ctx = nested_context(g["contexts"], w)
    args = want(g["args"], (dict,), w, "args")
    for k, v in want(g.get("mutate", {}), (dict,), w, "mutate").items():
        if k not in args or type(args[k]) is not type(v) or not isinstance(v, (list, dict)):
            raise VectorError(f"{w}: mutate.{k} must replace the contents of a list or dict argument")
    runs = want(step.get("tool_runs", True), (bool,), w, "tool_runs")
    err = step.get("expect_error")
    if err not in (None, "denied", "approval_required", "invalid_argument"):
        raise VectorError(f"{w}: expect_error must be denied, approval_required or invalid_argument")
    if runs == (err is not None):
        raise VectorError(f"{w}: the tool runs exactly when the call raises nothing")
    out = {"op": "guarded", "name": name, "contexts": g["contexts"], "tool": g["tool"]}
    if "action" in g:
        out["action"] = g["action"]
    out["args"] = args
    if "mutate" in g:
        out["mutate"] = g["mutate"]
    if err == "invalid_argument":
        # no agent in context: nothing is decided, nothing recorded, the tool never runs
        if ctx.get("agent") is not None or "expect_record" in step:
            raise VectorError(f"{w}: invalid_argument is for a call with no agent in context "
                              "(and no record)")
        out["expect_error"] = err
        return out
    rec = step.get("expect_record")
    if rec is None:
        raise VectorError(f"{w}: expect_record is required")
    keys_of(rec, f"{w}: expect_record", required=("agent", "tool", "outcome", "rules"),
            optional=("chain", "action", "session", "environment"))
    if rec["agent"] != ctx.get("agent") or rec.get("chain", []) != ctx["chain"]:
        raise VectorError(f"{w}: expect_record agent/chain {rec['agent']!r}/{rec.get('chain', [])} "
                          f"but the contexts give {ctx.get('agent')!r}/{ctx['chain']}")
    for f in ("session", "environment"):
        if rec.get(f) != ctx.get(f):
            raise VectorError(f"{w}: expect_record {f} {rec.get(f)!r} but the contexts give {ctx.get(f)!r}")
    if "chain" in rec and not rec["chain"]:
        raise VectorError(f"{w}: leave an empty chain out of expect_record (records omit it)")
    if rec["tool"] != g["tool"] or rec.get("action") != g.get("action"):
        raise VectorError(f"{w}: expect_record tool/action differ from the call's")
    want_outcome = {None: "allow", "denied": "deny", "approval_required": "require_approval"}
    if rec["outcome"] != want_outcome[err]:
        raise VectorError(f"{w}: outcome {rec['outcome']!r} does not fit expect_error {err!r}")
    for r in str_list(rec["rules"], w, "rules", nonempty=True):
        if r not in known["rules"] and r != "default":
            raise VectorError(f"{w}: rules names {r!r}, which is not in the policy")
    record = dict(rec)
    record["params_sha256"] = sha256_hex(jcs_bytes(args))
    out["expect_record"] = record
    if runs:
        out["expect_tool_args"] = args
    if err is not None:
        out["expect_error"] = err
    return out


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

def render(vector):
    return json.dumps(vector, indent=2, ensure_ascii=False) + "\n"


def schema_validator():
    """The typed definition of the generated format (schema.json), which every runner
    also enforces on its own."""
    try:
        import jsonschema
    except ImportError:
        sys.exit("generate.py needs jsonschema: pip install -r requirements-dev.txt")
    schema = json.loads((HERE / "schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def generate_all():
    sources = sorted(p for p in HERE.glob("*.yaml"))
    if not sources:
        raise VectorError("no vectors found")
    validator = schema_validator()
    outputs = {}
    failures = []
    for src in sources:
        try:
            vector = build_vector(src)
            problems = sorted(validator.iter_errors(vector), key=lambda e: list(e.path))
            if problems:
                raise VectorError(f"{src.name}: the generated vector breaks schema.json: "
                                  + "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in problems[:3]))
            outputs[src.stem + ".json"] = render(vector)
        except VectorError as e:
            failures.append(str(e))
    if failures:
        raise VectorError("\n".join(failures))
    return outputs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if any generated file would change")
    ap.add_argument("--self-test", action="store_true",
                    help="run the canonical-JSON self-checks and exit")
    args = ap.parse_args(argv)
    if args.self_test:
        self_test()
        print("self-test: ok")
        return 0
    try:
        outputs = generate_all()
    except VectorError as e:
        print(f"generate.py: error:\n{e}", file=sys.stderr)
        return 2
    existing = {p.name for p in OUT_DIR.glob("*.json")} if OUT_DIR.is_dir() else set()
    changed = [n for n, t in outputs.items()
               if not (OUT_DIR / n).is_file()
               or (OUT_DIR / n).read_text(encoding="utf-8") != t]
    stale = sorted(existing - set(outputs))
    if args.check:
        for n in changed:
            print(f"out of date: generated/{n}", file=sys.stderr)
        for n in stale:
            print(f"stale (no source): generated/{n}", file=sys.stderr)
        if changed or stale:
            print("run: python3 tests/vectors/generate.py", file=sys.stderr)
            return 1
        print(f"generated vectors are up to date ({len(outputs)} files)")
        return 0
    OUT_DIR.mkdir(exist_ok=True)
    for n in changed:
        with open(OUT_DIR / n, "w", encoding="utf-8", newline="\n") as f:
            f.write(outputs[n])
    for n in stale:
        (OUT_DIR / n).unlink()
    print(f"{len(outputs)} vectors; {len(changed)} written, {len(stale)} removed")
    return 0


# --------------------------------------------------------------------------
# Self-checks with RFC 8785's own examples
# --------------------------------------------------------------------------

def self_test():
    import struct

    def f64(hex_bits):
        return struct.unpack(">d", bytes.fromhex(hex_bits))[0]

    # RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
    appendix_b = [
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ]
    for bits, want_text in appendix_b:
        got = es6_number(f64(bits))
        assert got == want_text, (bits, got, want_text)
    for value, want_text in [(5.0, "5"), (1e21, "1e+21"), (1e-7, "1e-7"), (0.000001, "0.000001"),
                             (-0.0, "0"), (100, "100"), (0.1 + 0.2, "0.30000000000000004"),
                             (1e20, "100000000000000000000"), (123e-20, "1.23e-18"),
                             (-1.5, "-1.5"), (2 ** 53, "9007199254740992")]:
        assert es6_number(value) == want_text, (value, es6_number(value), want_text)

    # RFC 8785 §3.2.2: the sample input and its canonical form.
    sample = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}')
    want_sample = ('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,'
                   '1e-27],"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}')
    assert jcs(sample) == want_sample, jcs(sample)

    # RFC 8785 §3.2.3: sorting by UTF-16 code units.
    sorting = json.loads(
        '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet'
        ' With Dagesh", "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080":'
        ' "Control", "\\u00f6": "Latin Small Letter O With Diaeresis"}')
    order = [json.loads(jcs_string(k)) for k in sorted(sorting, key=_utf16_key)]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001F600", "\ufb33"], order
    assert jcs(sorting).startswith('{"\\r":"Carriage Return","1":"One","\u0080":"Control"')
    assert jcs(sorting).encode("utf-8").hex().startswith("7b225c72223a22")

    # escapes: only " \ and C0 controls; short forms where JSON has them; lower-case hex
    assert jcs("\b\f\n\r\t\x00\x1f\x7f\u2028/\"\\") == '"\\b\\f\\n\\r\\t\\u0000\\u001f\x7f\u2028/\\"\\\\"'
    assert jcs({"b": [], "a": {}, "": None}) == '{"":null,"a":{},"b":[]}'
    for bad in (float("nan"), float("inf"), 2 ** 53 + 1, "\ud800"):
        try:
            jcs(bad)
        except VectorError:
            pass
        else:
            raise AssertionError(f"accepted {bad!r}")

    # the other helpers
    assert b64url(b"\xfb\xff") == "-_8"
    assert parse_time("2026-01-05T12:00:00.123456+02:00", "t") == (1767607200123,
                                                                   "2026-01-05T10:00:00.123Z")
    assert parse_time("2026-01-05T23:30:00.5-05:00", "t")[1] == "2026-01-06T04:30:00.500Z"
    assert parse_time("2026-02-30T00:00:00Z", "t") is None
    assert load_yaml("a: [yes, 0777, 0o17, 0x1F, 1e3, ~, 'true', .5]", "t") == {
        "a": ["yes", 777, 15, 31, 1000.0, None, "true", 0.5]}
    for text in ("a: 2026-01-01", "a: 1_000", "a: 0b101", "a: .inf", "<<: {b: 1}"):
        try:
            load_yaml(text, "t")
        except VectorError:
            pass
        else:
            raise AssertionError(f"accepted {text!r}")


if __name__ == "__main__":
    sys.exit(main())
