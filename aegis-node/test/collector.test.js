'use strict'
// The `collector` option: option errors, the Collector lifecycle against an endpoint
// nobody listens on, and end to end against the REAL collector rotel (env AEGIS_ROTEL,
// exported by the root Makefile; `make node-test` installs it via `ship-rotel`).
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { Engine, Collector, AegisError, ConfigError } = require('..')

const ROOT = path.resolve(__dirname, '..', '..')
const FINANCE = path.join(ROOT, 'policies', 'finance')
const NEEDS_AUDIT_FILE = '`collector` ships the audit file; give `audit` too (a file path)'
const AUDIT_IS_A_CALLBACK = '`collector` ships the audit file; `audit` is a callback here; give `audit` as a file path'
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-node-collector-'))
const REQ = { agent: 'finance-agent', tool: 'payments', action: 'create', params: { amount: 10, currency: 'USD' } }

/** A loopback port that was free a moment ago. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

function canConnect(port) {
  return new Promise((resolve) => {
    const c = net.connect({ port, host: '127.0.0.1' })
    c.once('connect', () => { c.destroy(); resolve(true) })
    c.once('error', () => resolve(false))
  })
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function throwsConfig(options, check) {
  assert.throws(() => Engine.fromPath(FINANCE, options), (err) => {
    assert.ok(err instanceof ConfigError, `${err}`)
    assert.equal(err.code, 'config_invalid')
    assert.equal(err.field, 'collector')
    check(err.message)
    return true
  })
}

test('collector option errors are ConfigErrors (field `collector`) with the aegis-ship messages in camelCase', () => {
  const dir = tmp()
  const audit = path.join(dir, 'audit.jsonl')
  throwsConfig({ audit, collector: { endpiont: 'http://127.0.0.1:4318' } }, (m) =>
    assert.equal(m, 'invalid collector configuration: unknown option `endpiont` (did you mean `endpoint`?)'))
  // the JS spelling is suggested for a snake_case key
  throwsConfig({ audit, collector: { endpoint: 'http://h', service_name: 's' } }, (m) =>
    assert.equal(m, 'invalid collector configuration: unknown option `service_name` (did you mean `serviceName`?)'))
  throwsConfig({ audit, collector: { endpoint: 'http://h', bogus: 1 } }, (m) =>
    assert.equal(m, 'invalid collector configuration: unknown option `bogus`'))
  // a callback sink, or no sink: the shipper has no file to read
  throwsConfig({ audit: () => {}, collector: { endpoint: 'http://127.0.0.1:4318' } }, (m) => assert.equal(m, AUDIT_IS_A_CALLBACK))
  throwsConfig({ collector: { endpoint: 'http://127.0.0.1:4318' } }, (m) => assert.equal(m, NEEDS_AUDIT_FILE))
  assert.throws(() => Engine.fromYaml('aegis: 1\nrules: []\n', { collector: { endpoint: 'http://h' } }), (e) => e.message === NEEDS_AUDIT_FILE)
  throwsConfig({ audit, collector: { endpoint: 'ftp://x' } }, (m) =>
    assert.equal(m, 'invalid collector configuration: `endpoint` must be an http:// or https:// URL with a host, not `ftp://x`'))
  throwsConfig({ audit, collector: {} }, (m) => assert.match(m, /^invalid collector configuration: `endpoint` is required/))
  // values aegis-ship checks, named as the JS caller wrote them
  throwsConfig({ audit, collector: { endpoint: 'http://h', batchAgeMs: 0 } }, (m) =>
    assert.equal(m, 'invalid collector configuration: `batchAgeMs` must be an integer from 1 to 3600000 (milliseconds), not `0`'))
  throwsConfig({ audit, collector: { endpoint: 'http://h', requestTimeoutMs: 0 } }, (m) => assert.match(m, /`requestTimeoutMs` must be an integer from 1/))
  throwsConfig({ audit, collector: { endpoint: 'http://h', batch: 1.5 } }, (m) => assert.match(m, /`batch` must be an integer from 1 to 10000/))
  throwsConfig({ audit, collector: { endpoint: 'http://h', gzip: 'yes' } }, (m) => assert.match(m, /`gzip` must be true or false/))
  throwsConfig({ audit, collector: { endpoint: 'http://h', headers: { 'X-A': 'a\r\nEvil: 1' } } }, (m) => assert.match(m, /control character/))
  // what JSON.stringify would silently lose is an error too
  throwsConfig({ audit, collector: { endpoint: 'http://h', batch: NaN } }, (m) =>
    assert.equal(m, '`collector.batch` is NaN; numbers must be finite'))
  throwsConfig({ audit, collector: { endpoint: 'http://h', headers: { Authorization: undefined } } }, (m) =>
    assert.match(m, /header `Authorization` must be a string, not `null`/))
  throwsConfig({ audit, collector: { endpoint: 'http://h', serviceName: () => 's' } }, (m) => assert.match(m, /`collector\.serviceName` is a function/))
  throwsConfig({ audit, collector: { endpoint: 'http://h', batch: 10n } }, (m) => assert.match(m, /`collector\.batch` is a bigint/))
  const cyclic = { a: 'x' }; cyclic.self = cyclic
  throwsConfig({ audit, collector: { endpoint: 'http://h', headers: cyclic } }, (m) => assert.match(m, /nested deeper than the limit of 8 \(or the value is cyclic\)/))
  for (const bad of ['http://127.0.0.1:4318', ['http://h'], 5, true]) {
    throwsConfig({ audit, collector: bad }, (m) => assert.match(m, /`collector` must be an object/))
  }
  // validated before the audit file is opened: nothing was created
  assert.deepEqual(fs.readdirSync(dir), [])
  assert.throws(() => new Collector(), AegisError)
})

test('no collector: engine.collector is null and close() resolves, then closes the engine', async () => {
  for (const opts of [undefined, { collector: null }, { collector: undefined, audit: path.join(tmp(), 'a.jsonl') }]) {
    const e = Engine.fromPath(FINANCE, opts)
    assert.equal(e.collector, null)
    assert.equal(e.evaluate(REQ).audit.seq, 0)
    assert.equal(e.closed, false)
    assert.equal(await e.close(), undefined)
    assert.equal(e.closed, true)
    assert.throws(() => e.evaluate(REQ), (err) => err instanceof AegisError && err.code === 'invalid_argument' && /closed/.test(err.message))
    assert.equal(await e.close(), undefined) // idempotent
  }
})

test('collector lifecycle: unreachable endpoint, flush/close reject without blocking, close is idempotent', async () => {
  const dir = tmp()
  const audit = path.join(dir, 'audit.jsonl')
  const port = await freePort() // nobody listens there
  const e = Engine.fromPath(FINANCE, {
    audit,
    collector: { endpoint: `http://127.0.0.1:${port}`, batchAgeMs: 10, maxBackoffMs: 50, requestTimeoutMs: 500, gzip: false },
  })
  const c = e.collector
  assert.ok(c instanceof Collector)
  assert.equal(e.collector, c)
  assert.equal(c.closed, false)
  for (let i = 0; i < 3; i++) e.evaluate(REQ)
  const m0 = c.metrics()
  assert.deepEqual(Object.keys(m0), ['shipped', 'pending', 'retries', 'batches', 'rejectedBatches', 'rejectedRecords',
    'partiallyRejected', 'rejectedFiles', 'lastError', 'cursor'])
  assert.equal(m0.shipped, 0)
  assert.deepEqual(m0.rejectedFiles, [])
  assert.equal(m0.cursor, null)
  // bad timeouts reject (they never throw synchronously)
  for (const bad of [-1, NaN, Infinity, 3_600_001, '5']) {
    const p = c.flush(bad)
    assert.ok(p instanceof Promise)
    await assert.rejects(p, (err) => err instanceof AegisError && err.code === 'invalid_argument' && /timeoutMs must be/.test(err.message))
  }
  await assert.rejects(c.close(-5), AegisError)
  assert.equal(c.closed, false)

  // flush waits off the JS thread: timers keep firing while it waits
  let ticks = 0
  const iv = setInterval(() => ticks++, 10)
  const t0 = Date.now()
  await assert.rejects(c.flush(400), (err) => err instanceof AegisError && err.code === 'collector_failed' && err.field === '' &&
    /^flush timed out before seq 2 was delivered/.test(err.message))
  clearInterval(iv)
  assert.ok(Date.now() - t0 >= 350, `flush returned after ${Date.now() - t0} ms`)
  assert.ok(ticks >= 10, `the event loop ran only ${ticks} timers during flush`)
  const m1 = c.metrics()
  assert.equal(m1.pending, 3)
  assert.ok(m1.retries > 0)
  assert.match(m1.lastError, /127\.0\.0\.1/)

  // close: the final attempt cannot deliver → AegisError, after stopping
  await assert.rejects(c.close(100), (err) => err instanceof AegisError && err.code === 'collector_failed')
  assert.equal(c.closed, true)
  // idempotent: the same outcome again, at once (not another 2 s)
  const t1 = Date.now()
  await assert.rejects(c.close(2000), AegisError)
  assert.ok(Date.now() - t1 < 1000)
  // flush after close: shipping has stopped, so it rejects at once (records are pending)
  const t2 = Date.now()
  await assert.rejects(c.flush(2000), AegisError)
  assert.ok(Date.now() - t2 < 1000)
  // metrics after the collector's close still work; evaluate keeps writing to the file
  assert.equal(c.metrics().pending, 3)
  assert.equal(e.evaluate(REQ).audit.seq, 3)
  assert.equal(fs.readFileSync(audit, 'utf8').trim().split('\n').length, 4)
  // engine.close(): rejects as the collector's close did, and closes the engine all the
  // same, releasing the audit file: a new engine resumes its chain
  const t3 = Date.now()
  await assert.rejects(e.close(), AegisError)
  assert.ok(Date.now() - t3 < 1000)
  assert.equal(e.closed, true)
  assert.throws(() => e.evaluate(REQ), (err) => err.code === 'invalid_argument')
  const next = Engine.fromPath(FINANCE, { audit })
  assert.equal(next.evaluate(REQ).audit.seq, 4)
  await next.close()
})

test('collector with nothing to ship: flush resolves, close resolves to the metrics', async () => {
  const port = await freePort()
  const e = Engine.fromYaml('aegis: 1\nrules: []\n', {
    audit: path.join(tmp(), 'audit.jsonl'),
    collector: { endpoint: `http://127.0.0.1:${port}`, closeTimeoutMs: 0 },
  })
  assert.equal(await e.collector.flush(), undefined)
  const m = await e.collector.close()
  assert.equal(m.shipped, 0)
  assert.equal(m.pending, 0)
  assert.deepEqual(await e.collector.close(), m)
  assert.equal(await e.close(), undefined)
  assert.equal(await e.collector.flush(10), undefined) // nothing to deliver, even after close
})

/** Stops rotel: SIGTERM, then SIGKILL if it has not exited within 10 s. */
async function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

