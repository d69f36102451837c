'use strict'
// Runs every shared vector (tests/vectors/generated/*.json): evaluateJson byte for byte,
// evaluate field for field against JSON.parse(expect_json), on two fresh engines.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { Engine, PolicyError, RequestError } = require('..')

const DIR = path.join(__dirname, '..', '..', 'tests', 'vectors', 'generated')
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.json')).sort()

function options(o) {
  const out = {}
  if (o.signing_key !== undefined) out.signingKey = o.signing_key
  if (o.signing_key_id !== undefined) out.signingKeyId = o.signing_key_id
  if (o.approval_key !== undefined) out.approvalKey = o.approval_key
  return out
}

test('vectors exist', () => assert.ok(files.length > 0))

for (const file of files) {
  const v = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'))
  if (v.load_errors) {
    test(`${v.name}: load errors`, () => {
      let err
      try {
        Engine.fromYaml(v.policy_yaml, options(v.options ?? {}))
      } catch (e) {
        err = e
      }
      assert.ok(err instanceof PolicyError, `expected PolicyError, got ${err}`)
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
  test(`${v.name}: evaluateJson byte for byte`, () => {
    const e = Engine.fromYaml(v.policy_yaml, options(v.options ?? {}))
    assert.equal(e.policyHash(), v.policy_hash)
    for (const step of v.steps) runJson(e, step)
  })
  test(`${v.name}: evaluate field for field`, () => {
    const e = Engine.fromYaml(v.policy_yaml, options(v.options ?? {}))
    for (const step of v.steps) runNative(e, step)
  })
}

function control(e, step) {
  if (step.op === 'kill') e.kill(step.scope, step.id, step.reason ?? '')
  else if (step.op === 'revive') e.revive(step.scope, step.id)
  else return false
  return true
}

function runJson(e, step) {
  if (control(e, step)) return
  if (step.expect_error) {
    assert.throws(() => e.evaluateJson(step.request_json), RequestError, step.name)
  } else {
    assert.equal(e.evaluateJson(step.request_json), step.expect_json, step.name)
  }
}

// Requests whose fault exists only in JSON text (e.g. a duplicate key) have no native
// object form: JSON.parse keeps the last value. Those steps are checked via evaluateJson only.
function runNative(e, step) {
  if (control(e, step)) return
  if (step.expect_error) {
    let req
    try {
      req = JSON.parse(step.request_json)
    } catch {
      return // not JSON at all: nothing to hand to evaluate()
    }
    if (textOnlyFault(step.request_json)) return
    assert.throws(() => e.evaluate(req), RequestError, step.name)
    return
  }
  const want = JSON.parse(step.expect_json)
  const got = e.evaluate(JSON.parse(step.request_json))
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
