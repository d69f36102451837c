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

// ---------------------------------------------------------------------------------------
// Issue 16 / spec §9a: values JSON (and so the CLI) cannot carry are request errors,
// never converted lossily; conversion is bounded as it goes. After each refusal there is
// no record (the next one is seq 0) and the engine keeps working.
const { RequestError, secureTool, withAgent } = require('../lib.js')

function refuses (name, params, pattern, extra = {}) {
  test(`refused: ${name}`, () => {
    const e = Engine.fromYaml(POLICY)
    assert.throws(() => e.evaluate({ agent: 'a', tool: 't', params, ...extra }), (err) => {
      assert.ok(err instanceof RequestError, `${name}: ${err}`)
      assert.equal(err.code, 'request_invalid')
      if (pattern) assert.match(err.message, pattern)
      return true
    })
    const d = e.evaluate({ agent: 'a', tool: 't' })
    assert.equal(d.audit.seq, 0, 'the refused request left no record')
    assert.equal(d.outcome, 'allow')
  })
}

const BYTES = /`params\.v` is a byte string .*never bytes as base64 or JSON/
refuses('Buffer', { v: Buffer.from('the secret is 42') }, BYTES)
refuses('Uint8Array', { v: new TextEncoder().encode('the secret is 42') }, BYTES)
refuses('Int16Array', { v: new Int16Array([1, 2]) }, BYTES)
refuses('Float64Array', { v: new Float64Array(1) }, BYTES)
refuses('ArrayBuffer', { v: new ArrayBuffer(4) }, BYTES)
refuses('DataView', { v: new DataView(new ArrayBuffer(4)) }, BYTES)
refuses('empty Buffer', { v: Buffer.alloc(0) }, BYTES)
refuses('a Buffer in a list', { v: ['ok', Buffer.from('x')] }, /`params\.v\.1` is a byte string/)
refuses('a Buffer in context', {}, /`context\.blob` is a byte string/, { context: { blob: Buffer.from('x') } })
refuses('SharedArrayBuffer', { v: new SharedArrayBuffer(4) }, /`params\.v`/)
refuses('bytes given Object.prototype', { v: Object.setPrototypeOf(new Uint8Array([52, 50]), Object.prototype) }, BYTES)

const LONE = /lone surrogate .*never replaced by U\+FFFD/
refuses('lone high surrogate', { v: 'a\uD800b' }, /`params\.v` contains a lone surrogate \(U\+D800 at UTF-16 index 1\)/)
refuses('lone low surrogate', { v: '\uDC00' }, LONE)
refuses('high surrogate at the end', { v: 'x😀\uD83D' }, /U\+D83D at UTF-16 index 3/)
refuses('reversed pair', { v: '\uDE00\uD83D' }, LONE)
refuses('lone surrogate beside a real U+FFFD', { v: '\uFFFD\uD800' }, LONE)
refuses('lone surrogate in a key', { ['k\uD800']: 1 }, /a key in `params` contains a lone surrogate/)
refuses('lone surrogate in a nested key', { o: { ['\uDFFF']: 1 } }, /a key in `params\.o`/)
refuses('lone surrogate in a list', { v: ['ok', '\uD800'] }, /`params\.v\.1` contains a lone surrogate/)
refuses('lone surrogate in agent', {}, /`agent` contains a lone surrogate/, { agent: 'bot\uD800' })
refuses('lone surrogate in chain', {}, /`chain\.0` contains a lone surrogate/, { chain: ['\uDBFF'] })
refuses('lone surrogate in context', {}, /`context\.user`/, { context: { user: 'eve\uDC00' } })

test('a real U+FFFD and surrogate pairs are fine, and lone surrogates no longer collide', () => {
  const e = Engine.fromYaml(POLICY)
  const d = e.evaluate({ agent: 'a', tool: 't', params: { v: 'a\uFFFDb 😀', ['k😀']: '\uFFFD' } })
  assert.equal(d.outcome, 'allow')
  // before: 'x\uD800' and 'x\uDBFF' both became 'x\uFFFD' (one hash, one approval id)
  for (const v of ['x\uD800', 'x\uDBFF', 'x\uFFFD']) {
    if (v === 'x\uFFFD') assert.equal(e.evaluate({ agent: 'a', tool: 't', params: { v } }).outcome, 'allow')
    else assert.throws(() => e.evaluate({ agent: 'a', tool: 't', params: { v } }), RequestError)
  }
  assert.throws(() => e.evaluateJson('{"agent":"a","tool":"t","params":{"v":"x\uD800"}}'), (err) => err instanceof RequestError && LONE.test(err.message))
})

