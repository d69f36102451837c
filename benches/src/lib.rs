//! The `agent-tools` workload, built deterministically (an LCG), shared by the
//! benchmarks and the comparison runs.
#![forbid(unsafe_code)]

use aegis_core::{Request, RequestLimits};

/// A 64-bit linear congruential generator (Knuth's MMIX constants).
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

pub mod marks;

/// The bundle for `n` agents: three rules per agent plus three shared rules.
pub fn bundle(n: usize) -> String {
    let mut y = String::from("aegis: 1\ndefault: deny\nrules:\n");
    for i in 0..n {
        y.push_str(&format!(
            "  - id: pay-{i}\n    match: {{agent: agent-{i}, tool: payments, action: create}}\n    when: {{params.amount: {{lte: 5000}}, params.currency: [USD, EUR]}}\n    outcome: allow\n\
             \x20 - id: pay-approval-{i}\n    match: {{agent: agent-{i}, tool: payments, action: create}}\n    when: {{params.amount: {{gt: 5000, lte: 50000}}, params.currency: [USD, EUR]}}\n    outcome: require_approval\n    approvers: [finance-manager]\n\
             \x20 - id: files-{i}\n    match: {{agent: agent-{i}, tool: files, action: read}}\n    when: {{params.path: {{within: /team-{i}/}}}}\n    outcome: allow\n"
        ));
    }
    y.push_str(
        "  - id: no-delete-customer\n    match: {tool: delete_customer}\n    outcome: deny\n\
         \x20 - id: no-sql-writes\n    match: {tool: db, action: query}\n    when: {params.query: {contains_any: [DROP, DELETE, UPDATE, INSERT, ALTER]}}\n    outcome: deny\n\
         \x20 - id: sql-reads\n    match: {tool: db, action: query}\n    outcome: allow\n",
    );
    y
}

/// `count` requests for `n` agents: 40 % payments, 30 % file reads, 20 % SQL, 10 %
/// delete_customer.
pub fn requests(n: usize, count: usize, seed: u64) -> Vec<Request> {
    let mut r = Lcg(seed);
    let limits = RequestLimits::default();
    (0..count)
        .map(|_| {
            let a = r.below(n as u64);
            let kind = r.below(10);
            let json = if kind < 4 {
                let amount = 1 + r.below(100_000);
                let cur = ["USD", "EUR", "GBP"].get(r.below(3) as usize).copied().unwrap_or("USD");
                format!(r#"{{"agent":"agent-{a}","tool":"payments","action":"create","params":{{"amount":{amount},"currency":"{cur}"}},"time":"2026-01-05T10:00:00Z"}}"#)
            } else if kind < 7 {
                let team = if r.below(2) == 0 { a } else { r.below(n as u64) + 1 };
                format!(r#"{{"agent":"agent-{a}","tool":"files","action":"read","params":{{"path":"/team-{team}/doc-{}.txt"}},"time":"2026-01-05T10:00:00Z"}}"#, r.below(100))
            } else if kind < 9 {
                let q = ["SELECT * FROM orders", "select id from users", "DROP TABLE users", "delete from orders", "UPDATE t SET x=1"].get(r.below(5) as usize).copied().unwrap_or("");
                format!(r#"{{"agent":"agent-{a}","tool":"db","action":"query","params":{{"query":"{q}"}},"time":"2026-01-05T10:00:00Z"}}"#)
            } else {
                format!(r#"{{"agent":"agent-{a}","tool":"delete_customer","params":{{"id":{}}},"time":"2026-01-05T10:00:00Z"}}"#, r.below(1000))
            };
            Request::from_json(&json, &limits).unwrap_or_default()
        })
        .collect()
}

/// The decision phase alone, as `decision_phase/rules_only` measures it: index
/// lookup, each candidate's unproven selectors and three-valued condition, and
/// combining (no kill switch, limits, record or hashing). Returns the winning outcome
/// (`None`: no rule applies) and how many rules share it.
pub fn decide(
    compiled: &aegis_core::internals::Compiled,
    r: &Request,
    time: &str,
) -> (Option<aegis_core::Outcome>, usize) {
    use aegis_core::internals::{eval_rule_proven, Ctx, Sink};
    use aegis_core::Outcome;
    use aegis_core::Tri;
    let ctx = Ctx { req: r, time_ms: 0, time_str: time, marks: aegis_core::internals::MarksSeen::NotRead };
    let mut sink = Sink { errors: Vec::new(), trace: None };
    let mut best: Option<Outcome> = None;
    let mut count = 0usize;
    let (cands, proven) = compiled.lookup(&r.agent, &r.tool, r.action.as_deref());
    for &k in cands {
        let Some(rule) = compiled.bundle.rules.get(k as usize) else { continue };
        let applies = match eval_rule_proven(rule, &ctx, &mut sink, proven) {
            Tri::True => true,
            Tri::False => false,
            Tri::Error => rule.outcome != Outcome::Allow,
        };
        if applies {
            if best.is_none_or(|b| rule.outcome > b) {
                best = Some(rule.outcome);
                count = 0;
            }
            count += 1;
        }
        sink.errors.clear();
    }
    (best, count)
}
