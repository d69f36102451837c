'use strict'
// Runs every shared vector (tests/vectors/generated/*.json), read strictly as the
// "Schema (v2)" section of tests/vectors/README.md says (tests/vectors/schema.json):
// a key this runner does not know, at any level, a key of the wrong type or an unknown
// step `op` fails the run — never skips the file.
//
// * steps (evaluate / kill / revive / marks / clear_marks): evaluateJson byte for byte, and evaluate field for
//   field against JSON.parse(expect_json), each on a fresh engine built through the
//   ordinary options object (keys in camelCase); with `audit_callback`, `audit` is a
//   JS function that must have received the step's record before evaluate returned,
//   and that throws on the steps marked `callback: "fail"` (audit_failed, chain not
//   advanced); `marks` compares engine.marks(session) with `expect` exactly,
//   `clear_marks` calls engine.clearMarks(session) (options max_sessions and marks_ttl
//   are passed as maxSessions and marksTtl);
// * load_errors: every load error with its location;
// * config_errors: the options_camel object is refused with exactly that code, field
//   (field_camel) and message (message_camel);
// * guarded steps: secureTool inside nested withAgent contexts, `mutate` applied from
//   inside the audit callback, the record, the arguments the tool received and the
//   error code compared.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const {
  Engine, secureTool, withAgent, AegisError, PolicyError, RequestError, ConfigError, PolicyDenied, ApprovalRequired,
} = require('..')

// AEGIS_VECTORS_DIR: another folder of generated vectors (to try new ones out).
const DIR = process.env.AEGIS_VECTORS_DIR || path.join(__dirname, '..', '..', 'tests', 'vectors', 'generated')
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.json')).sort()

// ---------------------------------------------------------------------------------------
// Strict reading
// ---------------------------------------------------------------------------------------

function fail(where, message) {
  throw new Error(`${where}: ${message} (tests/vectors/README.md, Schema (v2))`)
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)

/** `obj` is an object with every `required` key and no key beyond `required`/`optional`. */
function keys(obj, where, required, optional = []) {
  if (!isObject(obj)) fail(where, `expected an object, found ${JSON.stringify(obj)}`)
  for (const k of required) if (!Object.hasOwn(obj, k)) fail(where, `missing key "${k}"`)
  for (const k of Object.keys(obj)) {
    if (!required.includes(k) && !optional.includes(k)) fail(where, `unknown key "${k}"`)
  }
  return obj
}

function typed(v, kind, where) {
  const ok = {
    string: typeof v === 'string',
    integer: Number.isSafeInteger(v),
    boolean: typeof v === 'boolean',
    object: isObject(v),
    array: Array.isArray(v),
    strings: Array.isArray(v) && v.every((x) => typeof x === 'string'),
  }[kind]
  if (!ok) fail(where, `expected ${kind}, found ${JSON.stringify(v)}`)
  return v
}

function oneOf(v, allowed, where) {
  if (!allowed.includes(v)) fail(where, `expected one of ${allowed.join(', ')}, found ${JSON.stringify(v)}`)
  return v
}

const OPTION_TYPES = {
  signing_key: 'string', signing_key_id: 'string', approval_key: 'string',
  request_max_bytes: 'integer', request_max_depth: 'integer', max_limit_counters: 'integer',
  max_sessions: 'integer', marks_ttl: 'string',
}
const CONTEXT_TYPES = { agent: 'string', chain: 'strings', session: 'string', environment: 'string', context: 'object' }
const RECORD_TYPES = {
  agent: 'string', chain: 'strings', session: 'string', environment: 'string', tool: 'string', action: 'string',
  outcome: 'string', rules: 'strings', params_sha256: 'string',
}
const SCOPES = ['agent', 'tool', 'session', 'all']
const LABEL = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/