class Point { constructor () { this.x = 1 } }
class List extends Array {}
const NOT_PLAIN = /is not a plain object/
refuses('Map', { v: new Map([['x', 1]]) }, NOT_PLAIN)
refuses('Set', { v: new Set([1]) }, NOT_PLAIN)
refuses('WeakMap', { v: new WeakMap() }, NOT_PLAIN)
refuses('class instance', { v: new Point() }, NOT_PLAIN)
refuses('boxed String', { v: new String('x') }, NOT_PLAIN) // eslint-disable-line no-new-wrappers
refuses('boxed Number', { v: new Number(1) }, NOT_PLAIN) // eslint-disable-line no-new-wrappers
refuses('RegExp', { v: /x/ }, NOT_PLAIN)
refuses('Error', { v: new Error('x') }, /is an Error/)
refuses('Promise', { v: Promise.resolve(1) }, /is a Promise/)
refuses('Date', { v: new Date(0) }, /is a Date; pass an RFC 3339 string/)
refuses('Array subclass', { v: List.from([1]) }, /Array subclass/)
refuses('function', { v () {} }, /is a function/)
refuses('symbol', { v: Symbol('s') }, /is a symbol/)
refuses('BigInt', { v: 10n }, /is a bigint/)
refuses('undefined in a list', { v: [1, undefined] }, /`params\.v\.1` is undefined/)
refuses('hole in a list', { v: [1, , 2] }, /`params\.v\.1` is a hole/) // eslint-disable-line no-sparse-arrays
refuses('a class instance as the whole params', new Point(), NOT_PLAIN)

test('a class instance as the whole request is refused; a null-prototype object is plain', () => {
  const e = Engine.fromYaml(POLICY)
  class Req { constructor () { this.agent = 'a'; this.tool = 't' } }
  assert.throws(() => e.evaluate(new Req()), (err) => err instanceof RequestError && NOT_PLAIN.test(err.message))
  const bare = Object.assign(Object.create(null), { agent: 'a', tool: 't', params: Object.assign(Object.create(null), { x: 1 }) })
  assert.equal(e.evaluate(bare).outcome, 'allow')
})

const MAX = 9007199254740991
const BEYOND = /beyond ±9007199254740991 \(2\^53 − 1\).*send large ids as strings/
refuses('1234567890123456800', { account: 1234567890123456800 }, /`params\.account` is a number beyond/)
refuses('2^53', { n: MAX + 1 }, BEYOND)
refuses('-2^53', { n: -(MAX + 1) }, BEYOND)
refuses('1e300 in a list', { n: [1, 1e300] }, /`params\.n\.1`/)
refuses('a large number in context', {}, /`context\.id`/, { context: { id: 2 ** 60 } })

test('numbers up to 2^53 − 1 are exact and accepted', () => {
  const e = Engine.fromYaml(POLICY)
  for (const n of [MAX, -MAX, 0.5, -0, 1e-300]) assert.equal(e.evaluate({ agent: 'a', tool: 't', params: { n } }).outcome, 'allow')
})

// Bounded while walking: sparse arrays, shared sub-objects, depth, cycles.
const sparse = () => { const a = []; a.length = 2 ** 32 - 1; return a }
refuses('sparse array of length 2**32-1', { v: sparse() }, /`params\.v\.0` is a hole \(the list is sparse: length 4294967295\)/)
refuses('sparse array with one late element', { v: (() => { const a = []; a[4_000_000] = 1; return a })() }, /`params\.v\.0` is a hole/)
refuses('sparse array nested', { v: [[sparse()]] }, /`params\.v\.0\.0\.0` is a hole/)
refuses('sparse chain', {}, /`chain\.0` is a hole/, { chain: sparse() })
refuses('sparse array in context', {}, /`context\.v\.0` is a hole/, { context: { v: sparse() } })
refuses('a dense list beyond the size limit', { v: new Array(2_000_000).fill(0) }, /request is larger than 1048576 bytes/)
refuses('a string beyond the size limit', { v: 'x'.repeat(1 << 20) }, /request is larger than 1048576 bytes/)

