"""The engine and its decisions (SPEC §4, §9)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Literal, Mapping, Optional, Tuple, Type, TypedDict, Union

from . import _aegis
from ._errors import AegisError

if TYPE_CHECKING:  # Python >= 3.11 has typing.Unpack; typing_extensions is only for mypy
    from typing_extensions import Unpack

__all__ = ["Engine", "EngineOptions", "Decision", "Approval", "Outcome", "AuditSink", "Collector", "CollectorConfig"]

#: An audit destination: a path (durable JSONL file sink) or a callable that
#: receives each record as a dict.
AuditSink = Union[str, "os.PathLike[str]", Callable[[Dict[str, Any]], Any]]
#: A key: its bytes, a ``str`` (its UTF-8 bytes) or ``{"base64": "…"}`` (its JSON form).
Key = Union[bytes, bytearray, str, Mapping[str, str]]
#: The ``collector`` option: ``endpoint`` (required), ``headers``, ``service_name``,
#: ``batch``, ``batch_age_ms``, ``gzip``, ``cursor``, ``request_timeout_ms``,
#: ``max_backoff_ms``, ``close_timeout_ms`` (see docs/collector.md).
CollectorConfig = Mapping[str, Any]


class EngineOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`Engine.from_path` / :meth:`Engine.from_yaml`:
    the engine configuration document of SPEC §17, validated by the core (so every
    language accepts and refuses the same settings with the same message). ``None``
    is "not given". Options of later releases (``inbox``, ``metrics_agent_label``…) are
    refused as "not supported yet"; they are left out of this type until they work."""

    audit: Optional[AuditSink]
    fsync: Optional[Literal["always", "batch", "never"]]
    rotate_bytes: Optional[int]
    signing_key: Optional[Key]
    signing_key_id: Optional[str]
    approval_key: Optional[Key]
    request_max_bytes: Optional[int]
    request_max_depth: Optional[int]
    max_limit_counters: Optional[int]
    #: Sessions with live marks an engine keeps (SPEC §10; default 100,000, at most
    #: 10,000,000). While the table is full, a call that would mark a session it does
    #: not hold is denied (rule ``state:full``) and ``session.marks`` of such a session
    #: is an error: nothing gets through unseen.
    max_sessions: Optional[int]
    #: The ttl of a mark given without one: ``N`` + ``s|m|h|d`` (default ``"24h"``).
    marks_ttl: Optional[str]
    collector: Optional[CollectorConfig]
    #: Fleet state (SPEC §11): ``"memory"`` (the default) or a Redis URL
    #: (``redis://[user:password@]host:port[/db]``, ``rediss://`` for TLS). Engines on
    #: the same Redis and prefix share kill switches, limit counters, used grants and
    #: session marks. A refused password or a malformed URL is ``config_invalid`` at
    #: construction; an unreachable server is not (calls that need it are denied with
    #: rule ``state:unavailable``, and ``kill``/``revive``/``marks``/``clear_marks``
    #: raise ``code == "state_unavailable"``).
    state: Optional[str]
    #: The prefix of the fleet's keys (default ``"aegis:"``); needs a Redis ``state``.
    state_prefix: Optional[str]
    #: The longest any store operation may take, in ms (default 200).
    state_timeout_ms: Optional[int]
    #: How old the kill-switch mirror may be before every call is denied, in ms
    #: (default 2000).
    state_stale_ms: Optional[int]
    #: How far a request's time may be from the store's clock, in ms (default 300000).
    state_max_skew_ms: Optional[int]


