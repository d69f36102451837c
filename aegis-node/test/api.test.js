'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const {
  Engine, secureTool, withAgent, currentAgent,
  AegisError, PolicyError, RequestError, ConfigError, PolicyDenied, ApprovalRequired,
} = require('..')

const POLICY = `aegis: 1
rules:
  - id: small-payments
    match: {agent: "finance-*", tool: payments, action: create}
    when:
      params.amount: {gte: 0, lte: 5000}
    outcome: allow
  - id: large-payments
    match: {agent: "finance-*", tool: payments, action: create}
    when:
      params.amount: {gt: 5000}
    outcome: require_approval
    approvers: [finance-manager]
  - id: no-supervisor-chain
    match: {tool: payments}
    when:
      chain: {contains: rogue}
    outcome: deny
    reason: rogue in chain
`
const T = '2026-01-05T10:00:00Z'
const mk = (opts) => Engine.fromYaml(POLICY, { approvalKey: 'k', ...opts })

test('error classes are real subclasses', () => {
  for (const C of [PolicyError, RequestError, ConfigError, PolicyDenied, ApprovalRequired]) {
    assert.ok(C.prototype instanceof AegisError)
  }
  assert.ok(AegisError.prototype instanceof Error)
  assert.throws(() => new Engine(), AegisError)
})

test('evaluate returns a plain decision object', () => {
  const e = mk()
  const d = e.evaluate({ agent: 'finance-bot', tool: 'payments', action: 'create', params: { amount: 10 }, time: T, session: undefined })
  assert.equal(d.outcome, 'allow')
  assert.equal(d.allowed, true)
  assert.deepEqual(d.rules, ['small-payments'])
  assert.equal(d.approval, null)
  assert.equal(d.audit.seq, 0)
  assert.equal(d.audit.session, undefined)
  const a = e.evaluate({ agent: 'finance-bot', tool: 'payments', action: 'create', params: { amount: 9000 }, time: T })
  assert.equal(a.outcome, 'require_approval')
  assert.match(a.approval.id, /^apr_[0-9a-f]{32}$/)
  assert.deepEqual(a.approval.approvers, ['finance-manager'])
  assert.equal(a.audit.seq, 1)
})

test('evaluate and evaluateJson agree on the record bytes', () => {
  const req = { agent: 'finance-bot', tool: 'payments', action: 'create', params: { amount: 12.5, memo: 'café ☕', n: [1, 2.5e-7, -0] }, context: { t: 'x' }, chain: ['sup'], time: T }
  const a = mk().evaluate(req)
  const b = JSON.parse(mk().evaluateJson(JSON.stringify(req)))
  assert.deepEqual(a.audit, b.audit)
})

test('hostile values are RequestErrors, never crashes', () => {
  const e = mk()
  const base = { agent: 'finance-bot', tool: 'payments', action: 'create', time: T }
  const cyclic = {}; cyclic.self = cyclic
  const cyclicArr = []; cyclicArr.push(cyclicArr)
  let deep = {}; const root = deep
  for (let i = 0; i < 100; i++) { deep.x = {}; deep = deep.x }
  const cases = [
    [{ amount: 10n }, 'params'], [{ amount: NaN }, 'params'], [{ amount: Infinity }, 'params'],
    [{ amount: -Infinity }, 'params'], [{ f() {} }, 'params'], [{ s: Symbol('x') }, 'params'],
    [cyclic, 'params'], [{ a: cyclicArr }, 'params'], [root, 'params'], [{ d: new Date() }, 'params'],
    [{ list: [1, undefined] }, 'params'], [[1, 2], 'params'], ['text', 'params'],
  ]
  for (const [params, field] of cases) {
    assert.throws(() => e.evaluate({ ...base, params }), (err) => err instanceof RequestError && err.field === field, String(params))
  }
  assert.throws(() => e.evaluate({ ...base, agent: 5 }), (err) => err instanceof RequestError && err.field === 'agent')
  assert.throws(() => e.evaluate({ ...base, agent: null }), (err) => err instanceof RequestError && err.field === 'agent')
  assert.throws(() => e.evaluate({ ...base, bogus: 1 }), (err) => err instanceof RequestError && err.field === 'bogus')
  assert.throws(() => e.evaluate({ ...base, time: 'yesterday' }), RequestError)
  assert.throws(() => e.evaluate(null), RequestError)
  assert.throws(() => e.evaluate(undefined), RequestError)
  assert.throws(() => e.evaluate(42), RequestError)
  assert.throws(() => e.evaluateJson('{"agent":'), RequestError)
  assert.throws(() => e.evaluateJson('{"agent":"a","tool":"t","params":{"x":1e400}}'), RequestError)
  // none of these produced a record: the next one is seq 0
  const d = e.evaluate({ ...base, params: { amount: 1, sym: undefined, [Symbol('k')]: 1 } })
  assert.equal(d.audit.seq, 0)
  assert.equal(d.outcome, 'allow')
})