function shared (levels, list) {
  let o = {}
  for (let i = 0; i < levels; i++) o = list ? [o, o] : { a: o, b: o }
  return o
}

test('shared sub-objects are charged by their expanded size, in bounded time and memory', () => {
  const e = Engine.fromYaml(POLICY)
  for (const [levels, list] of [[30, false], [30, true], [60, false]]) {
    const t0 = Date.now()
    assert.throws(() => e.evaluate({ agent: 'a', tool: 't', params: { o: shared(levels, list) } }),
      (err) => err instanceof RequestError && /request is larger than 1048576 bytes/.test(err.message))
    assert.ok(Date.now() - t0 < 5000, `${levels} levels took ${Date.now() - t0} ms`)
  }
  // a small shared value is fine: it is the same data twice
  const leaf = { x: 1 }
  assert.equal(e.evaluate({ agent: 'a', tool: 't', params: { a: leaf, b: leaf } }).outcome, 'allow')
  assert.equal(e.evaluate({ agent: 'a', tool: 't' }).audit.seq, 1)
})

test('deep nesting and cycles are request errors', () => {
  const e = Engine.fromYaml(POLICY)
  let deep = {}
  const root = deep
  for (let i = 0; i < 100_000; i++) { deep.x = {}; deep = deep.x }
  const cyclic = {}; cyclic.self = cyclic
  const cyclicList = []; cyclicList.push([cyclicList])
  for (const params of [root, { v: cyclic }, { v: cyclicList }]) {
    assert.throws(() => e.evaluate({ agent: 'a', tool: 't', params }),
      (err) => err instanceof RequestError && err.field === 'params' && /nested deeper than the limit of 64 \(or the value is cyclic\)/.test(err.message))
  }
  const ctx = {}; ctx.me = ctx
  assert.throws(() => e.evaluate({ agent: 'a', tool: 't', context: ctx }), (err) => err instanceof RequestError && err.field === 'context')
})

test('secureTool: the same refusals, and the tool never runs', async () => {
  const e = Engine.fromYaml(POLICY)
  let ran = 0
  const tool = secureTool(e, { tool: 't' }, () => { ran++ })
  const cyclic = {}; cyclic.self = cyclic
  const cases = [
    [{ v: sparse() }, /is a hole/],
    [{ o: shared(30, false) }, /larger than 1048576 bytes/],
    [{ v: cyclic }, /nested deeper/],
    [{ v: Buffer.from('x') }, /byte string/],
    [{ v: new Map() }, NOT_PLAIN],
    [{ v: 'a\uD800' }, LONE],
    [{ v: 2 ** 53 }, BEYOND],
    [{ v: () => 1 }, /`params\.v` is a function/],
    [new Point(), NOT_PLAIN], // the snapshot is the walk: a class instance is not silently made plain
    [{ v: new Date(0) }, /is a Date/],
  ]
  for (const [params, pattern] of cases) {
    await assert.rejects(withAgent({ agent: 'a' }, () => tool(params)), (err) => err instanceof RequestError && pattern.test(err.message))
  }
  assert.equal(ran, 0)
  await withAgent({ agent: 'a' }, () => tool({ ok: true }))
  assert.equal(ran, 1)
})

test('strings of every length around the short-string buffer arrive whole (same record as evaluateJson)', () => {
  const a = Engine.fromYaml(POLICY)
  const b = Engine.fromYaml(POLICY)
  const T = '2026-01-05T10:00:00Z'
  for (const unit of ['x', 'é', '€', '😀']) {
    for (let n = 240; n <= 262; n++) {
      const v = unit.repeat(Math.ceil(n / Buffer.byteLength(unit)))
      const req = { agent: 'a', tool: 't', params: { v, [v]: 1 }, time: T }
      const got = a.evaluate(req).audit
      const want = JSON.parse(b.evaluateJson(JSON.stringify(req))).audit
      assert.equal(got.params_sha256, want.params_sha256, `${unit} × ${n}`)
    }
  }
})

test('the walk never refuses what the core accepts: the size boundary is the core\'s', () => {
  const e = Engine.fromYaml(POLICY)
  // the core measures this request as n + 85 bytes (its estimate of the canonical JSON)
  const n = (1 << 20) - 85
  assert.equal(e.evaluate({ agent: 'a', tool: 't', params: { v: 'x'.repeat(n), u: undefined } }).outcome, 'allow')
  assert.throws(() => e.evaluate({ agent: 'a', tool: 't', params: { v: 'x'.repeat(n + 1) } }),
    (err) => err instanceof RequestError && err.message === 'invalid request: request is larger than 1048576 bytes')
})

