// Type definitions for aegis-policy (the public API; index.d.ts types the native layer).

/** A JSON-like value accepted in `params` and `context`. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue | undefined }

/** A request (spec §1). `undefined` properties are treated as absent. */
export interface Request {
  agent: string
  tool: string
  action?: string
  params?: { [key: string]: JsonValue | undefined }
  chain?: string[]
  session?: string
  environment?: string
  context?: { [key: string]: JsonValue | undefined }
  /** RFC 3339; when absent the engine's clock is read once. */
  time?: string
  /** An approval grant token (spec §6.2). */
  approval?: string
}

export type Outcome = 'allow' | 'deny' | 'require_approval'

export interface DecisionError {
  rule: string
  path: string
  message: string
}

export interface Approval {
  id: string
  approvers: string[]
}

/** The audit record (spec §5.2), parsed from its canonical JSON line. */
export interface AuditRecord {
  v: number
  seq: number
  time: string
  agent: string
  tool: string
  outcome: Outcome
  rules: string[]
  reason: string
  policy: string
  prev: string
  hash: string
  params_sha256: string
  chain?: string[]
  action?: string
  session?: string
  environment?: string
  approval_id?: string
  approved_by?: string
  errors?: number
  limits?: Array<{ id: string; calls: number; sum?: number }>
  kid?: string
  sig?: string
}

export interface Decision {
  outcome: Outcome
  allowed: boolean
  rules: string[]
  reason: string
  approval: Approval | null
  errors: DecisionError[]
  audit: AuditRecord
}

export interface EngineOptions {
  /**
   * A JSONL file sink path, or a callback. The callback receives each record (parsed)
   * after `evaluate`/`evaluateJson` returns from the native engine, in order, on the
   * calling thread; if it throws, the call throws an AegisError (the tool does not run).
   */
  audit?: string | ((record: AuditRecord) => void)
  /** File sink durability (default `always`). */
  fsync?: 'always' | 'batch' | 'never'
  /** HMAC key for approval grants (a string is taken as UTF-8 bytes). */
  approvalKey?: string | Uint8Array
  /** HMAC key for record signatures (a string is taken as UTF-8 bytes). */
  signingKey?: string | Uint8Array
  /** `kid` written into signed records (default: first 16 hex of SHA-256(key)). */
  signingKeyId?: string
}

export type KillScope = 'agent' | 'tool' | 'session' | 'all'

export declare class Engine {
  private constructor()
  static fromPath(path: string, options?: EngineOptions): Engine
  static fromYaml(text: string, options?: EngineOptions): Engine
  evaluate(request: Request): Decision
  evaluateJson(requestJson: string): string
  kill(scope: KillScope, id: string, reason?: string): void
  revive(scope: KillScope, id: string): boolean
  grant(approvalId: string, approver: string, ttlSeconds: number): string
  reload(): void
  reloadYaml(text: string): void
  policyHash(): string
}

export interface AgentContext {
  agent: string
  chain?: string[]
  session?: string
  environment?: string
  context?: { [key: string]: JsonValue | undefined }
}

export interface CurrentAgent {
  readonly agent: string
  readonly chain: readonly string[]
  readonly session?: string
  readonly environment?: string
  readonly context?: { [key: string]: JsonValue | undefined }
}

export declare function withAgent<T>(ctx: AgentContext, fn: () => T): T
export declare function currentAgent(): CurrentAgent | undefined

export interface SecureToolOptions {
  tool: string
  action?: string
  /** Returns (or resolves to) a grant token, or null to refuse. */
  approvalHandler?: (decision: Decision) => string | null | undefined | Promise<string | null | undefined>
}

export declare function secureTool<P extends { [key: string]: any }, A extends unknown[], R>(
  engine: Engine,
  options: SecureToolOptions,
  fn: (params: P, ...rest: A) => R | Promise<R>,
): (params: P, ...rest: A) => Promise<Awaited<R>>

export interface LoadErrorInfo {
  file: string
  line: number
  column: number
  message: string
  help: string | null
}

export declare class AegisError extends Error {}
export declare class PolicyError extends AegisError {
  readonly errors: LoadErrorInfo[]
}
export declare class RequestError extends AegisError {
  /** The request field at fault (`params`, `agent`…; empty for the request as a whole). */
  readonly field: string
}
export declare class PolicyDenied extends AegisError {
  readonly decision: Decision
}
export declare class ApprovalRequired extends AegisError {
  readonly decision: Decision
}
