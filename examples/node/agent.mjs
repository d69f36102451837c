// Guarded tools for a finance agent, run against policies/finance.
// Run from the repo root after `make node-build`:  node examples/node/agent.mjs
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import aegis from '../../aegis-node/lib.js'

const { Engine, secureTool, withAgent, AegisError, PolicyDenied, ApprovalRequired, RequestError } = aegis
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

const engine = Engine.fromPath(path.join(root, 'policies', 'finance'), {
  approvalKey: 'example-approval-key',
  audit: (record) => console.log(`  audit seq=${record.seq} ${record.outcome} [${record.rules.join(', ')}]`),
})

// A stand-in for a human approval step (return null to refuse).
async function managerApproves(decision) {
  console.log(`  approval ${decision.approval.id} asked of ${decision.approval.approvers.join(', ')}`)
  return engine.grant(decision.approval.id, 'finance-manager:alice', 300)
}

const createPayment = secureTool(
  engine,
  { tool: 'payments', action: 'create', approvalHandler: (d) => managerApproves(d) },
  async ({ amount, currency, payee }) => `paid ${amount} ${currency} to ${payee}`,
)

async function attempt(label, params, ...more) {
  try {
    console.log(`${label}: ${await createPayment(params, ...more)}`)
  } catch (e) {
    // every AegisError has a stable `code` (denied, approval_required, request_invalid, …)
    if (e instanceof PolicyDenied) console.log(`${label}: DENIED: ${e.decision.reason}`)
    else if (e instanceof ApprovalRequired) console.log(`${label}: NOT APPROVED (${e.decision.approval?.id})`)
    else if (e instanceof RequestError) console.log(`${label}: BAD REQUEST (${e.field}): ${e.message}`)
    else if (e instanceof AegisError) console.log(`${label}: REFUSED (${e.code}): ${e.message}`)
    else throw e
  }
}

await withAgent({ agent: 'finance-agent', environment: 'prod', session: 'demo-1' }, async () => {
  await attempt('small USD payment', { amount: 100, currency: 'USD', payee: 'acme-supplies' })
  await attempt('9000 EUR (needs approval)', { amount: 9000, currency: 'EUR', payee: 'globex-gmbh' })
  await attempt('unsupported currency', { amount: 100, currency: 'JPY', payee: 'x' })
  await attempt('hard cap', { amount: 60000, currency: 'USD', payee: 'x' })
  await attempt('NaN amount', { amount: NaN, currency: 'USD', payee: 'x' })
  // ids beyond 2^53 - 1 are not exact as JS numbers: send them as strings
  await attempt('account id as a number', { amount: 10, currency: 'USD', payee: 'x', account: 12345678901234567890 })
  // only the params object is decided, so a call with more arguments never runs
  await attempt('extra argument', { amount: 10, currency: 'USD', payee: 'x' }, { amount: 1e6 })
})

await attempt('no agent context', { amount: 1, currency: 'USD', payee: 'x' }).catch((e) => console.log(`no agent context: ${e.name}: ${e.message}`))

await engine.close() // releases the engine (and its audit file, if it had one)