function readStep(s, where, vector) {
  if (!isObject(s)) fail(where, 'a step is an object')
  const op = oneOf(s.op, ['evaluate', 'kill', 'revive', 'marks', 'clear_marks', 'guarded'], `${where}.op`)
  if (op === 'marks') {
    keys(s, where, ['op', 'session', 'expect'])
    if (typed(s.session, 'string', `${where}.session`) === '') fail(`${where}.session`, 'empty')
    const expect = typed(s.expect, 'strings', `${where}.expect`)
    expect.forEach((label, i) => {
      if (!LABEL.test(label)) fail(`${where}.expect[${i}]`, `not a mark label: ${JSON.stringify(label)}`)
    })
    const sorted = [...new Set(expect)].sort()
    if (sorted.length !== expect.length || sorted.some((x, i) => x !== expect[i])) {
      fail(`${where}.expect`, 'must be sorted and unique (marks() gives them so)')
    }
  } else if (op === 'clear_marks') {
    keys(s, where, ['op', 'session'])
    if (typed(s.session, 'string', `${where}.session`) === '') fail(`${where}.session`, 'empty')
  } else if (op === 'kill') {
    keys(s, where, ['op', 'scope', 'id', 'reason'])
    oneOf(s.scope, SCOPES, `${where}.scope`)
    typed(s.id, 'string', `${where}.id`)
    typed(s.reason, 'string', `${where}.reason`)
  } else if (op === 'revive') {
    keys(s, where, ['op', 'scope', 'id'])
    oneOf(s.scope, SCOPES, `${where}.scope`)
    typed(s.id, 'string', `${where}.id`)
  } else if (op === 'evaluate') {
    keys(s, where, ['op', 'name', 'request_json'], ['expect_json', 'expect_error', 'callback'])
    typed(s.name, 'string', `${where}.name`)
    typed(s.request_json, 'string', `${where}.request_json`)
    if (Object.hasOwn(s, 'expect_json') === Object.hasOwn(s, 'expect_error')) {
      fail(where, 'give exactly one of expect_json and expect_error')
    }
    if (Object.hasOwn(s, 'expect_json')) typed(s.expect_json, 'string', `${where}.expect_json`)
    if (Object.hasOwn(s, 'expect_error')) oneOf(s.expect_error, ['request', 'audit_failed'], `${where}.expect_error`)
    if (Object.hasOwn(s, 'callback')) {
      oneOf(s.callback, ['fail'], `${where}.callback`)
      if (!vector.audit_callback) fail(where, 'callback: fail needs audit_callback: true')
    }
    if ((s.expect_error === 'audit_failed') !== (s.callback === 'fail')) {
      fail(where, 'expect_error: audit_failed goes with callback: fail')
    }
  } else {
    keys(s, where, ['op', 'name', 'contexts', 'tool', 'args'],
      ['action', 'mutate', 'expect_record', 'expect_tool_args', 'expect_error'])
    typed(s.name, 'string', `${where}.name`)
    typed(s.contexts, 'array', `${where}.contexts`).forEach((c, i) => {
      keys(c, `${where}.contexts[${i}]`, [], Object.keys(CONTEXT_TYPES))
      for (const [k, v] of Object.entries(c)) typed(v, CONTEXT_TYPES[k], `${where}.contexts[${i}].${k}`)
    })
    typed(s.tool, 'string', `${where}.tool`)
    if (Object.hasOwn(s, 'action')) typed(s.action, 'string', `${where}.action`)
    typed(s.args, 'object', `${where}.args`)
    if (Object.hasOwn(s, 'mutate')) {
      for (const [k, v] of Object.entries(typed(s.mutate, 'object', `${where}.mutate`))) {
        const old = s.args[k]
        if (!(Array.isArray(v) && Array.isArray(old)) && !(isObject(v) && isObject(old))) {
          fail(`${where}.mutate.${k}`, 'replaces the contents of a list or object argument')
        }
      }
    }
    if (Object.hasOwn(s, 'expect_record')) {
      const r = keys(s.expect_record, `${where}.expect_record`, ['agent', 'tool', 'outcome', 'rules', 'params_sha256'],
        ['chain', 'session', 'environment', 'action'])
      for (const [k, v] of Object.entries(r)) typed(v, RECORD_TYPES[k], `${where}.expect_record.${k}`)
      oneOf(r.outcome, ['allow', 'deny', 'require_approval'], `${where}.expect_record.outcome`)
    }
    if (Object.hasOwn(s, 'expect_tool_args')) typed(s.expect_tool_args, 'object', `${where}.expect_tool_args`)
    if (Object.hasOwn(s, 'expect_error')) {
      oneOf(s.expect_error, ['denied', 'approval_required', 'invalid_argument'], `${where}.expect_error`)
    }
    if (Object.hasOwn(s, 'expect_tool_args') === Object.hasOwn(s, 'expect_error')) {
      fail(where, 'the tool runs (expect_tool_args) exactly when the call raises nothing (expect_error)')
    }
    if (Object.hasOwn(s, 'expect_record') === (s.expect_error === 'invalid_argument')) {
      fail(where, 'a call records exactly when it is decided (no record for invalid_argument)')
    }
  }
  return s
}

