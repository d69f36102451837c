'use strict'
// A fleet member for tests/fleet/race.py, in Node (the Python and Go workers do exactly
// the same; see race.py for the protocol).
// usage: node worker.js MODE URL PREFIX POLICY AUDIT SECONDS [TIME]
const { Engine, AegisError } = require('../../aegis-node')

const AMOUNTS = [1.5, 2.25, 0.1, 7.0, 3.3]

async function main () {
  const [mode, url, prefix, policy, audit, seconds, fixed] = process.argv.slice(2)
  const engine = Engine.fromPath(policy, { audit, state: url, statePrefix: prefix, stateTimeoutMs: 100, stateStaleMs: 2000 })
  const end = performance.now() + Number(seconds) * 1000
  let calls = 0
  let errors = 0
  let out = {}
  const guarded = (req) => {
    try {
      return engine.evaluate(req)
    } catch (e) {
      if (!(e instanceof AegisError)) throw e
      errors++
      process.stderr.write(JSON.stringify({ error: e.message }) + '\n')
      return null
    }
  }
  if (mode === 'race') {
    let allowedPay = 0
    let allowedCall = 0
    while (performance.now() < end) {
      const i = calls++
      const req = { agent: 'racer', tool: i % 2 === 0 ? 'pay' : 'call', time: fixed }
      if (i % 2 === 0) req.params = { amount: AMOUNTS[Math.floor(i / 2) % AMOUNTS.length] }
      const d = guarded(req)
      if (d && d.allowed) {
        if (req.tool === 'pay') allowedPay++
        else allowedCall++
      }
    }
    out = { allowed_pay: allowedPay, allowed_call: allowedCall }
  } else if (mode === 'watch') {
    let last = null
    while (performance.now() < end) {
      calls++
      const rules = JSON.stringify(engine.evaluate({ agent: 'watcher', tool: 'ping' }).rules)
      if (rules !== last) {
        process.stdout.write(JSON.stringify({ t: Date.now(), rules: JSON.parse(rules) }) + '\n')
        last = rules
      }
    }
  } else if (mode === 'fault') {
    let worst = 0
    const seen = {}
    const last = {}
    while (performance.now() < end) {
      const tool = calls % 2 === 0 ? 'limited' : 'ping'
      calls++
      const t0 = performance.now()
      const d = guarded({ agent: 'faulty', tool })
      if (!d) continue
      worst = Math.max(worst, performance.now() - t0)
      const key = `${tool} ${d.rules[0]}`
      seen[key] = (seen[key] || 0) + 1
      last[tool] = d.rules[0]
    }
    out = { max_ms: worst, seen, last }
  }
  await engine.close()
  process.stdout.write(JSON.stringify({ done: true, calls, errors, ...out }) + '\n')
}

main().catch((e) => { console.error(e); process.exit(1) })
