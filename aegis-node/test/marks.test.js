'use strict'
// Session marks (spec §10): rules that label a session, rules over `session.marks`,
// engine.marks / engine.clearMarks, the maxSessions and marksTtl options and the
// record's `marks`. Requests carry no `time` unless a test needs one: they are decided
// at the engine's clock, the clock marks() reads too.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Engine, withAgent, secureTool, AegisError, ConfigError, ApprovalRequired } = require('..')

const TRIFECTA = `aegis: 1
rules:
  - id: hr-reads
    match: {tool: files, action: read}
    when: {params.path: {within: /hr-docs}}
    outcome: allow
    marks: [pii]
  - id: web-fetch
    match: {tool: browser, action: fetch}
    outcome: allow
    marks: [{label: untrusted, ttl: 2h}]
  - id: sql-injection-attempt
    match: {tool: db}
    when: {params.query: {contains_any: [DROP, "; DELETE"]}}
    outcome: deny
    marks: [suspicious]
  - id: lethal-trifecta
    match: {tool: send_email}
    when:
      session.marks: {contains_all: [pii, untrusted]}
      not: {params.to: {domain_in: [example.com]}}
    outcome: require_approval
    approvers: [security]
  - id: quarantine
    match: {tool: [files, browser, db, send_email]}
    when: {session.marks: {contains: suspicious}}
    outcome: deny
    reason: session quarantined
  - id: email-ok
    match: {tool: send_email}
    outcome: allow
  - id: db-ok
    match: {tool: db}
    outcome: allow
  - id: calc-ok
    match: {tool: calc}
    outcome: allow
`

const MARK_ONE = `aegis: 1
rules:
  - id: seen
    match: {tool: t}
    outcome: allow
    marks: [seen]
  - id: check
    match: {tool: check}
    when: {session.marks: {contains: seen}}
    outcome: allow
`

const readHr = (session = 's1') => ({ agent: 'a', tool: 'files', action: 'read', session, params: { path: '/hr-docs/pay.csv' } })
const fetch = (session = 's1') => ({ agent: 'a', tool: 'browser', action: 'fetch', session })
const email = (to, session = 's1') => ({ agent: 'a', tool: 'send_email', session, params: { to } })
const at = (tool, session, time) => ({ agent: 'a', tool, session, time })

test('the lethal trifecta', () => {
  const e = Engine.fromYaml(TRIFECTA)
  assert.deepEqual(e.marks('s1'), [])
  let d = e.evaluate(readHr())
  assert.equal(d.outcome, 'allow')
  assert.deepEqual(d.audit.marks, ['pii'])
  assert.deepEqual(e.marks('s1'), ['pii'])
  assert.deepEqual(e.evaluate(email('bob@evil.test')).rules, ['email-ok'], 'pii alone is not the trifecta')
  d = e.evaluate(fetch())
  assert.deepEqual(d.audit.marks, ['pii', 'untrusted'])
  assert.deepEqual(e.marks('s1'), ['pii', 'untrusted'])
  d = e.evaluate(email('bob@evil.test'))
  assert.equal(d.outcome, 'require_approval')
  assert.deepEqual(d.rules, ['lethal-trifecta'])
  assert.deepEqual(d.approval.approvers, ['security'])
  assert.deepEqual(d.audit.marks, ['pii', 'untrusted'])
  assert.equal(e.evaluate(email('alice@example.com')).outcome, 'allow')
  d = e.evaluate(email('bob@evil.test', 's2'))
  assert.deepEqual(d.rules, ['email-ok'])
  assert.equal(Object.hasOwn(d.audit, 'marks'), false, 'tested but empty: omitted')
  // a denied attempt marks the session; the quarantine then holds
  d = e.evaluate({ agent: 'a', tool: 'db', session: 's1', params: { query: 'DROP TABLE users' } })
  assert.equal(d.outcome, 'deny')
  assert.deepEqual(d.audit.marks, ['pii', 'suspicious', 'untrusted'])
  d = e.evaluate({ agent: 'a', tool: 'db', session: 's1', params: { query: 'SELECT 1' } })
  assert.deepEqual([d.rules, d.reason], [['quarantine'], 'session quarantined'])
  d = e.evaluate({ agent: 'a', tool: 'calc', session: 's1' })
  assert.equal(d.outcome, 'allow')
  assert.equal(Object.hasOwn(d.audit, 'marks'), false, 'a call that touches no marks records none')
  assert.deepEqual(e.marks('s1'), ['pii', 'suspicious', 'untrusted'])
})

