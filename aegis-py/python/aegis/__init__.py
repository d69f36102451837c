"""Aegis: an embeddable policy-decision engine for AI agents' tool calls.

    >>> import aegis
    >>> engine = aegis.Engine.from_path("policies/finance")
    >>> engine.evaluate(agent="finance-agent", tool="payments", params={"amount": 5}).outcome
"""

from ._decorator import AgentContext, ApprovalHandler, agent_context, current_agent_context, secure_tool
from ._engine import Approval, AuditSink, Collector, CollectorConfig, Decision, Engine, EngineOptions, Outcome
from ._errors import (
    AegisError,
    ApprovalRequired,
    ArgumentError,
    ConfigError,
    PolicyDenied,
    PolicyError,
    PolicyLoadError,
    RequestError,
)

__all__ = [
    "AegisError",
    "AgentContext",
    "Approval",
    "ApprovalHandler",
    "ApprovalRequired",
    "ArgumentError",
    "AuditSink",
    "Collector",
    "CollectorConfig",
    "ConfigError",
    "Decision",
    "Engine",
    "EngineOptions",
    "Outcome",
    "PolicyDenied",
    "PolicyError",
    "PolicyLoadError",
    "RequestError",
    "agent_context",
    "current_agent_context",
    "secure_tool",
]
