// Type-checked with `npx tsc --noEmit -p test/tsconfig.json`; not run.
import {
  Engine, secureTool, withAgent, currentAgent, AegisError, PolicyError, RequestError,
  PolicyDenied, ApprovalRequired, type Decision, type AuditRecord,
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
void [outcome, id, line, revived, token, hash, main, who]