// ---------------------------------------------------------------------------------------
// Issue 17 / spec §17: the options object is converted by the same bounded, strict walk
// (errors are config_invalid naming the option); `audit` as a function is read once.
const { ConfigError } = require('../lib.js')

function refusedOption (name, options, field, pattern) {
  test(`option refused: ${name}`, () => {
    assert.throws(() => Engine.fromYaml(POLICY, options), (err) => {
      assert.ok(err instanceof ConfigError, `${name}: ${err}`)
      assert.equal(err.code, 'config_invalid')
      assert.equal(err.field, field)
      if (pattern) assert.match(err.message, pattern)
      return true
    })
  })
}

refusedOption('NaN', { requestMaxBytes: NaN }, 'requestMaxBytes', /`requestMaxBytes` is NaN; numbers must be finite/)
refusedOption('Infinity', { maxLimitCounters: Infinity }, 'maxLimitCounters', /is Infinity/)
refusedOption('BigInt', { requestMaxBytes: 10n }, 'requestMaxBytes', /is a bigint, which has no JSON form/)
refusedOption('a function that is not audit', { signingKey: () => 'k' }, 'signingKey', /is a function/)
refusedOption('a symbol', { fsync: Symbol('always') }, 'fsync', /is a symbol/)
refusedOption('a Date', { rotateBytes: new Date() }, 'rotateBytes', /is a Date/)
refusedOption('a Map', { collector: new Map() }, 'collector', NOT_PLAIN)
refusedOption('a class instance as the options', new Point(), '', NOT_PLAIN)
refusedOption('a lone surrogate in a value', { signingKeyId: 'ops\uD800' }, 'signingKeyId', LONE)
refusedOption('a lone surrogate in a key', { ['fsync\uD800']: 'always' }, '', /a key in the options object contains a lone surrogate/)
refusedOption('a sparse list', { collector: { endpoint: 'http://h', headers: sparse() } }, 'collector', /`collector\.headers\.0` is a hole/)
refusedOption('a cycle', (() => { const c = {}; c.c = c; return { collector: c } })(), 'collector', /nested deeper than the limit of 8/)
const wide = (n, v) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, v]))
refusedOption('shared sub-objects', { collector: { endpoint: 'http://h', headers: wide(1000, wide(1000, 'x'.repeat(100))) } }, '', /the options are larger than 1048576 bytes/)
refusedOption('a huge string', { signingKeyId: 'x'.repeat(2 << 20) }, '', /the options are larger than 1048576 bytes/)
refusedOption('not an object', 'always', '', /^the options are a JSON object, not a string$/)
refusedOption('a list', [1], '', /^the options are a JSON object, not a list$/)
refusedOption('an async audit callback is a function, a number is not', { audit: 5 }, 'audit', /`audit` must be a file path/)

test('options: a throwing getter throws its own error; a getter is read once; a Proxy is read as data', () => {
  const boom = { get approvalKey () { throw new Error('getter') } }
  assert.throws(() => Engine.fromYaml(POLICY, boom), (err) => err.message === 'getter' && !(err instanceof AegisError))
  let reads = 0
  const seen = []
  const once = { get audit () { reads++; return reads === 1 ? (r) => seen.push(r) : '/tmp/not-used.jsonl' } }
  const e = Engine.fromYaml(POLICY, once)
  assert.equal(reads, 1, 'audit is read once, by lib.js')
  e.evaluate({ agent: 'a', tool: 't' })
  assert.equal(seen.length, 1)
  const proxied = new Proxy({ requestMaxBytes: 300 }, {})
  assert.throws(() => Engine.fromYaml(POLICY, proxied).evaluate({ agent: 'a', tool: 't', params: { s: 'x'.repeat(400) } }), RequestError)
  assert.throws(() => Engine.fromYaml(POLICY, new Proxy({}, { ownKeys () { throw new Error('ownKeys') } })), /ownKeys/)
  // undefined options are not given; so is undefined inside them
  assert.equal(Engine.fromYaml(POLICY, { audit: undefined, approvalKey: null, collector: undefined }).evaluate({ agent: 'a', tool: 't' }).outcome, 'allow')
})