function readVector(file, v) {
  const where = file
  keys(v, where, ['name', 'description', 'options', 'policy_yaml', 'steps'],
    ['policy_hash', 'audit_callback', 'load_errors', 'config_errors'])
  typed(v.name, 'string', `${where}.name`)
  typed(v.description, 'string', `${where}.description`)
  typed(v.policy_yaml, 'string', `${where}.policy_yaml`)
  keys(v.options, `${where}.options`, [], Object.keys(OPTION_TYPES))
  for (const [k, x] of Object.entries(v.options)) typed(x, OPTION_TYPES[k], `${where}.options.${k}`)
  if (Object.hasOwn(v, 'policy_hash') && !/^[0-9a-f]{64}$/.test(typed(v.policy_hash, 'string', `${where}.policy_hash`))) {
    fail(`${where}.policy_hash`, 'expected 64 lower-case hex digits')
  }
  if (Object.hasOwn(v, 'audit_callback') && v.audit_callback !== true) fail(`${where}.audit_callback`, 'is true or absent')
  typed(v.steps, 'array', `${where}.steps`).forEach((s, i) => readStep(s, `${where}.steps[${i}]`, v))
  if (Object.hasOwn(v, 'load_errors')) {
    typed(v.load_errors, 'array', `${where}.load_errors`).forEach((e, i) => {
      const w = `${where}.load_errors[${i}]`
      keys(e, w, ['line', 'column', 'message'])
      typed(e.line, 'integer', `${w}.line`)
      typed(e.column, 'integer', `${w}.column`)
      typed(e.message, 'string', `${w}.message`)
    })
  }
  if (Object.hasOwn(v, 'config_errors')) {
    typed(v.config_errors, 'array', `${where}.config_errors`).forEach((c, i) => {
      const w = `${where}.config_errors[${i}]`
      keys(c, w, ['options', 'options_camel', 'code', 'field', 'message', 'field_camel', 'message_camel'])
      typed(c.options, 'object', `${w}.options`)
      typed(c.options_camel, 'object', `${w}.options_camel`)
      oneOf(c.code, ['config_invalid'], `${w}.code`)
      for (const k of ['field', 'message', 'field_camel', 'message_camel']) typed(c[k], 'string', `${w}.${k}`)
    })
  }
  if ((Object.hasOwn(v, 'load_errors') || Object.hasOwn(v, 'config_errors')) && v.steps.length > 0) {
    fail(where, 'a load_errors or config_errors vector has "steps": []')
  }
  const guarded = v.steps.filter((s) => s.op === 'guarded').length
  if (guarded > 0 && (guarded !== v.steps.length || !v.audit_callback)) {
    fail(where, 'a vector with guarded steps has only guarded steps and audit_callback: true')
  }
  return v
}

// ---------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------

/** §17: the JS spelling of a snake_case option key. */
const camel = (k) => k.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())

/** The options object a JS caller writes (camelCase keys, also inside `collector`, never header names). */
function camelOptions(o) {
  const out = {}
  for (const [k, v] of Object.entries(o)) {
    out[camel(k)] = (k === 'collector' || k === 'notify') && isObject(v)
      ? Object.fromEntries(Object.entries(v).map(([ik, iv]) => [ik === 'headers' ? ik : camel(ik), iv]))
      : v
  }
  return out
}

