'use strict'
// Issue 16 / spec §9a "Bindings take no shortcut the CLI refuses", §17 codes: keys and
// key ids, guarded-tool arguments, control-function names, audit callbacks, one audit
// file per engine. Real engines throughout (no mocks of the core).
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const {
  Engine, secureTool, withAgent, AegisError, PolicyError, RequestError, PolicyDenied, ApprovalRequired,
} = require('..')

const POLICY = `aegis: 1
rules:
  - id: small
    match: {tool: payments}
    when: {params.amount: {lte: 100}}
    outcome: allow
  - id: large
    match: {tool: payments}
    when: {params.amount: {gt: 100}}
    outcome: require_approval
    approvers: [manager]
  - id: shell-ls
    match: {tool: shell}
    when: {params.cmd: ls}
    outcome: allow
`
const T = '2026-01-05T10:00:00Z'
const PAY = { agent: 'bot', tool: 'payments', params: { amount: 500 }, time: T }
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-node-guards-'))
const code = (c, pattern) => (err) => {
  assert.ok(err instanceof AegisError, String(err))
  assert.equal(err.code, c, err.message)
  if (pattern) assert.match(err.message, pattern)
  return true
}

test('empty approval and signing keys are config_invalid (an empty HMAC key forges grants)', () => {
  for (const [opt, value] of [['approvalKey', ''], ['approvalKey', Buffer.alloc(0)], ['approvalKey', new Uint8Array(0)],
    ['signingKey', ''], ['signingKey', Buffer.alloc(0)]]) {
    assert.throws(() => Engine.fromYaml(POLICY, { [opt]: value }), (err) => {
      code('config_invalid', new RegExp(`\`${opt}\` is empty`))(err)
      assert.equal(err.field, opt)
      return true
    }, `${opt}=${JSON.stringify(value)}`)
  }
  // the forgery the review made: a grant MACed with the empty key
  const e = Engine.fromYaml(POLICY, { approvalKey: 'k' })
  const d = e.evaluate(PAY)
  assert.equal(d.outcome, 'require_approval')
  assert.throws(() => Engine.fromYaml(POLICY, { approvalKey: '' }), code('config_invalid'))
  assert.throws(() => Engine.fromYaml(POLICY, { approvalKey: 5 }),
    code('config_invalid', /^`approvalKey` must be a key \(a string, bytes or \{"base64": "…"\}\), not 5$/))
  assert.throws(() => Engine.fromYaml(POLICY, { approvalKey: 'k\uD800' }), code('config_invalid', /`approvalKey` contains a lone surrogate/))
  assert.throws(() => Engine.fromYaml(POLICY, { approvalKey: new Int16Array(2) }), code('config_invalid', /typed array other than a Buffer or Uint8Array/))
  assert.throws(() => Engine.fromYaml(POLICY, { approvalKey: new ArrayBuffer(2) }), code('config_invalid', /ArrayBuffer/))
  // a key's bytes: a Buffer, a Uint8Array, {base64} and the string of those UTF-8 bytes are one key
  const raw = Buffer.from('k\u00ff')
  const sigs = [raw, new Uint8Array(raw), { base64: raw.toString('base64') }, 'k\u00ff']
    .map((signingKey) => Engine.fromYaml(POLICY, { signingKey }).evaluate(PAY).audit.sig)
  assert.equal(new Set(sigs).size, 1, JSON.stringify(sigs))
  assert.notEqual(Engine.fromYaml(POLICY, { signingKey: 'other' }).evaluate(PAY).audit.sig, sigs[0])
})

test('signingKeyId: NUL and other control characters are config_invalid, never recorded', () => {
  for (const kid of ['ops\u0000evil', 'ops\nx', '', 'x'.repeat(257), '\u007f']) {
    assert.throws(() => Engine.fromYaml(POLICY, { signingKey: 's', signingKeyId: kid }), (err) => {
      code('config_invalid')(err)
      assert.equal(err.field, 'signingKeyId')
      return true
    }, JSON.stringify(kid))
  }
  assert.throws(() => Engine.fromYaml(POLICY, { signingKey: 's', signingKeyId: 7 }), code('config_invalid'))
  const e = Engine.fromYaml(POLICY, { signingKey: 's', signingKeyId: 'ops-2026' })
  assert.equal(e.evaluate(PAY).audit.kid, 'ops-2026')
})

