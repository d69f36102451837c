#!/usr/bin/env node
'use strict'
// Per-call cost of the Node binding's evaluate(obj) / evaluateJson(str).
//   node bench_node.js WORKLOAD_DIR [ROUNDS]
const fs = require('node:fs')
const path = require('node:path')
const { Engine } = require(process.env.AEGIS_NODE_LIB || path.resolve(__dirname, '../../aegis-node/lib.js'))

const dir = process.argv[2]
const rounds = Number(process.argv[3] || 7)
const engine = Engine.fromYaml(fs.readFileSync(path.join(dir, 'bundle.yaml'), 'utf8'))
const lines = fs.readFileSync(path.join(dir, 'requests.jsonl'), 'utf8').split('\n').filter((l) => l.trim())
const objs = lines.map((l) => JSON.parse(l))
if (objs.length < 4096) throw new Error('need at least 4,096 requests')

const outcomes = {}
for (let i = 0; i < lines.length; i++) {
  const a = JSON.parse(engine.evaluateJson(lines[i])).outcome
  const b = engine.evaluate(objs[i]).outcome
  if (a !== b) throw new Error(`evaluate/evaluateJson disagree on ${lines[i]}: ${a} vs ${b}`)
  outcomes[a] = (outcomes[a] || 0) + 1
}

function perCallUs(fn, items) {
  let sink = 0
  for (const it of items) sink ^= fn(it) ? 1 : 0
  const samples = []
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint()
    for (const it of items) sink ^= fn(it) ? 1 : 0
    samples.push(Number(process.hrtime.bigint() - t0) / items.length / 1000)
  }
  samples.sort((x, y) => x - y)
  return Math.round(samples[samples.length >> 1] * 1000) / 1000
}

// Touch a field of each result so nothing is optimised away.
const res = {
  requests: objs.length,
  outcomes,
  evaluate_obj_us: perCallUs((o) => engine.evaluate(o).allowed, objs),
  evaluate_obj_audit_us: perCallUs((o) => engine.evaluate(o).audit.hash, objs),
  evaluateJson_us: perCallUs((l) => engine.evaluateJson(l).length, lines),
}
console.log(JSON.stringify(res))
