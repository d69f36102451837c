"""Exceptions raised by Aegis. All derive from :class:`AegisError`.

Every one carries the three attributes of SPEC §17: ``code`` (a stable code),
``field`` (the request field or option at fault, ``""`` when none is) and ``errors``
(the load errors of a bundle as :class:`PolicyLoadError`, ``[]`` for every other
error). The native layer makes them all through :func:`_error`, from the core's one
error shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Tuple, Type

if TYPE_CHECKING:
    from ._engine import Decision

__all__ = [
    "AegisError",
    "ArgumentError",
    "ConfigError",
    "PolicyError",
    "PolicyLoadError",
    "RequestError",
    "PolicyDenied",
    "ApprovalRequired",
]


@dataclass(frozen=True)
class PolicyLoadError:
    """One problem in a policy bundle, at ``file:line:column``."""

    file: str
    line: int
    column: int
    message: str
    help: Optional[str] = None

    def __str__(self) -> str:
        s = f"{self.file}:{self.line}:{self.column}: error: {self.message}"
        return s + (f" — {self.help}" if self.help else "")


def _locations(errors: Iterable[Any]) -> List[PolicyLoadError]:
    items: List[PolicyLoadError] = []
    for e in errors:
        if isinstance(e, PolicyLoadError):
            items.append(e)
        else:
            t: Tuple[str, int, int, str, Optional[str]] = tuple(e)
            items.append(PolicyLoadError(*t))
    return items


class AegisError(Exception):
    """Base class of every Aegis error. Raised directly when the audit record could
    not be written (``code == "audit_failed"``: the call fails closed) and when a
    collector could not deliver in time (``"collector_failed"``).

    ``code`` is the stable error code of SPEC §17 (``policy_invalid``,
    ``request_invalid``, ``config_invalid``, ``invalid_argument``, ``audit_failed``,
    ``collector_failed``, ``io``, ``denied``, ``approval_required``,
    ``approval_rejected``); ``field`` names the request field or option at fault
    (``""`` when none is); ``errors`` lists a bundle's load errors (``[]`` unless
    ``code == "policy_invalid"``)."""

    #: The code of instances that are not given one.
    _default_code = "invalid_argument"
    code: str
    field: str
    errors: List[PolicyLoadError]

    def __init__(
        self, message: str = "", code: Optional[str] = None, field: str = "", errors: Iterable[Any] = ()
    ) -> None:
        super().__init__(message)
        self.code = code if code is not None else type(self)._default_code
        self.field = field
        self.errors = _locations(errors)


class ConfigError(AegisError, ValueError):
    """An engine option was refused (``code == "config_invalid"``): an unknown option
    (``field`` is the name as given: ``fsnyc`` gets "did you mean `fsync`?"), a value
    of the wrong type or out of range, an empty ``approval_key``/``signing_key``, a
    ``signing_key_id`` with a NUL or other control character, an option that changes
    nothing (``fsync`` without a file ``audit``), an option not supported yet.
    ``field`` names the option; the message is the core's, the same in every language.
    Also a :class:`ValueError`."""

    _default_code = "config_invalid"

    def __init__(self, message: str = "", field: str = "", errors: Iterable[Any] = ()) -> None:
        super().__init__(message, None, field, errors)


class ArgumentError(AegisError, ValueError):
    """A bad argument (``code == "invalid_argument"``): a kill scope, an id, approver
    or approval id with a NUL or other control character, a ttl or timeout out of
    range, a guarded tool called without an agent in context, a closed engine. Also a
    :class:`ValueError`."""

    _default_code = "invalid_argument"

    def __init__(self, message: str = "", field: str = "", errors: Iterable[Any] = ()) -> None:
        super().__init__(message, None, field, errors)


class PolicyError(AegisError):
    """The bundle did not load (or reload) (``code == "policy_invalid"``). ``errors``
    lists every problem, each a :class:`PolicyLoadError` with its file, line, column,
    message and help; the message is the first of them (and how many more)."""

    _default_code = "policy_invalid"

    def __init__(self, message: str, errors: Iterable[Any] = (), field: str = "") -> None:
        super().__init__(message, None, field, errors)


class RequestError(AegisError):
    """The request breaks SPEC §1 (whatever the Python type at fault). Nothing was
    decided or recorded. ``field`` names the top-level request field at fault
    (``""`` when the request as a whole is)."""

    _default_code = "request_invalid"

    def __init__(self, message: str, field: str = "", errors: Iterable[Any] = ()) -> None:
        super().__init__(message, None, field, errors)


class PolicyDenied(AegisError):
    """A guarded tool call was denied (``code == "denied"``). ``decision`` is the
    decision."""

    _default_code = "denied"
    decision: "Decision"

    def __init__(self, decision: "Decision", message: Optional[str] = None) -> None:
        super().__init__(message or f"denied by {', '.join(decision.rules)}: {decision.reason}")
        self.decision = decision


class ApprovalRequired(AegisError):
    """A guarded tool call needs an approval that was not given. ``decision`` is the
    decision (``decision.approval.id`` names the approval). ``code`` is
    ``"approval_rejected"`` when the approval handler refused (returned ``None``),
    else ``"approval_required"``."""

    _default_code = "approval_required"
    decision: "Decision"

    def __init__(self, decision: "Decision", message: Optional[str] = None, code: Optional[str] = None) -> None:
        aid = decision.approval.id if decision.approval is not None else "?"
        super().__init__(message or f"approval {aid} required: {decision.reason}", code)
        self.decision = decision


#: The class of each code the native layer raises with (others: :class:`AegisError`).
_BY_CODE: Dict[str, Type[AegisError]] = {
    "policy_invalid": PolicyError,
    "request_invalid": RequestError,
    "config_invalid": ConfigError,
    "invalid_argument": ArgumentError,
}


def _error(code: str, message: str, field: str, errors: Iterable[Any]) -> AegisError:
    """The exception for an error of the core's shape (``ErrorInfo``: code, message,
    field, load errors as ``(file, line, column, message, help)``): the one place the
    native layer makes its exceptions."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return AegisError(message, code, field, errors)
    e = cls.__new__(cls)
    AegisError.__init__(e, message, code, field, errors)
    return e
