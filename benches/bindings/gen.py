#!/usr/bin/env python3
"""Writes the agent-tools workload for the binding benchmarks.

Mirrors benches/src/lib.rs exactly (same LCG, same bundle text, same request JSON):

    gen.py OUT_DIR [--agents 1000] [--count 4096] [--seed 42]

writes OUT_DIR/bundle.yaml, OUT_DIR/requests.jsonl (one request JSON per line) and
OUT_DIR/cedar.cedar (an equivalent Cedar policy set, for the cedarpy comparison).
"""

from __future__ import annotations

import argparse
import os

MASK = (1 << 64) - 1


class Lcg:
    """A 64-bit LCG with Knuth's MMIX constants (benches/src/lib.rs `Lcg`)."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK

    def next_u64(self) -> int:
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & MASK
        return self.state >> 11

    def below(self, n: int) -> int:
        return self.next_u64() % max(n, 1)


def bundle(n: int) -> str:
    """lib.rs `bundle(n)`: three rules per agent plus three shared rules."""
    parts = ["aegis: 1\ndefault: deny\nrules:\n"]
    for i in range(n):
        parts.append(
            f"  - id: pay-{i}\n    match: {{agent: agent-{i}, tool: payments, action: create}}\n"
            f"    when: {{params.amount: {{lte: 5000}}, params.currency: [USD, EUR]}}\n    outcome: allow\n"
            f"  - id: pay-approval-{i}\n    match: {{agent: agent-{i}, tool: payments, action: create}}\n"
            f"    when: {{params.amount: {{gt: 5000, lte: 50000}}, params.currency: [USD, EUR]}}\n"
            f"    outcome: require_approval\n    approvers: [finance-manager]\n"
            f"  - id: files-{i}\n    match: {{agent: agent-{i}, tool: files, action: read}}\n"
            f"    when: {{params.path: {{within: /team-{i}/}}}}\n    outcome: allow\n"
        )
    parts.append(
        "  - id: no-delete-customer\n    match: {tool: delete_customer}\n    outcome: deny\n"
        "  - id: no-sql-writes\n    match: {tool: db, action: query}\n"
        "    when: {params.query: {contains_any: [DROP, DELETE, UPDATE, INSERT, ALTER]}}\n    outcome: deny\n"
        "  - id: sql-reads\n    match: {tool: db, action: query}\n    outcome: allow\n"
    )
    return "".join(parts)


QUERIES = ["SELECT * FROM orders", "select id from users", "DROP TABLE users", "delete from orders", "UPDATE t SET x=1"]
T = '"time":"2026-01-05T10:00:00Z"'


def requests(n: int, count: int, seed: int) -> list[str]:
    """lib.rs `requests(n, count, seed)` as JSON lines: 40 % payments, 30 % file reads,
    20 % SQL, 10 % delete_customer. Arguments are drawn in lib.rs's order."""
    r = Lcg(seed)
    out = []
    for _ in range(count):
        a = r.below(n)
        kind = r.below(10)
        if kind < 4:
            amount = 1 + r.below(100_000)
            cur = ["USD", "EUR", "GBP"][r.below(3)]
            j = (f'{{"agent":"agent-{a}","tool":"payments","action":"create",'
                 f'"params":{{"amount":{amount},"currency":"{cur}"}},{T}}}')
        elif kind < 7:
            team = a if r.below(2) == 0 else r.below(n) + 1
            doc = r.below(100)
            j = (f'{{"agent":"agent-{a}","tool":"files","action":"read",'
                 f'"params":{{"path":"/team-{team}/doc-{doc}.txt"}},{T}}}')
        elif kind < 9:
            q = QUERIES[r.below(5)]
            j = f'{{"agent":"agent-{a}","tool":"db","action":"query","params":{{"query":"{q}"}},{T}}}'
        else:
            j = f'{{"agent":"agent-{a}","tool":"delete_customer","params":{{"id":{r.below(1000)}}},{T}}}'
        out.append(j)
    return out


SQL_WORDS = ["DROP", "DELETE", "UPDATE", "INSERT", "ALTER"]


def cedar(n: int) -> str:
    """An equivalent Cedar policy set. principal Agent::"agent-i", action Action::"<action>"
    (Action::"none" when absent), resource Tool::"<tool>", context {params: {...}}.
    Approval rules are permits annotated @approval; an Allow whose determining policies
    include one is require_approval. Aegis's contains_any on a string is case-insensitive;
    Cedar has no lower(), so each word is matched in upper and lower case (exact for this
    workload's queries)."""
    ps = []
    for i in range(n):
        ps.append(
            f'@id("pay-{i}")\npermit(principal == Agent::"agent-{i}", action == Action::"create", '
            f'resource == Tool::"payments") when {{ context.params.amount <= 5000 && '
            f'["USD", "EUR"].contains(context.params.currency) }};\n'
            f'@id("pay-approval-{i}")\n@approval("finance-manager")\n'
            f'permit(principal == Agent::"agent-{i}", action == Action::"create", '
            f'resource == Tool::"payments") when {{ context.params.amount > 5000 && '
            f'context.params.amount <= 50000 && ["USD", "EUR"].contains(context.params.currency) }};\n'
            f'@id("files-{i}")\npermit(principal == Agent::"agent-{i}", action == Action::"read", '
            f'resource == Tool::"files") when {{ context.params.path like "/team-{i}/*" }};\n'
        )
    likes = " || ".join(
        f'context.params.query like "*{w}*" || context.params.query like "*{w.lower()}*"' for w in SQL_WORDS
    )
    ps.append(
        '@id("no-delete-customer")\nforbid(principal, action, resource == Tool::"delete_customer");\n'
        f'@id("no-sql-writes")\nforbid(principal, action == Action::"query", resource == Tool::"db") '
        f'when {{ {likes} }};\n'
        '@id("sql-reads")\npermit(principal, action == Action::"query", resource == Tool::"db");\n'
    )
    return "".join(ps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--count", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "bundle.yaml"), "w", encoding="utf-8") as f:
        f.write(bundle(a.agents))
    with open(os.path.join(a.out_dir, "requests.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in requests(a.agents, a.count, a.seed))
    with open(os.path.join(a.out_dir, "cedar.cedar"), "w", encoding="utf-8") as f:
        f.write(cedar(a.agents))


if __name__ == "__main__":
    main()