test('depth: params depth 64 is fine, 65 is not', () => {
  const e = mk()
  const nest = (n) => { let v = 1; for (let i = 1; i < n; i++) v = { x: v }; return v }
  // params itself is depth 1; the native path and the JSON path agree on the boundary
  const ok = { agent: 'a', tool: 't', time: T, params: { x: nest(64) } }
  const over = { agent: 'a', tool: 't', time: T, params: { x: nest(65) } }
  assert.equal(e.evaluate(ok).outcome, 'deny')
  assert.equal(JSON.parse(e.evaluateJson(JSON.stringify(ok))).outcome, 'deny')
  assert.throws(() => e.evaluate(over), (err) => err instanceof RequestError && err.field === 'params')
  assert.throws(() => e.evaluateJson(JSON.stringify(over)), RequestError)
})

test('load errors throw PolicyError with locations', () => {
  assert.throws(() => Engine.fromYaml('aegis: 1\nrules:\n  - id: r\n    match: {tool: t}\n    outcome: allw\n'), (err) => {
    assert.ok(err instanceof PolicyError)
    assert.deepEqual(err.errors, [{ file: '<yaml>', line: 5, column: 14, message: 'unknown outcome "allw"', help: 'did you mean "allow"?' }])
    return true
  })
  assert.throws(() => Engine.fromPath('/nonexistent/aegis'), PolicyError)
  assert.throws(() => Engine.fromYaml(POLICY, { bogus: 1 }), ConfigError)
  assert.throws(() => Engine.fromYaml(POLICY, { fsync: 'sometimes', audit: path.join(os.tmpdir(), 'x.jsonl') }), ConfigError)
})

test('a bundle with three errors gives three structured errors, as properties (no JSON in the message)', () => {
  const text = 'aegis: 1\nrules:\n  - id: a\n    outcome: alow\n  - id: b\n    outcome: dney\n    colour: red\n'
  assert.throws(() => Engine.fromYaml(text), (err) => {
    assert.ok(err instanceof PolicyError && err instanceof AegisError)
    assert.equal(err.code, 'policy_invalid')
    assert.equal(err.field, '')
    assert.deepEqual(err.errors.map((e) => [e.file, e.line, e.column]), [['<yaml>', 4, 14], ['<yaml>', 6, 14], ['<yaml>', 7, 5]])
    assert.deepEqual(err.errors[0], { file: '<yaml>', line: 4, column: 14, message: 'unknown outcome "alow"', help: 'did you mean "allow"?' })
    assert.ok(Object.keys(err.errors[2]).join() === 'file,line,column,message,help')
    assert.match(err.message, /^<yaml>:4:14: .*\(and 2 more\)$/)
    assert.ok(!err.message.includes('{'), err.message)
    return true
  })
})