test('other bad options carry config_invalid and name the option', () => {
  assert.throws(() => Engine.fromYaml(POLICY, { bogus: 1 }), (err) => code('config_invalid')(err) && err.field === 'bogus')
  assert.throws(() => Engine.fromYaml(POLICY, { audit: 5 }), code('config_invalid'))
  assert.throws(() => Engine.fromYaml(POLICY, { audit: path.join(tmp(), 'a\u0000.jsonl') }), code('config_invalid', /NUL/))
  assert.throws(() => Engine.fromYaml(POLICY, { audit: path.join(tmp(), 'a\uD800.jsonl') }), code('config_invalid', /lone surrogate/))
  assert.throws(() => Engine.fromYaml(POLICY, { audit: path.join(tmp(), 'a.jsonl'), fsync: 'sometimes' }), code('config_invalid'))
  assert.throws(() => Engine.fromYaml(POLICY, { collector: { endpoint: 'http://h' } }), code('config_invalid'))
})

test('error codes of §17 on every error class', async () => {
  assert.throws(() => Engine.fromYaml('aegis: 1\nrules: 5\n'), (err) => err instanceof PolicyError && err.code === 'policy_invalid')
  assert.throws(() => Engine.fromYaml('aegis: 1\nrules: []\n# \uD800\n'), (err) => {
    assert.ok(err instanceof PolicyError)
    assert.equal(err.code, 'policy_invalid')
    assert.deepEqual([err.errors[0].line, err.errors[0].column], [3, 3])
    return true
  })
  const e = Engine.fromYaml(POLICY, { approvalKey: 'k' })
  assert.throws(() => e.evaluate({ agent: 'bot' }), (err) => err instanceof RequestError && err.code === 'request_invalid' && err.field === 'tool')
  assert.throws(() => e.kill('planet', 'x'), code('invalid_argument'))
  assert.throws(() => e.grant('apr_x', 'alice', 60), code('invalid_argument'))
  assert.throws(() => e.grant('apr_x', 'alice', -1), code('invalid_argument'))
  const pay = secureTool(e, { tool: 'payments' }, (p) => p.amount)
  await assert.rejects(pay({ amount: 1 }), code('invalid_argument', /no agent in context/))
  await assert.rejects(withAgent({ agent: 'bot' }, () => pay({ amount: 500 })), (err) => err instanceof ApprovalRequired && err.code === 'approval_required')
  const refusing = secureTool(e, { tool: 'payments', approvalHandler: () => null }, (p) => p.amount)
  await assert.rejects(withAgent({ agent: 'bot' }, () => refusing({ amount: 500 })), (err) => err instanceof ApprovalRequired && err.code === 'approval_rejected')
  const shell = secureTool(e, { tool: 'shell' }, (p) => p.cmd)
  await assert.rejects(withAgent({ agent: 'bot' }, () => shell({ cmd: 'rm' })), (err) => err instanceof PolicyDenied && err.code === 'denied')
  assert.throws(() => new Engine(), code('invalid_argument'))
})

test('secureTool: a call with further arguments is refused and the tool does not run', async () => {
  const e = Engine.fromYaml(POLICY)
  const ran = []
  const shell = secureTool(e, { tool: 'shell' }, (...args) => { ran.push(args); return 'ran' })
  for (const args of [[{ cmd: 'ls' }, { cmd: 'rm -rf /' }], [{ cmd: 'ls' }, undefined], [{ cmd: 'ls' }, 'x', 'y']]) {
    await assert.rejects(withAgent({ agent: 'bot' }, () => shell(...args)), code('invalid_argument', new RegExp(`called with ${args.length} arguments`)))
  }
  assert.deepEqual(ran, [])
  assert.equal(await withAgent({ agent: 'bot' }, () => shell({ cmd: 'ls' })), 'ran')
  assert.deepEqual(ran, [[{ cmd: 'ls' }]], 'the tool receives exactly one argument, the decided params')
  assert.equal(shell.length, 1)
})