test('end to end: records shipped to a real collector (rotel)', async (t) => {
  const rotel = process.env.AEGIS_ROTEL
  if (!rotel) {
    t.skip('AEGIS_ROTEL is not set (run `make node-test`: it installs rotel with ship-rotel and exports AEGIS_ROTEL)')
    return
  }
  assert.ok(fs.existsSync(rotel), `AEGIS_ROTEL=${rotel} does not exist (run \`make ship-rotel\`)`)
  const dir = tmp()
  const [p1, p2] = [await freePort(), await freePort()]
  const outFile = path.join(dir, 'rotel.out')
  const out = fs.openSync(outFile, 'w')
  const child = spawn(rotel, [
    'start',
    '--otlp-http-endpoint', `127.0.0.1:${p1}`,
    '--otlp-grpc-endpoint', `127.0.0.1:${p2}`,
    '--exporter', 'blackhole',
    '--debug-log', 'logs', '--debug-log-verbosity', 'detailed',
    '--log-file', path.join(dir, 'rotel.log'),
    '--pid-file', path.join(dir, 'rotel.pid'),
  ], { cwd: dir, stdio: ['ignore', out, out] })
  fs.closeSync(out)
  const killOnExit = () => child.kill('SIGKILL')
  process.once('exit', killOnExit) // last resort if this test dies midway
  let engine
  try {
    const spawned = await new Promise((resolve) => {
      child.once('spawn', () => resolve(null))
      child.once('error', resolve)
    })
    assert.equal(spawned, null, `could not start ${rotel}: ${spawned}`)
    const deadline = Date.now() + 20_000
    while (!(await canConnect(p1))) {
      assert.equal(child.exitCode, null, `rotel exited early (${child.exitCode}): ${fs.readFileSync(outFile, 'utf8')}`)
      assert.ok(Date.now() < deadline, `rotel did not listen on ${p1} within 20 s`)
      await sleep(100)
    }

    const audit = path.join(dir, 'audit.jsonl')
    engine = Engine.fromPath(FINANCE, {
      audit,
      collector: { endpoint: `http://127.0.0.1:${p1}`, batchAgeMs: 50, serviceName: 'node-test' },
    })
    const requests = fs.readFileSync(path.join(FINANCE, 'requests.jsonl'), 'utf8').split('\n').filter((l) => l.trim())
    for (let round = 0; round < 2; round++) {
      for (const line of requests) engine.evaluate(JSON.parse(line))
    }
    await engine.collector.flush(10_000)
    const lines = fs.readFileSync(audit, 'utf8').split('\n').filter((l) => l)
    assert.ok(lines.length >= 20, `only ${lines.length} records`)
    const m = engine.collector.metrics()
    assert.equal(m.shipped, lines.length)
    assert.equal(m.pending, 0)
    assert.equal(m.rejectedBatches, 0)
    assert.equal(m.cursor.seq, lines.length - 1)
    assert.equal(m.cursor.hash, JSON.parse(lines.at(-1)).hash)

    // every record reached the collector: its hash attribute and its exact line as the body
    const hashes = lines.map((l) => JSON.parse(l).hash)
    let missing
    const until = Date.now() + 10_000
    for (;;) {
      const printed = fs.readFileSync(outFile, 'utf8')
      const seen = new Set(printed.split('\n'))
      const bodies = new Set()
      for (const l of seen) {
        const b = /^\s*Body: Str\((.*)\)$/.exec(l)
        if (b) bodies.add(b[1])
      }
      missing = [
        ...hashes.filter((h) => !printed.includes(`-> aegis.hash: Str(${h})`)).map((h) => `hash ${h}`),
        ...lines.filter((l) => !bodies.has(l)).map((l) => `body ${l}`),
      ]
      if (missing.length === 0 || Date.now() > until) break
      await sleep(200)
    }
    assert.deepEqual(missing, [], 'records the collector did not print')

    const final = await engine.collector.close()
    assert.equal(final.shipped, lines.length)
    assert.equal(engine.collector.closed, true)
    assert.deepEqual(await engine.collector.close(), final)
    await engine.close()
    await engine.collector.flush(1000) // everything was delivered: resolves even after close
  } finally {
    if (engine) await engine.close(0).catch(() => {})
    await stopProcess(child)
    process.removeListener('exit', killOnExit)
  }
})
