"""Exceptions raised by Aegis. All derive from :class:`AegisError`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, List, Optional, Tuple

if TYPE_CHECKING:
    from ._engine import Decision

__all__ = [
    "AegisError",
    "PolicyError",
    "PolicyLoadError",
    "RequestError",
    "PolicyDenied",
    "ApprovalRequired",
]


class AegisError(Exception):
    """Base class of every Aegis error. Raised directly when the audit record could
    not be written (the call fails closed), when a guarded tool is called without an
    agent in context, and for misuse of the runtime controls."""


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


class PolicyError(AegisError):
    """The bundle did not load (or reload). ``errors`` lists every problem."""

    errors: List[PolicyLoadError]

    def __init__(self, message: str, errors: Iterable[Any] = ()) -> None:
        super().__init__(message)
        items: List[PolicyLoadError] = []
        for e in errors:
            if isinstance(e, PolicyLoadError):
                items.append(e)
            else:
                t: Tuple[str, int, int, str, Optional[str]] = tuple(e)
                items.append(PolicyLoadError(*t))
        self.errors = items


class RequestError(AegisError):
    """The request breaks SPEC §1 (whatever the Python type at fault). Nothing was
    decided or recorded. ``field`` names the top-level request field at fault
    (``""`` when the request as a whole is)."""

    field: str

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class PolicyDenied(AegisError):
    """A guarded tool call was denied. ``decision`` is the decision."""

    decision: "Decision"

    def __init__(self, decision: "Decision", message: Optional[str] = None) -> None:
        super().__init__(message or f"denied by {', '.join(decision.rules)}: {decision.reason}")
        self.decision = decision


class ApprovalRequired(AegisError):
    """A guarded tool call needs an approval that was not given. ``decision`` is the
    decision (``decision.approval.id`` names the approval)."""

    decision: "Decision"

    def __init__(self, decision: "Decision", message: Optional[str] = None) -> None:
        aid = decision.approval.id if decision.approval is not None else "?"
        super().__init__(message or f"approval {aid} required: {decision.reason}")
        self.decision = decision
