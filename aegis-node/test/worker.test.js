'use strict'
// Each worker thread builds its own Engine (napi classes belong to one JS environment).
const test = require('node:test')
const assert = require('node:assert/strict')
const { Worker } = require('node:worker_threads')
const path = require('node:path')

const LIB = path.join(__dirname, '..')
const code = `
const { parentPort, workerData } = require('node:worker_threads')
const { Engine, secureTool, withAgent, PolicyDenied, RequestError } = require(workerData.lib)
const seqs = []
const e = Engine.fromYaml(workerData.policy, { audit: (r) => seqs.push(r.seq), requestMaxBytes: 4096 })
const out = []
for (let i = 0; i < 50; i++) {
  const d = e.evaluate({ agent: 'w' + workerData.id, tool: 'echo', params: { i }, time: '2026-01-05T10:00:00Z' })
  out.push(d.audit.seq + ':' + d.outcome)
}
let hostile
try { e.evaluate({ agent: 'a', tool: 'echo', params: { n: 1n } }) } catch (err) { hostile = err instanceof RequestError }
const echo = secureTool(e, { tool: 'echo' }, async (p) => p.i)
withAgent({ agent: 'w' + workerData.id }, () => echo({ i: workerData.id }))
  .then((r) => parentPort.postMessage({ out, hostile, r, seqs }), (err) => parentPort.postMessage({ error: String(err) }))
`
const policy = 'aegis: 1\nrules:\n  - id: echo\n    match: {tool: echo}\n    outcome: allow\n'

test('worker_threads: one engine per worker (with its own audit callback), run concurrently', async () => {
  const results = await Promise.all([1, 2, 3, 4].map((id) => new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { lib: LIB, policy, id } })
    w.once('message', resolve)
    w.once('error', reject)
  })))
  results.forEach((r, i) => {
    assert.equal(r.error, undefined)
    assert.equal(r.out.length, 50)
    assert.equal(r.out[49], '49:allow')
    assert.equal(r.hostile, true)
    assert.equal(r.r, i + 1)
    assert.deepEqual(r.seqs, Array.from({ length: 51 }, (_, n) => n), 'each worker\'s callback got its own records')
  })
  // the main thread can still use the module after workers exit
  const { Engine } = require('..')
  assert.equal(Engine.fromYaml(policy).evaluate({ agent: 'm', tool: 'echo' }).outcome, 'allow')
})