test('the record: marks between limits and outcome, as in the JSON line', () => {
  const e = Engine.fromYaml(TRIFECTA)
  e.evaluate(readHr())
  // a fixed time (the JSON line and the object must be the same record) near the clock
  // the first mark was added at, so that it is live then
  const req = { ...fetch(), time: new Date(Math.floor(Date.now() / 1000) * 1000).toISOString() }
  const d = e.evaluate(req)
  const line = JSON.parse(e.evaluateJson(JSON.stringify(req)))
  assert.deepEqual(line.audit.marks, ['pii', 'untrusted'])
  assert.deepEqual(d.audit.marks, ['pii', 'untrusted'])
  const keys = Object.keys(line.audit)
  assert.equal(keys.indexOf('marks'), keys.indexOf('outcome') - 1)
})

test('clearMarks', () => {
  const e = Engine.fromYaml(TRIFECTA)
  e.evaluate(readHr())
  e.evaluate(fetch())
  assert.equal(e.evaluate(email('bob@evil.test')).outcome, 'require_approval')
  assert.equal(e.clearMarks('s1'), true)
  assert.deepEqual(e.marks('s1'), [])
  assert.equal(e.clearMarks('s1'), false, 'nothing left to clear')
  assert.equal(e.clearMarks('never-seen'), false)
  assert.deepEqual(e.evaluate(email('bob@evil.test')).rules, ['email-ok'])
})

test('marks survive reload', () => {
  const e = Engine.fromYaml(TRIFECTA)
  e.evaluate(readHr())
  e.reloadYaml(TRIFECTA.replace('reason: session quarantined', 'reason: quarantined'))
  assert.deepEqual(e.marks('s1'), ['pii'])
})

test('guarded tools mark the session of their context', async () => {
  const e = Engine.fromYaml(TRIFECTA)
  const read = secureTool(e, { tool: 'files', action: 'read' }, (p) => p.path)
  const get = secureTool(e, { tool: 'browser', action: 'fetch' }, () => 'page')
  const send = secureTool(e, { tool: 'send_email' }, (p) => `sent to ${p.to}`)
  await withAgent({ agent: 'a', session: 'chat-7' }, async () => {
    await read({ path: '/hr-docs/pay.csv' })
    await get({})
    await assert.rejects(send({ to: 'bob@evil.test' }), (err) => err instanceof ApprovalRequired && err.code === 'approval_required')
    assert.equal(await send({ to: 'alice@example.com' }), 'sent to alice@example.com')
  })
  assert.deepEqual(e.marks('chat-7'), ['pii', 'untrusted'])
})

test('a request without session records no marks', () => {
  let d = Engine.fromYaml(MARK_ONE).evaluate({ agent: 'a', tool: 't' })
  assert.equal(d.outcome, 'allow')
  assert.deepEqual(d.errors, [{ rule: 'seen', path: 'session', message: 'no session: marks not recorded' }])
  assert.equal(Object.hasOwn(d.audit, 'marks'), false)
  d = Engine.fromYaml(TRIFECTA).evaluate({ agent: 'a', tool: 'browser', action: 'fetch' })
  assert.equal(d.outcome, 'deny', 'session.marks does not resolve without a session (fail closed)')
  assert.deepEqual(d.rules, ['quarantine'])
})

test('a bad session name is invalid_argument', () => {
  const e = Engine.fromYaml(TRIFECTA)
  const cases = [
    ['', /^`session` must not be empty/],
    ['x'.repeat(257), /^`session` is 257 bytes; the limit is 256/],
    ['é'.repeat(129), /^`session` is 258 bytes; the limit is 256/],
    ['a\nb', /^`session` contains a control character/],
    ['a\0b', /^`session` contains a control character/],
    ['\ud800', /session contains a lone surrogate/],
    [5, /session must be a string, not number/],
    [undefined, /session must be a string, not undefined/],
  ]
  for (const [session, message] of cases) {
    for (const call of [(s) => e.marks(s), (s) => e.clearMarks(s)]) {
      assert.throws(() => call(session), (err) => {
        assert.ok(err instanceof AegisError && !(err instanceof ConfigError), String(err))
        assert.equal(err.code, 'invalid_argument')
        assert.match(err.message, message)
        return true
      }, JSON.stringify(session))
    }
  }
  assert.deepEqual(e.marks('x'.repeat(256)), [], '256 bytes is the limit, not beyond it')
})

