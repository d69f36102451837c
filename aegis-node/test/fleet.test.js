'use strict'
// Fleet state (spec §11) through the Node options: `state` and its settings against a
// real redis-server started on a free loopback port with a password, stopped after.
const test = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const { spawn, execFileSync } = require('node:child_process')
const { Engine, AegisError, ConfigError } = require('..')

const PASSWORD = 'fleet-node-pw'
const POLICY = `aegis: 1
rules:
  - id: pay
    match: {tool: pay}
    outcome: allow
limits:
  - id: budget
    match: {tool: pay}
    window: 1d
    max_calls: 1000
`

function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
  })
}

function canConnect (port) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true) })
    c.once('error', () => resolve(false))
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function startRedis (t) {
  let bin
  try { bin = execFileSync('sh', ['-c', 'command -v redis-server']).toString().trim() } catch {
    assert.fail('redis-server not on PATH (apt-get install redis-server)')
  }
  const port = await freePort()
  const proc = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', PASSWORD,
    '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'], { stdio: 'ignore' })
  t.after(() => { proc.kill('SIGKILL') })
  const deadline = Date.now() + 5000
  while (!(await canConnect(port))) {
    if (Date.now() > deadline) assert.fail('redis-server did not start')
    await sleep(20)
  }
  return `redis://:${PASSWORD}@127.0.0.1:${port}/0`
}

function fleetEngine (url, extra = {}) {
  return Engine.fromYaml(POLICY, {
    state: url, statePrefix: 'node-test:', stateTimeoutMs: 500, stateStaleMs: 2000, stateMaxSkewMs: 300000, ...extra,
  })
}

const pay = (e) => e.evaluate({ agent: 'a', tool: 'pay' })

async function within (ms, what, ok) {
  const start = Date.now()
  while (!ok()) {
    if (Date.now() - start > ms) assert.fail(`${what}: not within ${ms} ms`)
    await sleep(5)
  }
  return Date.now() - start
}

test('fleet state: a kill by one engine reaches another within a second, revive likewise', async (t) => {
  const url = await startRedis(t)
  const a = fleetEngine(url)
  const b = fleetEngine(url)
  t.after(async () => { await a.close(); await b.close() })
  await within(2000, 'an engine with state allows', () => pay(a).allowed)
  await within(2000, 'the second engine allows', () => pay(b).allowed)
  a.kill('tool', 'pay', 'stop')
  assert.deepEqual(pay(a).rules, ['kill:tool:pay'])
  await within(1000, 'the kill reaches the second engine', () => pay(b).rules[0] === 'kill:tool:pay')
  assert.equal(b.revive('tool', 'pay'), true)
  await within(1000, 'the revive reaches the first engine', () => pay(a).allowed)

  // a wrong password: ConfigError at construction, the password never echoed
  const wrong = url.replace(PASSWORD, 'not-the-password')
  assert.throws(() => Engine.fromYaml(POLICY, { state: wrong }), (e) => {
    assert.ok(e instanceof ConfigError, String(e))
    assert.equal(e.code, 'config_invalid')
    assert.equal(e.field, 'state')
    assert.ok(!e.message.includes('not-the-password'), e.message)
    return true
  })
  // a misspelt state option gets the did-you-mean, in the caller's spelling
  assert.throws(() => Engine.fromYaml(POLICY, { state: url, stateTimoutMs: 50 }), (e) => {
    assert.ok(e instanceof ConfigError, String(e))
    assert.equal(e.field, 'stateTimoutMs')
    assert.equal(e.message, 'unknown option `stateTimoutMs` (did you mean `stateTimeoutMs`?)')
    return true
  })
})

test('fleet state: an unreachable store denies calls that need it; kill and revive are state_unavailable', async (t) => {
  const port = await freePort()
  const e = fleetEngine(`redis://:pw@127.0.0.1:${port}/0`, { stateTimeoutMs: 50 })
  t.after(() => e.close())
  assert.deepEqual(pay(e).rules, ['state:unavailable'])
  for (const act of [() => e.kill('tool', 'pay'), () => e.revive('tool', 'pay')]) {
    assert.throws(act, (err) => {
      assert.ok(err instanceof AegisError, String(err))
      assert.equal(err.code, 'state_unavailable')
      return true
    })
  }
})
