// Hostile JS objects in a request: throwing getters, Proxies with throwing traps,
// objects that change under the engine. Each must throw a clean JS error (never crash
// the process or produce a decision from a half-read value), and the engine must keep
// working afterwards.
'use strict'
const test = require('node:test')
const assert = require('node:assert')
const { Engine, AegisError } = require('../lib.js')

const POLICY = 'aegis: 1\ndefault: deny\nrules:\n  - id: ok\n    match: {tool: t}\n    outcome: allow\n'

function hostileValues () {
  return {
    'throwing getter': { get x () { throw new Error('getter') } },
    'proxy with throwing ownKeys': new Proxy({}, { ownKeys () { throw new Error('ownKeys') } }),
    'proxy with throwing get': new Proxy({ x: 1 }, { get () { throw new Error('get') } }),
    'proxy with throwing getOwnPropertyDescriptor': new Proxy({ x: 1 }, { getOwnPropertyDescriptor () { throw new Error('gopd') } }),
    'array with throwing element getter': Object.defineProperty([1, 2], 1, { get () { throw new Error('element') } }),
    'revoked proxy': (() => { const p = Proxy.revocable({}, {}); p.revoke(); return p.proxy })(),
    'object with throwing toString': { toString () { throw new Error('toString') }, valueOf () { throw new Error('valueOf') } }
  }
}

for (const [name, value] of Object.entries(hostileValues())) {
  test(`hostile params: ${name} throws cleanly`, () => {
    const e = Engine.fromYaml(POLICY)
    let threw = false
    try {
      const d = e.evaluate({ agent: 'a', tool: 't', params: { v: value } })
      // A plain object read consistently may be accepted; the decision must be real.
      assert.ok(['allow', 'deny'].includes(d.outcome))
    } catch (err) {
      threw = true
      assert.ok(err instanceof Error, 'a real Error')
    }
    if (name !== 'object with throwing toString') assert.ok(threw, `${name} must not be decided`)
    assert.strictEqual(e.evaluate({ agent: 'a', tool: 't' }).outcome, 'allow')
  })
}

test('hostile top-level request: throwing getter on agent', () => {
  const e = Engine.fromYaml(POLICY)
  const req = { tool: 't', get agent () { throw new Error('agent getter') } }
  assert.throws(() => e.evaluate(req))
  assert.strictEqual(e.evaluate({ agent: 'a', tool: 't' }).outcome, 'allow')
})

test('hostile request: a Proxy as the whole request', () => {
  const e = Engine.fromYaml(POLICY)
  const req = new Proxy({ agent: 'a', tool: 't' }, { ownKeys () { throw new AegisError('trap') } })
  assert.throws(() => e.evaluate(req))
  assert.strictEqual(e.evaluate({ agent: 'a', tool: 't' }).outcome, 'allow')
})

test('request errors name the place in policy path syntax, as in every binding', () => {
  const e = Engine.fromYaml(POLICY)
  assert.throws(() => e.evaluate({ agent: 'a', tool: 't', params: { items: [1, 2n] } }),
    (err) => err.field === 'params' && /`params\.items\.1`/.test(err.message))
})