/**
 * An engine for a vector, with the audit callback when it asks for one. `cb.records`
 * are the records delivered; `cb.failNext` makes the next delivery throw; `cb.inCall`
 * is true while the runner is inside evaluate (a record must arrive then).
 */
function engineFor(v) {
  const cb = { records: [], failNext: false, inCall: false, calls: 0, onRecord: null }
  const options = camelOptions(v.options)
  if (v.audit_callback) {
    options.audit = (record) => {
      cb.calls++
      assert.ok(cb.inCall, 'the audit callback runs before evaluate returns')
      if (cb.onRecord) cb.onRecord(record)
      if (cb.failNext) throw new Error('the vector fails this callback')
      cb.records.push(record)
    }
  }
  return { e: Engine.fromYaml(v.policy_yaml, options), cb }
}

/** Runs a step that decides nothing (no record): kill, revive, marks, clear_marks. */
function control(e, step, cb) {
  const calls = cb.calls
  try {
    return controlStep(e, step)
  } finally {
    assert.equal(cb.calls, calls, `${step.op}: decides nothing, records nothing`)
  }
}

function controlStep(e, step) {
  if (step.op === 'kill') e.kill(step.scope, step.id, step.reason)
  else if (step.op === 'revive') e.revive(step.scope, step.id)
  else if (step.op === 'marks') assert.deepEqual(e.marks(step.session), step.expect, `marks(${JSON.stringify(step.session)})`)
  else if (step.op === 'clear_marks') assert.equal(typeof e.clearMarks(step.session), 'boolean')
  else return false
  return true
}

/** Runs one evaluate step through `call`, checking what the callback received. */
function decide(cb, step, call) {
  cb.calls = 0
  cb.failNext = step.callback === 'fail'
  const before = cb.records.length
  cb.inCall = true
  try {
    return call()
  } finally {
    cb.inCall = false
    cb.failNext = false
    const delivered = cb.records.slice(before)
    if (step.expect_error === 'request') {
      assert.equal(cb.calls, 0, `${step.name}: a refused request is not recorded`)
    } else if (step.expect_error === 'audit_failed') {
      assert.equal(cb.calls, 1, `${step.name}: the callback was handed the record`)
      assert.deepEqual(delivered, [], `${step.name}: the record was not delivered`)
    } else if (cb.active) {
      assert.equal(delivered.length, 1, `${step.name}: exactly one record reached the callback`)
      assert.deepEqual(delivered[0], JSON.parse(step.expect_json).audit, `${step.name}: the callback's record`)
    }
  }
}

function expectCode(want, name) {
  return (err) => {
    if (want === 'request') {
      assert.ok(err instanceof RequestError, `${name}: ${err}`)
      assert.equal(err.code, 'request_invalid', name)
    } else {
      assert.ok(err instanceof AegisError, `${name}: ${err}`)
      assert.equal(err.code, want, `${name}: ${err.message}`)
    }
    return true
  }
}

function runJson(e, cb, step) {
  if (control(e, step, cb)) return
  if (step.expect_error) {
    decide(cb, step, () => assert.throws(() => e.evaluateJson(step.request_json), expectCode(step.expect_error, step.name)))
  } else {
    assert.equal(decide(cb, step, () => e.evaluateJson(step.request_json)), step.expect_json, step.name)
  }
}