test('options: one document, validated by the core (§17), with the messages of every language', () => {
  const refused = (options, field, message) => assert.throws(() => Engine.fromYaml(POLICY, options), (err) => {
    assert.ok(err instanceof ConfigError, String(err))
    assert.equal(err.code, 'config_invalid')
    assert.equal(err.field, field)
    if (typeof message === 'string') assert.equal(err.message, message)
    else assert.match(err.message, message)
    return true
  })
  refused({ fsnyc: 'always' }, 'fsnyc', 'unknown option `fsnyc` (did you mean `fsync`?)')
  refused({ requestMaxBytes: 'big' }, 'requestMaxBytes', '`requestMaxBytes` must be an integer number of bytes from 1 to 67108864, not "big"')
  refused({ request_max_bytes: 5 }, 'request_max_bytes', 'unknown option `request_max_bytes` (did you mean `requestMaxBytes`?)')
  refused({ colour: 'red' }, 'colour', /^unknown option `colour`; the options are audit, fsync, rotateBytes, signingKey,/)
  refused({ maxSessions: 0 }, 'maxSessions', '`maxSessions` must be an integer number of sessions from 1 to 10000000, not 0')
  refused({ marksTtl: 'forever' }, 'marksTtl', '`marksTtl` must be a duration like "24h" (a whole number above 0 and s, m, h or d), not "forever"')
  refused({ metricsAgentLabel: true }, 'metricsAgentLabel', /^`metricsAgentLabel` is not supported yet/)
  refused({ inbox: 'sqlite:///x' }, 'inbox', /^`inbox` is not supported yet/)
  refused({ stateTimeoutMs: 5 }, 'stateTimeoutMs', "`stateTimeoutMs` sets how the fleet's store is used; give `state` too (a Redis URL)")
  refused({ rotateBytes: 1024 }, 'rotateBytes', '`rotateBytes` sets how the audit file is written; give `audit` too (a file path)')
  refused({ audit: () => {}, fsync: 'batch' }, 'fsync', /`audit` is a callback here/)
  refused({ signingKeyId: 'ops' }, 'signingKeyId', '`signingKeyId` names the signing key; give `signingKey` too')
  refused({ approvalKey: { base64: '!!' } }, 'approvalKey', /not valid base64/)
  // every option of §17 that works today
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-node-'))
  const audit = path.join(dir, 'audit.jsonl')
  const e = Engine.fromYaml(POLICY, {
    audit, fsync: 'never', rotateBytes: 400, signingKey: { base64: Buffer.from('s').toString('base64') },
    signingKeyId: 'ops', approvalKey: Buffer.from('k'), requestMaxBytes: 2048, requestMaxDepth: 3, maxLimitCounters: 10,
    collector: null, maxSessions: 1000, marksTtl: '1h',
  })
  const req = { agent: 'finance-bot', tool: 'payments', action: 'create', params: { amount: 10 }, time: T }
  for (let i = 0; i < 3; i++) assert.equal(e.evaluate(req).audit.kid, 'ops')
  assert.ok(fs.readdirSync(dir).length > 1, 'rotateBytes rotated the file: ' + fs.readdirSync(dir))
  assert.throws(() => e.evaluate({ ...req, params: { a: { b: { c: { d: 1 } } } } }), (err) => err instanceof RequestError && /`params` is nested 4 levels deep; the limit is 3/.test(err.message))
  assert.throws(() => e.evaluate({ ...req, params: { s: 'x'.repeat(3000) } }), (err) => err instanceof RequestError && /larger than 2048 bytes/.test(err.message))
  assert.throws(() => e.evaluateJson(JSON.stringify({ ...req, params: { s: 'x'.repeat(3000) } })), RequestError)
  // no options, null and {} are alike
  for (const o of [undefined, null, {}]) assert.equal(Engine.fromYaml(POLICY, o).evaluate(req).outcome, 'allow')
})