class Collector:
    """The background shipper of an engine's audit file to an OpenTelemetry
    collector (the ``collector`` option). Thread-safe."""

    __slots__ = ("_native",)

    def __init__(self, native: Any) -> None:
        self._native = native

    def metrics(self) -> Dict[str, Any]:
        """``shipped``, ``pending``, ``retries``, ``batches``, ``rejected_batches``,
        ``rejected_records``, ``partially_rejected``, ``rejected_files``,
        ``last_error`` and ``cursor``."""
        raw: Optional[str] = self._native.collector_metrics()
        result: Dict[str, Any] = json.loads(raw) if raw is not None else {}
        return result

    def flush(self, timeout: float = 5.0) -> None:
        """Waits (GIL released) until every record in the audit file now is
        delivered; raises :class:`AegisError` when ``timeout`` seconds (0 to 3600)
        pass first. After :meth:`close` it returns at once if everything written so
        far was delivered, and raises :class:`AegisError` otherwise."""
        self._native.collector_flush(float(timeout))

    def close(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Stops shipping after one last attempt bounded by ``timeout`` seconds
        (default: ``close_timeout_ms``; GIL released); returns the final metrics.
        Raises :class:`AegisError` if records are left undelivered (they stay in the
        file and ship on the next start). Idempotent: a second call returns (or
        raises) the first call's outcome at once. :meth:`metrics` stays available."""
        raw: Optional[str] = self._native.collector_close(None if timeout is None else float(timeout))
        result: Dict[str, Any] = json.loads(raw) if raw is not None else {}
        return result


class Outcome(str, Enum):
    """The outcome of a decision; a ``str`` valued ``"allow"``, ``"deny"`` or
    ``"require_approval"``."""

    ALLOW = "allow"
    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Approval:
    """The approval a ``require_approval`` decision asks for."""

    id: str
    approvers: List[str]


@dataclass(frozen=True)
class Decision:
    """A decision (SPEC §4) with its audit record (SPEC §5.2) as a dict."""

    outcome: Outcome
    rules: List[str]
    reason: str
    approval: Optional[Approval]
    errors: List[Dict[str, str]]
    audit: Dict[str, Any] = field(repr=False)

    @property
    def allowed(self) -> bool:
        """Whether the call may run."""
        return self.outcome is Outcome.ALLOW


#: A guarded call's decision, the params as decided (when allowed) and the request to
#: re-decide with a grant (when it needs an approval): see ``Engine._guarded``.
_Guarded = Tuple[Decision, Optional[Dict[str, Any]], Optional[_aegis.PendingApproval]]

_OUTCOMES = {o.value: o for o in Outcome}
_new_object = object.__new__


def _decision(raw: Any) -> Decision:
    # Hot path: the native layer hands over fresh lists and the audit record already as
    # a dict (no JSON text). The frozen dataclass's generated __init__ sets each field
    # through object.__setattr__; filling __dict__ directly gives the same instance
    # (same fields, equality, repr) at a fraction of the cost.
    outcome, rules, reason, approval, errors, audit = raw
    d: Decision = _new_object(Decision)
    d.__dict__.update(
        outcome=_OUTCOMES[outcome],
        rules=rules,
        reason=reason,
        approval=Approval(approval[0], approval[1]) if approval is not None else None,
        errors=[{"rule": r, "path": p, "message": m} for (r, p, m) in errors] if errors else [],
        audit=audit,
    )
    return d


class Engine:
    """A loaded policy bundle. Thread-safe: share one engine between threads and
    asyncio tasks. The GIL is released while the core evaluates."""

    __slots__ = ("_native", "_collector")

    def __init__(self, native: Any) -> None:
        self._native = native
        self._collector = Collector(native) if native.has_collector() else None

    @property
    def collector(self) -> Optional[Collector]:
        """The collector started by the ``collector`` option, or ``None``."""
        return self._collector

    def close(self, timeout: Optional[float] = None) -> None:
        """Closes the collector, if any (see :meth:`Collector.close`), then the
        engine: its audit file and the file's lock are released (once calls in flight
        finish), so another engine may open that file. Later calls raise
        :class:`ArgumentError` (``code == "invalid_argument"``). Idempotent. To stop
        shipping but keep evaluating, close only ``engine.collector``."""
        try:
            if self._collector is not None:
                self._collector.close(timeout)
        finally:
            self._native.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        result: bool = self._native.is_closed()
        return result

    def __enter__(self) -> "Engine":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if exc is None:
            self.close()
            return
        # The block raised: close anyway, but do not replace its exception with a
        # delivery failure (the records stay in the file; metrics() has last_error).
        try:
            self.close()
        except AegisError:
            pass

    @classmethod
    def from_path(cls, path: Union[str, "os.PathLike[str]"], /, **options: Unpack[EngineOptions]) -> "Engine":
        """Loads a bundle (a file or a directory). The keyword arguments are the
        engine options (:class:`EngineOptions`), passed as one document to the core's
        validator: an unknown or wrong one raises :class:`ConfigError` (with ``field``
        and the core's message, e.g. "unknown option `fsnyc` (did you mean
        `fsync`?)"). Raises :class:`PolicyError` (every load error in ``errors``).
        ``collector`` ships the ``audit`` file to an OpenTelemetry collector."""
        return cls(_aegis.NativeEngine.from_path(os.fspath(path), options))

    @classmethod
    def from_yaml(cls, text: str, /, **options: Unpack[EngineOptions]) -> "Engine":
        """Loads a one-file bundle from YAML text (file name ``<yaml>``); the keyword
        arguments as for :meth:`from_path`."""
        return cls(_aegis.NativeEngine.from_yaml(text, options))

    def evaluate(self, request: Optional[Mapping[str, Any]] = None, /, **fields: Any) -> Decision:
        """Decides a request given as a dict or as keyword arguments (not both).
        Raises :class:`RequestError` for a request that breaks SPEC §1 and
        :class:`AegisError` (``code == "audit_failed"``) when the audit record cannot
        be written — also when an audit callback raises, returns an awaitable or calls
        back into this engine."""
        if request is None:
            request = fields
        elif fields:
            raise TypeError("evaluate() takes a request dict or keyword fields, not both")
        return _decision(self._native.evaluate(request))

    def _guarded(self, request: Mapping[str, Any]) -> _Guarded:
        # A guarded call (see secure_tool): the request converted once by the native
        # walk and decided; with the params as decided (a plain deep copy) when allowed
        # and, when it needs an approval, the converted request to re-decide with a
        # grant (_regrant).
        raw, params, pending = self._native.evaluate_guarded(request)
        return _decision(raw), params, pending

    def _regrant(self, pending: _aegis.PendingApproval, token: str) -> _Guarded:
        # The same converted request re-decided with `approval` and the first
        # decision's resolved time (SPEC §6.2).
        raw, params, again = self._native.evaluate_granted(pending, token)
        return _decision(raw), params, again

    def evaluate_json(self, request_json: str) -> str:
        """Decides request JSON text; returns the decision as one line of canonical
        JSON, byte-identical to ``aegis eval``. Use it for JSON text from outside:
        it refuses duplicate keys, which ``json.loads`` silently drops."""
        result: str = self._native.evaluate_json(request_json)
        return result

    def kill(self, scope: str, id: str, reason: str = "") -> None:
        """Kill switch (SPEC §6.1): scope is ``agent``, ``tool``, ``session`` or
        ``all`` (id ``*``). A bad scope, or an id with a NUL or other control
        character, raises :class:`ArgumentError` (never cut off). With a Redis
        ``state`` the kill applies to this engine at once and to the fleet once written;
        when it cannot be written it raises :class:`AegisError` with
        ``code == "state_unavailable"`` (it stays in force here and is written when
        Redis is back)."""
        self._native.kill(scope, id, reason)

    def revive(self, scope: str, id: str) -> bool:
        """Lifts a kill switch; returns whether one was set. With a Redis ``state`` it
        applies once written: Redis unreachable raises :class:`AegisError` with
        ``code == "state_unavailable"``."""
        result: bool = self._native.revive(scope, id)
        return result

    def grant(self, approval_id: str, approver: str, ttl_seconds: int) -> str:
        """Issues an approval grant token (SPEC §6.2); needs ``approval_key``."""
        result: str = self._native.grant(approval_id, approver, ttl_seconds)
        return result

    def marks(self, session: str) -> List[str]:
        """The session's live marks (SPEC §10) at the engine's clock, sorted (``[]``
        when none is live). Marks are added by the rules that decide a call (their
        ``marks:``) and survive :meth:`reload`. An empty session name, one longer than
        256 bytes or with a control character raises :class:`ArgumentError`
        (``code == "invalid_argument"``)."""
        result: List[str] = self._native.marks(session)
        return result

    def clear_marks(self, session: str) -> bool:
        """Forgets the session's marks (an operator's act, SPEC §10); returns whether
        it had live ones. The session name is checked as for :meth:`marks`."""
        result: bool = self._native.clear_marks(session)
        return result

    def reload(self) -> None:
        """Reloads a ``from_path`` bundle; on :class:`PolicyError` the old one stays."""
        self._native.reload()

    def reload_yaml(self, text: str) -> None:
        """Replaces the bundle with YAML text; on :class:`PolicyError` the old one stays."""
        self._native.reload_yaml(text)

    def policy_hash(self) -> str:
        """The hex SHA-256 policy hash of the current bundle."""
        result: str = self._native.policy_hash()
        return result