test('secureTool: a mutation during an async approval changes neither the re-decision nor what runs', async () => {
  const e = Engine.fromYaml(POLICY, { approvalKey: 'k' })
  const params = { amount: 500, to: 'alice' }
  const ctx = { tenant: 'acme' }
  const seen = []
  const pay = secureTool(e, {
    tool: 'payments',
    approvalHandler: async (d) => {
      params.amount = 5_000_000 // the caller (or the model) changes the object meanwhile
      params.to = 'mallory'
      ctx.tenant = 'evil'
      await new Promise((r) => setTimeout(r, 5))
      return e.grant(d.approval.id, 'manager', 60)
    },
  }, (p) => { seen.push(p); return p })
  const got = await withAgent({ agent: 'bot', context: ctx }, () => pay(params))
  assert.deepEqual(got, { amount: 500, to: 'alice' })
  assert.notEqual(got, params, 'the tool receives the snapshot, not the caller\'s object')
  assert.equal(seen.length, 1)
})

test('kill / revive / grant: a NUL or lone surrogate in a name is an error, never a truncation', () => {
  const e = Engine.fromYaml(POLICY, { approvalKey: 'k' })
  assert.throws(() => e.kill('agent', 'bot\u0000whatever'), code('invalid_argument', /control character/))
  assert.throws(() => e.kill('agent', 'bot\uD800'), code('invalid_argument', /lone surrogate/))
  assert.throws(() => e.kill('agent\u0000', 'bot'), code('invalid_argument'))
  assert.throws(() => e.kill('agent', 5), code('invalid_argument', /must be a string/))
  assert.throws(() => e.kill('agent', 'bot', 'why\uDC00'), code('invalid_argument', /lone surrogate/))
  assert.equal(e.evaluate({ ...PAY, agent: 'bot', params: { amount: 1 } }).outcome, 'allow', 'bot was not killed')
  e.kill('agent', 'bot', 'compromised')
  assert.throws(() => e.revive('agent', 'bot\u0000whatever'), code('invalid_argument', /control character/))
  assert.throws(() => e.revive('agent', 'bot\uDBFF'), code('invalid_argument', /lone surrogate/))
  assert.equal(e.evaluate({ ...PAY, params: { amount: 1 } }).outcome, 'deny', 'the kill on bot was not lifted')
  assert.equal(e.revive('agent', 'bot'), true)
  const d = e.evaluate(PAY)
  assert.throws(() => e.grant(d.approval.id + '\u0000junk', 'alice', 60), code('invalid_argument', /not an approval id/))
  assert.throws(() => e.grant(d.approval.id, 'alice\u0000 (forged)', 60), code('invalid_argument', /control character/))
  assert.throws(() => e.grant(d.approval.id, 'alice\uD800', 60), code('invalid_argument', /lone surrogate/))
  const token = e.grant(d.approval.id, 'alice', 60)
  assert.equal(e.evaluate({ ...PAY, approval: token }).audit.approved_by, 'alice')
  assert.throws(() => Engine.fromPath('/tmp\u0000/x'), code('invalid_argument', /NUL/))
})

const recorder = (fn) => Engine.fromYaml(POLICY, { audit: fn })