test('marks from inside the audit callback are refused (audit_failed)', () => {
  let e
  const seen = []
  e = Engine.fromYaml(TRIFECTA, {
    audit: () => {
      try {
        e.marks('s1')
      } catch (err) {
        seen.push(err)
        throw err
      }
    },
  })
  assert.throws(() => e.evaluate(readHr()), (err) => err instanceof AegisError && err.code === 'audit_failed')
  assert.equal(seen.length, 1)
  assert.equal(seen[0].code, 'audit_failed')
})

test('a closed engine refuses marks and clearMarks', async () => {
  const e = Engine.fromYaml(TRIFECTA)
  await e.close()
  assert.throws(() => e.marks('s1'), /this engine is closed/)
  assert.throws(() => e.clearMarks('s1'), /this engine is closed/)
})

test('marksTtl is the ttl of a mark given without one (default 24h)', () => {
  let e = Engine.fromYaml(MARK_ONE, { marksTtl: '1h' })
  assert.deepEqual(e.evaluate(at('t', 's', '2026-01-05T10:00:00Z')).audit.marks, ['seen'])
  assert.equal(e.evaluate(at('check', 's', '2026-01-05T10:59:59.999Z')).outcome, 'allow')
  assert.equal(e.evaluate(at('check', 's', '2026-01-05T11:00:00Z')).outcome, 'deny')
  e = Engine.fromYaml(MARK_ONE, { marksTtl: null })
  e.evaluate(at('t', 's', '2026-01-05T10:00:00Z'))
  assert.equal(e.evaluate(at('check', 's', '2026-01-06T09:59:59Z')).outcome, 'allow')
  assert.equal(e.evaluate(at('check', 's', '2026-01-06T10:00:00Z')).outcome, 'deny')
})

test('maxSessions bounds the table (state:full, fail closed)', () => {
  const e = Engine.fromYaml(MARK_ONE, { maxSessions: 1 })
  assert.equal(e.evaluate({ agent: 'a', tool: 't', session: 's1' }).outcome, 'allow')
  const d = e.evaluate({ agent: 'a', tool: 't', session: 's2' })
  assert.equal(d.outcome, 'deny')
  assert.deepEqual(d.rules, ['state:full'])
  assert.deepEqual([e.marks('s1'), e.marks('s2')], [['seen'], []])
  assert.equal(e.evaluate({ agent: 'a', tool: 'check', session: 's2' }).outcome, 'deny')
  assert.equal(e.clearMarks('s1'), true)
  assert.equal(e.evaluate({ agent: 'a', tool: 't', session: 's2' }).outcome, 'allow', 'clearing makes room')
})

test('a bad marks option gets the core\'s message, in camelCase', () => {
  const cases = [
    [{ maxSessions: 0 }, 'maxSessions', '`maxSessions` must be an integer number of sessions from 1 to 10000000, not 0'],
    [{ maxSessions: 10_000_001 }, 'maxSessions', '`maxSessions` must be an integer number of sessions from 1 to 10000000, not 10000001'],
    [{ maxSessions: 1.5 }, 'maxSessions', '`maxSessions` must be an integer number of sessions from 1 to 10000000, not 1.5'],
    [{ maxSessions: '5' }, 'maxSessions', '`maxSessions` must be an integer number of sessions from 1 to 10000000, not "5"'],
    [{ marksTtl: '0h' }, 'marksTtl', '`marksTtl` must be a duration like "24h" (a whole number above 0 and s, m, h or d), not "0h"'],
    [{ marksTtl: 3600 }, 'marksTtl', '`marksTtl` must be a duration like "24h" (a whole number above 0 and s, m, h or d), not 3600'],
    [{ marks_ttl: '1h' }, 'marks_ttl', 'unknown option `marks_ttl` (did you mean `marksTtl`?)'],
    [{ marksTll: '1h' }, 'marksTll', 'unknown option `marksTll` (did you mean `marksTtl`?)'],
  ]
  for (const [options, field, message] of cases) {
    assert.throws(() => Engine.fromYaml(MARK_ONE, options), (err) => {
      assert.ok(err instanceof ConfigError, String(err))
      assert.equal(err.code, 'config_invalid')
      assert.equal(err.field, field)
      assert.equal(err.message, message)
      return true
    }, JSON.stringify(options))
  }
  const e = Engine.fromYaml(MARK_ONE, { maxSessions: 10_000_000, marksTtl: '30d' })
  e.evaluate(at('t', 's', '2026-01-05T10:00:00Z'))
  assert.equal(e.evaluate(at('check', 's', '2026-02-04T09:59:59Z')).outcome, 'allow')
  assert.equal(e.evaluate(at('check', 's', '2026-02-04T10:00:00Z')).outcome, 'deny')
})
