"""A small agent loop with three guarded tools (payments, files, SQL).

Run from the repository root after `make -f aegis-py/py.mk py-build`:

    .venv/bin/python examples/python/agent.py

Each tool is guarded by the engine of its domain's policy bundle (policies/finance,
policies/hr-files, policies/analytics). Records of every decision are appended to an
audit file in a temporary folder.
"""

from __future__ import annotations

import pathlib
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import aegis
from aegis import agent_context, secure_tool

ROOT = pathlib.Path(__file__).resolve().parents[2]
AUDIT = pathlib.Path(tempfile.mkdtemp(prefix="aegis-example-")) / "audit.jsonl"

finance = aegis.Engine.from_path(ROOT / "policies" / "finance", audit=AUDIT, approval_key=b"demo-approval-key")
hr = aegis.Engine.from_path(ROOT / "policies" / "hr-files", audit=str(AUDIT) + ".hr")
analytics = aegis.Engine.from_path(ROOT / "policies" / "analytics", audit=lambda rec: None)


def manager_approves(decision: aegis.Decision) -> Optional[str]:
    """A stand-in for a human in the loop: approves every request it is shown."""
    assert decision.approval is not None
    print(f"    approval {decision.approval.id} asked of {decision.approval.approvers}: {decision.reason}")
    return finance.grant(decision.approval.id, "finance-manager", ttl_seconds=300)


@secure_tool(finance, tool="payments", action="create", approval_handler=manager_approves, approval_timeout=30)
def pay(amount: float, currency: str, payee: str) -> str:
    return f"paid {amount} {currency} to {payee}"


@secure_tool(hr, tool="files", action="read")
def read_file(path: str) -> str:
    return f"<contents of {path}>"


@secure_tool(analytics, tool="warehouse", action="query")
def sql(query: str, tables: List[str], database: str = "dw") -> str:
    return f"rows of {query!r}"


PLAN: List[Tuple[str, Callable[..., str], Dict[str, Any]]] = [
    ("finance-agent", pay, {"amount": 1200, "currency": "USD", "payee": "acme-supplies"}),
    ("finance-agent", pay, {"amount": 18500, "currency": "EUR", "payee": "globex-gmbh"}),
    ("finance-agent", pay, {"amount": 900000, "currency": "USD", "payee": "offshore"}),
    ("hr-assistant", read_file, {"path": "/hr/handbook/parental-leave.md"}),
    ("hr-assistant", read_file, {"path": "/hr/handbook/../../etc/passwd"}),
    ("analytics-agent", sql, {"query": "SELECT region, sum(total) FROM orders GROUP BY region", "tables": ["orders"]}),
    ("analytics-agent", sql, {"query": "DELETE FROM web_sessions", "tables": ["web_sessions"]}),
]


def main() -> None:
    with agent_context(agent="orchestrator", session="demo-run", environment="prod"):
        for agent, tool, args in PLAN:
            with agent_context(agent=agent):  # chain: ["orchestrator"]
                print(f"{agent} -> {tool.__name__}({args})")
                try:
                    print(f"    allow: {tool(**args)}")
                except aegis.PolicyDenied as e:
                    print(f"    deny {e.decision.rules}: {e.decision.reason}")
                except aegis.ApprovalRequired as e:
                    print(f"    approval required {e.decision.rules}: {e.decision.reason} ({e.code})")
                except aegis.AegisError as e:  # e.g. a request error: nothing ran
                    print(f"    refused ({e.code}): {e}")
    for engine in (finance, hr, analytics):
        engine.close()  # releases each audit file (one audit file per engine)
    print(f"audit records in {AUDIT} (and {AUDIT}.hr)")


if __name__ == "__main__":
    main()