// Requests whose fault exists only in JSON text (e.g. a duplicate key) have no native
// object form: JSON.parse keeps the last value. Those steps are checked via evaluateJson only.
function runNative(e, cb, step) {
  if (control(e, step, cb)) return
  if (step.expect_error === 'request') {
    let req
    try {
      req = JSON.parse(step.request_json)
    } catch {
      return // not JSON at all: nothing to hand to evaluate()
    }
    if (textOnlyFault(step.request_json)) return
    decide(cb, step, () => assert.throws(() => e.evaluate(req), expectCode('request', step.name)))
    return
  }
  if (step.expect_error) {
    const req = JSON.parse(step.request_json)
    decide(cb, step, () => assert.throws(() => e.evaluate(req), expectCode(step.expect_error, step.name)))
    return
  }
  const want = JSON.parse(step.expect_json)
  const got = decide(cb, step, () => e.evaluate(JSON.parse(step.request_json)))
  assert.equal(got.outcome, want.outcome, step.name)
  assert.equal(got.allowed, want.outcome === 'allow', step.name)
  assert.deepEqual(got.rules, want.rules, step.name)
  assert.equal(got.reason, want.reason, step.name)
  assert.deepEqual(got.approval, want.approval ?? null, step.name)
  assert.deepEqual(got.errors, want.errors, step.name)
  assert.deepEqual(got.audit, want.audit, step.name)
}

function textOnlyFault(text) {
  // duplicate keys at any level
  const keys = []
  const re = /"((?:[^"\\]|\\.)*)"\s*:/g
  let m
  const seen = new Set()
  while ((m = re.exec(text))) keys.push(m[1])
  for (const k of keys) {
    if (seen.has(k)) return true
    seen.add(k)
  }
  return false
}

/** Replaces the contents of `target` (a list's elements, an object's items) in place. */
function replaceContents(target, value) {
  if (Array.isArray(target)) {
    target.splice(0, target.length, ...structuredClone(value))
  } else {
    for (const k of Object.keys(target)) delete target[k]
    Object.assign(target, structuredClone(value))
  }
}

const ERROR_CLASS = { denied: PolicyDenied, approval_required: ApprovalRequired, invalid_argument: AegisError }
const RECORD_OPTIONAL = ['chain', 'session', 'environment', 'action']

async function runGuarded(e, cb, step) {
  const args = structuredClone(step.args) // the caller's objects
  let received
  let runs = 0
  const tool = secureTool(e, step.action === undefined ? { tool: step.tool } : { tool: step.tool, action: step.action },
    (p) => { runs++; received = p; return 'ran' })
  cb.records.length = 0
  cb.onRecord = step.mutate
    ? () => { for (const [k, v] of Object.entries(step.mutate)) replaceContents(args[k], v) }
    : null
  const call = (i) => i === step.contexts.length ? tool(args) : withAgent(step.contexts[i], () => call(i + 1))
  let result
  let error
  cb.inCall = true
  try {
    result = await call(0)
  } catch (err) {
    error = err
  } finally {
    cb.inCall = false
    cb.onRecord = null
  }
  if (step.expect_error) {
    assert.ok(error instanceof ERROR_CLASS[step.expect_error], `${step.name}: ${error}`)
    assert.equal(error.code, step.expect_error, step.name)
    assert.equal(runs, 0, `${step.name}: the tool must not run`)
  } else {
    assert.equal(error, undefined, `${step.name}: ${error}`)
    assert.equal(result, 'ran', step.name)
    assert.equal(runs, 1, step.name)
    assert.deepEqual(received, step.expect_tool_args, `${step.name}: the tool receives the snapshot that was decided`)
    assert.notEqual(received, args, `${step.name}: not the caller's object`)
  }
  if (!step.expect_record) {
    assert.equal(cb.records.length, 0, `${step.name}: nothing decided, nothing recorded`)
    return
  }
  assert.equal(cb.records.length, 1, `${step.name}: one record`)
  const rec = cb.records[0]
  for (const [k, want] of Object.entries(step.expect_record)) assert.deepEqual(rec[k], want, `${step.name}: record.${k}`)
  for (const k of RECORD_OPTIONAL) {
    if (!Object.hasOwn(step.expect_record, k)) assert.equal(rec[k], undefined, `${step.name}: record.${k} is absent`)
  }
}

// ---------------------------------------------------------------------------------------

test('vectors exist', () => assert.ok(files.length > 0))