test('audit callback: async or Promise-returning → audit_failed, the tool does not run, a rejection is never ignored', async () => {
  const unhandled = []
  const onUnhandled = (r) => unhandled.push(r)
  process.on('unhandledRejection', onUnhandled)
  try {
    const callbacks = {
      async: async () => {},
      'async that rejects': async () => { throw new Error('sink down') },
      'returns a rejected Promise': () => Promise.reject(new Error('sink down')),
      'returns a thenable': () => ({ then () {} }),
    }
    for (const [name, cb] of Object.entries(callbacks)) {
      const e = recorder(cb)
      assert.throws(() => e.evaluate({ ...PAY, params: { amount: 1 } }), code('audit_failed', /returned a Promise/), name)
      assert.throws(() => e.evaluateJson(JSON.stringify({ ...PAY, params: { amount: 1 } })), code('audit_failed'), name)
      let ran = 0
      const pay = secureTool(e, { tool: 'payments' }, () => { ran++ })
      await assert.rejects(withAgent({ agent: 'bot' }, () => pay({ amount: 1 })), code('audit_failed'), name)
      assert.equal(ran, 0, name)
    }
    await new Promise((r) => setTimeout(r, 20))
    assert.deepEqual(unhandled, [], 'no unhandled rejection ends the process')
  } finally {
    process.removeListener('unhandledRejection', onUnhandled)
  }
})

test('audit callback that throws → audit_failed with the cause; as the only sink the chain does not advance', () => {
  let fail = true
  const seen = []
  const e = recorder((r) => { seen.push(r); if (fail) throw new Error('disk full') })
  assert.throws(() => e.evaluate({ ...PAY, params: { amount: 1 } }), (err) => code('audit_failed', /^audit callback failed: disk full$/)(err) && err.cause.message === 'disk full')
  assert.throws(() => e.evaluateJson(JSON.stringify({ ...PAY, params: { amount: 1 } })), (err) => code('audit_failed')(err) && err.cause.message === 'disk full')
  fail = false
  const d = e.evaluate({ ...PAY, params: { amount: 1 } })
  // §9a: the refused records were never chained: the next one is seq 0 again
  assert.deepEqual(seen.map((r) => r.seq), [0, 0, 0])
  assert.equal(d.audit.seq, 0)
  assert.equal(d.audit.prev, '0'.repeat(64))
  assert.deepEqual(d.audit, seen[2])
  const thrown = recorder(() => { throw Symbol('odd') }) // eslint-disable-line no-throw-literal
  assert.throws(() => thrown.evaluate(PAY), code('audit_failed', /Symbol\(odd\)/))
})

test('the audit callback runs before evaluate returns, on the calling thread, once per record', () => {
  let inside = false
  const order = []
  const e = recorder((r) => { order.push(['callback', r.seq, inside]) })
  inside = true
  const d = e.evaluate({ ...PAY, params: { amount: 1 } })
  inside = false
  order.push(['returned', d.audit.seq])
  assert.deepEqual(order, [['callback', 0, true], ['returned', 0]])
  // a callback sees the record the decision carries, as a separate object
  const records = []
  const f = recorder((r) => { records.push(r); r.outcome = 'tampered' })
  const g = f.evaluate({ ...PAY, params: { amount: 1 } })
  assert.equal(g.audit.outcome, 'allow')
  assert.equal(records[0].hash, g.audit.hash)
})

test('audit callback calling back into its engine → audit_failed, no deadlock; other engines are fine', () => {
  const other = Engine.fromYaml(POLICY)
  const calls = {
    evaluate: (e) => e.evaluate(PAY),
    evaluateJson: (e) => e.evaluateJson(JSON.stringify(PAY)),
    kill: (e) => e.kill('agent', 'x'),
    revive: (e) => e.revive('agent', 'x'),
    grant: (e) => e.grant('apr_' + '0'.repeat(32), 'a', 60),
    reloadYaml: (e) => e.reloadYaml(POLICY),
    policyHash: (e) => e.policyHash(),
  }
  for (const [name, call] of Object.entries(calls)) {
    for (const swallow of [false, true]) {
      let e
      let inner
      e = Engine.fromYaml(POLICY, {
        approvalKey: 'k',
        audit: () => {
          try { call(e) } catch (err) { inner = err; if (!swallow) throw err }
        },
      })
      assert.throws(() => e.evaluate({ ...PAY, params: { amount: 1 } }), code('audit_failed', /called back into its engine/), `${name} swallow=${swallow}`)
      code('audit_failed', /callbacks must not use the engine/)(inner)
    }
  }
  let used = 0
  const e = recorder(() => { used += other.evaluate(PAY).audit.seq >= 0 })
  assert.equal(e.evaluate({ ...PAY, params: { amount: 1 } }).outcome, 'allow')
  assert.equal(used, 1)
})