test('kill / revive / grant / reload / policyHash', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-node-'))
  const file = path.join(dir, 'p.yaml')
  fs.writeFileSync(file, POLICY)
  const e = Engine.fromPath(file, { approvalKey: Buffer.from('k') })
  const req = { agent: 'finance-bot', tool: 'payments', action: 'create', params: { amount: 10 }, time: T }
  e.kill('agent', 'finance-bot', 'compromised')
  const k = e.evaluate(req)
  assert.deepEqual([k.outcome, k.rules, k.reason], ['deny', ['kill:agent:finance-bot'], 'compromised'])
  assert.equal(e.revive('agent', 'finance-bot'), true)
  assert.equal(e.evaluate(req).outcome, 'allow')
  assert.throws(() => e.kill('planet', 'x'), AegisError)
  // the one message of every binding and the CLI (the core's)
  assert.throws(() => e.kill('planet', 'x'), { message: 'unknown kill scope `planet` (agent, tool, session, all)' })
  assert.throws(() => e.kill('all', 'x'), { message: 'scope `all` takes the id `*`, not `x`' })
  const big = { ...req, params: { amount: 9000 }, time: undefined }
  const a = e.evaluate(big)
  const token = e.grant(a.approval.id, 'alice', 600)
  assert.match(token, /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/)
  const g = e.evaluate({ ...big, time: a.audit.time, approval: token })
  assert.equal(g.outcome, 'allow')
  assert.equal(g.audit.approved_by, 'alice')
  assert.equal(e.evaluate({ ...big, time: a.audit.time, approval: token }).outcome, 'require_approval') // used
  assert.throws(() => e.grant(a.approval.id, 'alice', -1), AegisError)
  const h = e.policyHash()
  fs.writeFileSync(file, POLICY + '  - id: extra\n    match: {tool: x}\n    outcome: allow\n')
  e.reload()
  assert.notEqual(e.policyHash(), h)
  fs.writeFileSync(file, 'aegis: 1\nrules: 5\n')
  assert.throws(() => e.reload(), PolicyError)
  assert.equal(e.evaluate(req).outcome, 'allow') // old bundle kept
})

test('audit sinks: file and callback (in order, each record delivered before evaluate returns)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-node-'))
  const file = path.join(dir, 'audit.jsonl')
  const seen = []
  const cb = mk({ audit: (r) => seen.push(r) })
  const fe = mk({ audit: file, fsync: 'batch', signingKey: 's', signingKeyId: 'kid1' })
  for (let i = 0; i < 3; i++) {
    const req = { agent: 'finance-bot', tool: 'payments', action: 'create', params: { amount: i }, time: T }
    const d = cb.evaluate(req)
    assert.deepEqual(seen.at(-1), d.audit)
    const line = JSON.parse(fe.evaluateJson(JSON.stringify(req)))
    assert.equal(line.audit.kid, 'kid1')
  }
  assert.deepEqual(seen.map((r) => r.seq), [0, 1, 2])
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  assert.deepEqual(lines.map((r) => r.seq), [0, 1, 2])
  assert.ok(lines.every((r) => typeof r.sig === 'string'))
  // a failing callback fails the call (the tool must not run)
  const bad = mk({ audit: () => { throw new Error('disk full') } })
  assert.throws(() => bad.evaluate({ agent: 'finance-bot', tool: 'payments', action: 'create', params: { amount: 1 }, time: T }),
    (err) => err instanceof AegisError && err.code === 'audit_failed' && err.cause.message === 'disk full')
})

test('secureTool: allow, deny, no context', async () => {
  const e = mk()
  let ran = 0
  const pay = secureTool(e, { tool: 'payments', action: 'create' }, async (p) => { ran++; return `paid ${p.amount}` })
  await assert.rejects(pay({ amount: 10 }), (err) => err instanceof AegisError && !(err instanceof PolicyDenied))
  assert.equal(await withAgent({ agent: 'finance-bot' }, () => pay({ amount: 10 })), 'paid 10')
  await assert.rejects(withAgent({ agent: 'intern' }, () => pay({ amount: 10 })), (err) => err instanceof PolicyDenied && err.decision.outcome === 'deny')
  await assert.rejects(withAgent({ agent: 'finance-bot' }, () => pay({ amount: NaN })), RequestError)
  // a mistyped amount fails closed: the require_approval rule applies
  await assert.rejects(withAgent({ agent: 'finance-bot' }, () => pay({ amount: 'lots' })), ApprovalRequired)
  assert.equal(ran, 1)
})