test('the reader is strict about marks steps and options', () => {
  const base = () => ({ name: 'x', description: 'd', options: {}, policy_yaml: 'aegis: 1\n', policy_hash: '0'.repeat(64), steps: [] })
  const ok = base()
  ok.options = { max_sessions: 2, marks_ttl: '1h' }
  ok.steps = [{ op: 'marks', session: 's', expect: ['a', 'b'] }, { op: 'clear_marks', session: 's' }]
  readVector('ok.json', ok)
  const bad = [
    (v) => v.steps.push({ op: 'marks', session: 's' }),
    (v) => v.steps.push({ op: 'marks', session: 's', expect: ['b', 'a'] }),
    (v) => v.steps.push({ op: 'marks', session: 's', expect: ['a', 'a'] }),
    (v) => v.steps.push({ op: 'marks', session: '', expect: [] }),
    (v) => v.steps.push({ op: 'marks', session: 's', expect: ['a b'] }),
    (v) => v.steps.push({ op: 'marks', session: 's', expect: [], name: 'x' }),
    (v) => v.steps.push({ op: 'clear_marks', session: 's', expect: [] }),
    (v) => v.steps.push({ op: 'clear_marks', session: 5 }),
    (v) => v.steps.push({ op: 'clear-marks', session: 's' }),
    (v) => { v.options.marks_ttl = 24 },
    (v) => { v.options.max_sessions = '10' },
    (v) => { v.options.maxSessions = 10 },
  ]
  bad.forEach((change, i) => {
    const v = base()
    change(v)
    assert.throws(() => readVector(`bad-${i}.json`, v), /Schema \(v2\)/, `bad-${i}`)
  })
})

for (const file of files) {
  const raw = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'))
  let v
  try {
    v = readVector(file, raw)
  } catch (err) {
    test(`${file}: follows the vector schema`, () => { throw err })
    continue
  }
  if (v.load_errors) {
    test(`${v.name}: load errors`, () => {
      let err
      try {
        Engine.fromYaml(v.policy_yaml, camelOptions(v.options))
      } catch (e) {
        err = e
      }
      assert.ok(err instanceof PolicyError, `expected PolicyError, got ${err}`)
      assert.equal(err.code, 'policy_invalid')
      assert.equal(err.errors.length, v.load_errors.length, JSON.stringify(err.errors))
      v.load_errors.forEach((want, i) => {
        const got = err.errors[i]
        assert.equal(got.file, '<yaml>')
        assert.equal(got.line, want.line, `error ${i}: ${JSON.stringify(got)}`)
        assert.equal(got.column, want.column, `error ${i}: ${JSON.stringify(got)}`)
        const text = got.help ? `${got.message} — ${got.help}` : got.message
        assert.ok(text.includes(want.message), `error ${i}: ${JSON.stringify(got)} lacks ${want.message}`)
      })
    })
    continue
  }
  if (v.config_errors) {
    test(`${v.name}: configuration errors`, () => {
      for (const c of v.config_errors) {
        assert.throws(() => Engine.fromYaml(v.policy_yaml, c.options_camel), (err) => {
          assert.ok(err instanceof ConfigError, `${JSON.stringify(c.options_camel)}: ${err}`)
          assert.equal(err.code, c.code)
          assert.equal(err.field, c.field_camel, JSON.stringify(c.options_camel))
          assert.equal(err.message, c.message_camel)
          return true
        }, JSON.stringify(c.options_camel))
      }
    })
    continue
  }
  if (v.steps.some((s) => s.op === 'guarded')) {
    test(`${v.name}: guarded tools`, async () => {
      const { e, cb } = engineFor(v)
      if (v.policy_hash) assert.equal(e.policyHash(), v.policy_hash)
      for (const step of v.steps) await runGuarded(e, cb, step)
    })
    continue
  }
  test(`${v.name}: evaluateJson byte for byte`, () => {
    const { e, cb } = engineFor(v)
    cb.active = Boolean(v.audit_callback)
    assert.equal(e.policyHash(), v.policy_hash)
    for (const step of v.steps) runJson(e, cb, step)
  })
  test(`${v.name}: evaluate field for field`, () => {
    const { e, cb } = engineFor(v)
    cb.active = Boolean(v.audit_callback)
    for (const step of v.steps) runNative(e, cb, step)
  })
}
