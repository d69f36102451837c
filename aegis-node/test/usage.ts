// Type-checked with `npx tsc --noEmit -p test/tsconfig.json`; not run.
import {
  Engine, secureTool, withAgent, currentAgent, AegisError, PolicyError, RequestError, ConfigError,
  PolicyDenied, ApprovalRequired, Collector, type Decision, type AuditRecord, type ErrorCode,
  type EngineOptions, type KeyBytes,
  type CollectorOptions, type CollectorMetrics, type CollectorCursor,
} from '..'

const records: AuditRecord[] = []
const engine: Engine = Engine.fromPath('policies/finance', {
  audit: (r) => { records.push(r) },
  approvalKey: Buffer.from('k'),
  signingKey: 's',
  signingKeyId: 'ops',
  fsync: 'batch',
})
const d: Decision = engine.evaluate({ agent: 'finance-agent', tool: 'payments', action: 'create', params: { amount: 5 } })
const outcome: 'allow' | 'deny' | 'require_approval' = d.outcome
const id: string | undefined = d.approval?.id
const line: string = engine.evaluateJson('{"agent":"a","tool":"t"}')
engine.kill('agent', 'x', 'why')
const revived: boolean = engine.revive('agent', 'x')
const token: string = engine.grant('apr_x', 'alice', 60)
const hash: string = engine.policyHash()

const pay = secureTool(engine, {
  tool: 'payments',
  action: 'create',
  approvalHandler: async (dec: Decision) => (dec.approval ? engine.grant(dec.approval.id, 'mgr', 60) : null),
}, async (p: { amount: number; currency: string }) => `paid ${p.amount} ${p.currency}`)

async function main(): Promise<string> {
  try {
    return await withAgent({ agent: 'finance-agent', session: 's1', context: { tenant: 'acme' } }, () =>
      pay({ amount: 10, currency: 'USD' }))
  } catch (e) {
    if (e instanceof PolicyDenied || e instanceof ApprovalRequired) return e.decision.reason
    if (e instanceof RequestError) return e.field
    if (e instanceof PolicyError) return e.errors.map((x) => `${x.file}:${x.line}:${x.column}`).join()
    if (e instanceof AegisError) return e.message
    throw e
  }
}
const who: string | undefined = currentAgent()?.agent
// @ts-expect-error: the params must match the tool's signature
pay({ amount: 'ten' })
// @ts-expect-error: a guarded tool takes one argument, the params (further ones are refused)
pay({ amount: 1, currency: 'USD' }, 'extra')

// Every error carries a §17 code; config errors name the option.
function codeOf(e: unknown): ErrorCode | undefined {
  if (e instanceof AegisError) {
    const field: string | undefined = e.field
    void field
    return e.code
  }
  return undefined
}
const closed: boolean = engine.closed

// Every option of §17 (one document, validated by the core; camelCase keys).
const key: KeyBytes = { base64: 'a2V5' }
const options: EngineOptions = {
  audit: 'audit.jsonl', fsync: 'never', rotateBytes: 1 << 20, signingKey: new Uint8Array([1]), signingKeyId: 'ops',
  approvalKey: key, requestMaxBytes: 4096, requestMaxDepth: 8, maxLimitCounters: 1000, collector: null,
}
Engine.fromYaml('aegis: 1\nrules: []\n', options)
// @ts-expect-error: options are camelCase
Engine.fromYaml('aegis: 1\nrules: []\n', { request_max_bytes: 5 })
// @ts-expect-error: not supported yet (refused at run time too)
Engine.fromYaml('aegis: 1\nrules: []\n', { metricsAgentLabel: true })
// Session marks (§10): the two options, marks() and clearMarks(), the record's marks.
const marking: Engine = Engine.fromYaml('aegis: 1\nrules: []\n', { maxSessions: 1000, marksTtl: '24h' })
const live: string[] = marking.marks('s1')
const cleared: boolean = marking.clearMarks('s1')
const recorded: string[] | undefined = marking.evaluate({ agent: 'a', tool: 't', session: 's1' }).audit.marks
// @ts-expect-error: marksTtl is a duration string
Engine.fromYaml('aegis: 1\nrules: []\n', { marksTtl: 3600 })
function configField(e: unknown): string {
  if (e instanceof ConfigError) {
    const c: 'config_invalid' = e.code
    return `${c}:${e.field}`
  }
  if (e instanceof PolicyError) return e.errors.map((x) => `${x.file}:${x.line}:${x.column}: ${x.message} ${x.help ?? ''}`).join('\n')
  return ''
}
// An inner context may leave out the agent (it keeps the outer one).
withAgent({ agent: 'orchestrator', chain: ['user'] }, () => withAgent({ session: 's-2' }, () => currentAgent()?.chain))

// The collector option: ships the audit file to an OpenTelemetry collector.
const collectorOptions: CollectorOptions = {
  endpoint: 'http://127.0.0.1:4318',
  headers: { Authorization: 'Bearer t' },
  serviceName: 'payments-agent',
  batch: 512,
  batchAgeMs: 1000,
  gzip: true,
  cursor: 'audit.jsonl.ship-cursor',
  requestTimeoutMs: 10_000,
  maxBackoffMs: 30_000,
  closeTimeoutMs: 5000,
}
const shipped: Engine = Engine.fromPath('policies/finance', { audit: 'audit.jsonl', collector: collectorOptions })
const collector: Collector | null = shipped.collector
async function ship(): Promise<number> {
  if (!collector) return 0
  const m: CollectorMetrics = collector.metrics()
  const lastError: string | null = m.lastError
  const cursor: CollectorCursor | null = m.cursor
  const files: string[] = m.rejectedFiles
  await collector.flush()
  await collector.flush(10_000)
  const final: CollectorMetrics = await collector.close(2000)
  await collector.close()
  const closed: boolean = collector.closed
  await shipped.close()
  await shipped.close(1000)
  void [lastError, cursor?.seq, files, closed]
  return final.shipped + final.pending + final.rejectedBatches + final.partiallyRejected
}
// @ts-expect-error: endpoint is required
Engine.fromPath('p', { audit: 'a.jsonl', collector: { serviceName: 's' } })
// @ts-expect-error: options are camelCase
Engine.fromPath('p', { audit: 'a.jsonl', collector: { endpoint: 'http://h', batch_age_ms: 50 } })
// @ts-expect-error: flush returns a Promise, not metrics
const notMetrics: CollectorMetrics = collector!.flush()
// @ts-expect-error: a Collector comes from an engine
new Collector()
void [outcome, id, line, revived, token, hash, main, who, ship, notMetrics, codeOf, closed, configField, live, cleared, recorded]