test('secureTool: approval with and without handler', async () => {
  const e = mk()
  let ran = 0
  const body = async (p) => { ran++; return p.amount }
  const noHandler = secureTool(e, { tool: 'payments', action: 'create' }, body)
  await assert.rejects(withAgent({ agent: 'finance-bot' }, () => noHandler({ amount: 9000 })), (err) => err instanceof ApprovalRequired && err.decision.approval.approvers[0] === 'finance-manager')
  const refusing = secureTool(e, { tool: 'payments', action: 'create', approvalHandler: async () => null }, body)
  await assert.rejects(withAgent({ agent: 'finance-bot' }, () => refusing({ amount: 9000 })), ApprovalRequired)
  const forged = secureTool(e, { tool: 'payments', action: 'create', approvalHandler: () => 'v1.AAAA.BBBB' }, body)
  await assert.rejects(withAgent({ agent: 'finance-bot' }, () => forged({ amount: 9000 })), ApprovalRequired)
  assert.equal(ran, 0)
  const seen = []
  const approving = secureTool(e, {
    tool: 'payments', action: 'create',
    approvalHandler: async (d) => { seen.push(d); await new Promise((r) => setTimeout(r, 5)); return e.grant(d.approval.id, 'manager-1', 300) },
  }, body)
  assert.equal(await withAgent({ agent: 'finance-bot' }, () => approving({ amount: 9000 })), 9000)
  assert.equal(ran, 1)
  assert.equal(seen.length, 1)
})

test('secureTool: approval re-decision uses the same resolved time', async () => {
  const records = []
  const e = mk({ audit: (r) => records.push(r) })
  const t = secureTool(e, { tool: 'payments', action: 'create', approvalHandler: async (d) => { await new Promise((r) => setTimeout(r, 20)); return e.grant(d.approval.id, 'm', 60) } }, (p) => p)
  await withAgent({ agent: 'finance-bot' }, () => t({ amount: 9000 }))
  assert.equal(records.length, 2)
  assert.equal(records[0].time, records[1].time)
  assert.equal(records[1].approved_by, 'm')
})

test('withAgent: nesting extends the chain; concurrent flows stay apart', async () => {
  const e = mk()
  const pay = secureTool(e, { tool: 'payments', action: 'create' }, async (p) => {
    await new Promise((r) => setTimeout(r, Math.random() * 10))
    return currentAgent()
  })
  const nested = await withAgent({ agent: 'supervisor', chain: ['root'], session: 's1' }, () =>
    withAgent({ agent: 'finance-bot' }, () => pay({ amount: 1 })))
  assert.deepEqual([...nested.chain], ['root', 'supervisor'])
  assert.equal(nested.session, 's1')
  await assert.rejects(withAgent({ agent: 'rogue' }, () => withAgent({ agent: 'finance-bot' }, () => pay({ amount: 1 }))), PolicyDenied)
  const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) =>
    withAgent({ agent: i % 2 ? 'finance-bot' : 'intern', session: `s${i}` }, () => pay({ amount: i }))))
  results.forEach((r, i) => {
    if (i % 2) assert.equal(r.value.session, `s${i}`)
    else assert.ok(r.reason instanceof PolicyDenied)
  })
  assert.throws(() => withAgent({ agnet: 'x' }, () => 1), (err) => err instanceof AegisError && err.code === 'invalid_argument' && /unknown key "agnet"/.test(err.message))
  assert.throws(() => withAgent({ agent: 5 }, () => 1), AegisError)
  assert.throws(() => withAgent({ agent: 'a', chain: ['ok', 5] }, () => 1), AegisError)
  assert.throws(() => withAgent(null, () => 1), AegisError)
  // a context without an agent is allowed, but a guarded call in it is refused
  assert.equal(withAgent({}, () => 1), 1)
  await assert.rejects(withAgent({ session: 's' }, () => pay({ amount: 1 })), (err) => err instanceof AegisError && err.code === 'invalid_argument' && /no agent in context/.test(err.message))
})