test('audit callbacks nest across engines: each record reaches its own engine\'s callback, in order', () => {
  const log = []
  const inner = recorder((r) => log.push(['inner', r.seq]))
  const outer = recorder((r) => {
    log.push(['outer', r.seq, 'start'])
    inner.evaluate({ ...PAY, params: { amount: 1 } })
    inner.evaluateJson(JSON.stringify({ ...PAY, params: { amount: 2 } }))
    log.push(['outer', r.seq, 'end'])
  })
  outer.evaluate({ ...PAY, params: { amount: 1 } })
  outer.evaluateJson(JSON.stringify({ ...PAY, params: { amount: 1 } }))
  assert.deepEqual(log, [
    ['outer', 0, 'start'], ['inner', 0], ['inner', 1], ['outer', 0, 'end'],
    ['outer', 1, 'start'], ['inner', 2], ['inner', 3], ['outer', 1, 'end'],
  ])
  // an inner engine whose callback fails fails only its own call
  const failing = recorder(() => { throw new Error('inner sink down') })
  let innerErr
  const host = recorder(() => { try { failing.evaluate(PAY) } catch (err) { innerErr = err } })
  assert.equal(host.evaluate({ ...PAY, params: { amount: 1 } }).audit.seq, 0)
  code('audit_failed', /inner sink down/)(innerErr)
})

test('one audit file per engine: a second engine fails with audit_failed until the first is closed', async () => {
  const file = path.join(tmp(), 'audit.jsonl')
  const first = Engine.fromYaml(POLICY, { audit: file })
  assert.equal(first.evaluate(PAY).audit.seq, 0)
  assert.throws(() => Engine.fromYaml(POLICY, { audit: file }), code('audit_failed', /in use by another engine/))
  assert.throws(() => Engine.fromPath(path.join(__dirname, '..', '..', 'policies', 'finance'), { audit: file }), code('audit_failed', /in use by another engine/))
  assert.equal(first.evaluate(PAY).audit.seq, 1, 'the first engine is unaffected')
  await first.close()
  assert.equal(first.closed, true)
  assert.throws(() => first.evaluate(PAY), code('invalid_argument', /closed/))
  const second = Engine.fromYaml(POLICY, { audit: file })
  const d = second.evaluate(PAY)
  assert.equal(d.audit.seq, 2, 'the chain resumes, not forks')
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  assert.deepEqual(lines.map((r) => r.seq), [0, 1, 2])
  assert.equal(lines[2].prev, lines[1].hash)
  await second.close()
})

test('JSON text from outside: evaluateJson refuses duplicate keys that JSON.parse resolves silently', () => {
  const e = Engine.fromYaml(POLICY)
  const text = '{"agent":"bot","tool":"shell","params":{"cmd":"rm -rf /","cmd":"ls"}}'
  assert.equal(e.evaluate(JSON.parse(text)).outcome, 'allow') // what evaluate sees: the last `cmd`
  assert.throws(() => e.evaluateJson(text), (err) => err instanceof RequestError && /duplicate key "cmd"/.test(err.message))
  assert.throws(() => e.evaluateJson('{"agent":"admin","agent":"bot","tool":"shell"}'), RequestError)
})

test('docs: an agent context follows the caller (the emitter), not the listener', async () => {
  const { EventEmitter } = require('node:events')
  const { AsyncResource } = require('node:async_hooks')
  const e = Engine.fromYaml(POLICY)
  const who = secureTool(e, { tool: 'shell' }, () => require('..').currentAgent().agent)
  const bus = new EventEmitter()
  const got = []
  withAgent({ agent: 'reader' }, () => {
    bus.on('go', () => got.push(who({ cmd: 'ls' })))
    bus.on('go', AsyncResource.bind(() => got.push(who({ cmd: 'ls' })))) // captured at registration
  })
  withAgent({ agent: 'admin' }, () => bus.emit('go'))
  assert.deepEqual(await Promise.all(got), ['admin', 'reader'])
})
