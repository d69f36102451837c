// Node runner of the cross-binding check (see run.py): one JSON line per case.
// Usage: node tests/cross/node.mjs tests/cross/cases.json
import fs from 'node:fs'
import aegis from '../../aegis-node/lib.js'

const { Engine, AegisError } = aegis
const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const fresh = () => Engine.fromYaml(spec.policy)
const codeOf = (e) => {
  if (!(e instanceof AegisError)) throw e
  return e.code ?? e.name
}

function nativeOf(c) {
  if (c.json !== undefined) {
    if (c.host_parser_keeps_last) return undefined // JSON.parse drops the duplicate: evaluateJson only
    try {
      return JSON.parse(c.json)
    } catch {
      return undefined // not JSON for the host either: nothing to hand to evaluate()
    }
  }
  const req = JSON.parse(c.native.base)
  const [a, b] = c.native.set
  req[a][b] = c.native.bytes !== undefined ? Buffer.from(c.native.bytes) : Number(c.native.int)
  return req
}

for (const c of spec.cases) {
  let json = null
  if (c.json !== undefined) {
    try {
      json = { line: fresh().evaluateJson(c.json) }
    } catch (e) {
      json = { error: codeOf(e) }
    }
  }
  let native = null
  const req = nativeOf(c)
  if (req !== undefined) {
    try {
      const d = fresh().evaluate(req)
      native = { outcome: d.outcome, rules: d.rules, hash: d.audit.hash }
    } catch (e) {
      native = { error: codeOf(e) }
    }
  }
  process.stdout.write(JSON.stringify({ name: c.name, json, native }) + '\n')
}