test('withAgent: a chain only grows (§17); an inner block can never hide its callers', async () => {
  const records = []
  const e = mk({ audit: (r) => records.push(r) })
  const pay = secureTool(e, { tool: 'payments', action: 'create' }, (p) => currentAgent())
  const run = (contexts) => {
    const go = (i) => i === contexts.length ? pay({ amount: 1 }) : withAgent(contexts[i], () => go(i + 1))
    return go(0)
  }
  const last = () => [records.at(-1).agent, records.at(-1).chain ?? []]
  await run([{ agent: 'finance-sup', chain: ['user'] }, { agent: 'finance-bot', chain: ['helper'] }])
  assert.deepEqual(last(), ['finance-bot', ['user', 'finance-sup', 'helper']])
  // an inner block without an agent keeps the agent; its chain is appended
  const ctx = await run([{ agent: 'finance-bot', chain: ['user'], session: 's1' }, { chain: ['relay'], environment: 'prod' }])
  assert.deepEqual(last(), ['finance-bot', ['user', 'relay']])
  assert.deepEqual([ctx.session, ctx.environment], ['s1', 'prod'])
  // the rogue outer agent stays in the chain whatever the inner block says
  await assert.rejects(run([{ agent: 'rogue' }, { agent: 'finance-bot', chain: [] }]), PolicyDenied)
  assert.deepEqual(last(), ['finance-bot', ['rogue']])
  // a killed ancestor cannot act through the agents it calls
  e.kill('agent', 'finance-sup', 'compromised')
  await assert.rejects(run([{ agent: 'finance-sup' }, { agent: 'finance-bot', chain: ['x'] }]), (err) => err instanceof PolicyDenied && err.decision.rules[0] === 'kill:agent:finance-sup')
  // the chain a context exposes is frozen
  withAgent({ agent: 'a', chain: ['b'] }, () => assert.throws(() => currentAgent().chain.push('x'), TypeError))
})

test('secureTool: the body gets a snapshot of the decided params', async () => {
  const e = mk()
  let reads = 0
  const tricky = { get amount() { return reads++ === 0 ? 10 : 1e9 } }
  const pay = secureTool(e, { tool: 'payments', action: 'create' }, (p) => p.amount)
  assert.equal(await withAgent({ agent: 'finance-bot' }, () => pay(tricky)), 10)
  assert.equal(reads, 1, 'each value is read once, by the walk that decides')
})

test('secureTool: a mutation while the call is decided (in the audit callback) reaches neither the record nor the tool', async () => {
  const args = { amount: 10, to: ['alice@example.com'], memo: { note: 'rent' } }
  const records = []
  const e = mk({
    audit: (r) => {
      records.push(r)
      args.to.splice(0, 1, 'mallory@evil.example')
      args.memo.note = 'exfiltrate'
      args.amount = 1e6
    },
  })
  let got
  const pay = secureTool(e, { tool: 'payments', action: 'create' }, (p) => { got = p; return 'ok' })
  assert.equal(await withAgent({ agent: 'finance-bot' }, () => pay(args)), 'ok')
  assert.deepEqual(got, { amount: 10, to: ['alice@example.com'], memo: { note: 'rent' } })
  assert.equal(Object.getPrototypeOf(got), Object.prototype, 'a plain object')
  const want = JSON.parse(mk().evaluateJson(JSON.stringify({ agent: 'finance-bot', tool: 'payments', action: 'create',
    params: { amount: 10, to: ['alice@example.com'], memo: { note: 'rent' } }, time: records[0].time })))
  assert.equal(records[0].params_sha256, want.audit.params_sha256, 'the record is of the snapshot')
  // JSON-like data only, as decided: a `__proto__` key stays a key
  const odd = JSON.parse('{"__proto__": {"x": 1}, "amount": 1}')
  const echo = secureTool(mk(), { tool: 'payments', action: 'create' }, (p) => p)
  const back = await withAgent({ agent: 'finance-bot' }, () => echo(odd))
  assert.ok(Object.hasOwn(back, '__proto__'))
  assert.equal(Object.getPrototypeOf(back), Object.prototype)
  assert.deepEqual(Object.keys(back), ['__proto__', 'amount'])
})
