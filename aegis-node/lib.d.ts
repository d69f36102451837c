// Type definitions for aegis-policy (the public API; index.d.ts types the native layer).

/**
 * A JSON-like value accepted in `params` and `context`: plain objects (prototype
 * `Object.prototype` or `null`), arrays without holes, well-formed strings, finite
 * numbers of magnitude ≤ 2^53 − 1, booleans and null. Anything else (Buffers and other
 * bytes, Dates, Maps, class instances, BigInts…) is a `RequestError`.
 */
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
  /**
   * The session's live marks after the call, sorted (spec §10): present when a matching
   * rule tests `session.marks` or a rule in `rules` has marks, omitted when empty.
   */
  marks?: string[]
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

/**
 * Key bytes: a string (its UTF-8 bytes), a `Buffer`/`Uint8Array` (copied), or
 * `{base64: '…'}`. Empty → `config_invalid` (an empty HMAC key lets anyone forge).
 */
export type KeyBytes = string | Uint8Array | { base64: string }

/**
 * The engine options (spec §17): one document, validated by the core, so every language
 * accepts and refuses the same settings with the same message. Keys are camelCase (also
 * inside `collector`). An unknown key is a `ConfigError` with a suggestion (`fsnyc` →
 * "did you mean `fsync`?", `request_max_bytes` → `requestMaxBytes`); `undefined` and
 * `null` mean "not given". Values are converted strictly: NaN, Infinity, BigInt,
 * functions (except `audit`), symbols, Dates, Maps, class instances, lone surrogates…
 * are a `ConfigError` naming the option, never dropped or converted lossily.
 */
export interface EngineOptions {
  /**
   * A JSONL file sink path (one engine per file: a second engine on the same file fails
   * with `audit_failed`), or a callback. The callback receives each record (parsed)
   * while the engine records the decision — on the calling thread, before
   * `evaluate`/`evaluateJson` returns — so no decision exists without its record. It
   * must be synchronous and must not call this engine: if it throws, returns a Promise
   * (an `async` function) or calls back into the engine, the call throws an AegisError
   * with code `audit_failed` (the tool does not run) and the record is not chained (the
   * next record continues `seq`/`prev` from the last one delivered).
   */
  audit?: string | ((record: AuditRecord) => void) | null
  /** How the audit file is written (default `always`); needs `audit` as a file path. */
  fsync?: 'always' | 'batch' | 'never' | null
  /** Rotate the audit file once it reaches this many bytes; needs `audit` as a file path. */
  rotateBytes?: number | null
  /** HMAC key for record signatures (`kid`, `sig`). */
  signingKey?: KeyBytes | null
  /**
   * `kid` written into signed records (default: first 16 hex of SHA-256(key)); 1–256
   * bytes, no control characters; needs `signingKey`.
   */
  signingKeyId?: string | null
  /** HMAC key for approval grants. */
  approvalKey?: KeyBytes | null
  /** The largest request, in bytes (default 1048576, at most 67108864). */
  requestMaxBytes?: number | null
  /** The deepest `params`/`context` (default 64, at most 100). */
  requestMaxDepth?: number | null
  /** The most limit counters kept (default 100000, at most 10000000). */
  maxLimitCounters?: number | null
  /**
   * Ship the audit file to an OpenTelemetry collector (OTLP/HTTP) from a background
   * thread, off the `evaluate` path. Needs `audit` to be a file path. See `Collector`.
   */
  collector?: CollectorOptions | null
  /**
   * The most sessions with live marks an engine keeps (spec §10; default 100000, at most
   * 10000000). While the table is full, a call that would mark a session it does not
   * hold is denied (rule `state:full`) and `session.marks` of such a session is an
   * error (fail closed).
   */
  maxSessions?: number | null
  /** The ttl of a mark given without one: N + `s`|`m`|`h`|`d` (default `'24h'`). */
  marksTtl?: string | null
  /**
   * Fleet state (spec §11): `'memory'` (the default) or a Redis URL
   * (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS). Engines on the same
   * Redis and prefix share kill switches, limit counters, used grants and session marks.
   * A refused password or a malformed URL is a `ConfigError` at construction; an
   * unreachable server is not (calls that need it are denied with rule
   * `state:unavailable`; `kill`/`revive`/`marks`/`clearMarks` throw an AegisError with
   * code `state_unavailable`).
   */
  state?: string | null
  /** The prefix of the fleet's keys (default `'aegis:'`); needs a Redis `state`. */
  statePrefix?: string | null
  /** The longest any store operation may take, in ms (default 200); needs a Redis `state`. */
  stateTimeoutMs?: number | null
  /** How old the kill-switch mirror may be before every call is denied, in ms (default 2000). */
  stateStaleMs?: number | null
  /** How far a request's time may be from the store's clock, in ms (default 300000). */
  stateMaxSkewMs?: number | null
  /** Not supported yet (the approvals inbox, §12): refused. */
  inbox?: null
  /** Not supported yet (the approvals inbox, §12): refused. */
  inboxTtl?: null
  /** Not supported yet (the approvals inbox, §12): refused. */
  inboxKeep?: null
  /** Not supported yet (the approvals inbox, §12): refused. */
  notify?: null
  /** Not supported yet (metrics, §15): refused. */
  metricsAgentLabel?: null
}

/**
 * The `collector` option (docs/collector.md). Only `endpoint` is required. Unknown keys,
 * wrong types and out-of-range values make `fromPath`/`fromYaml` throw a `ConfigError`
 * with `field: 'collector'` (`invalid collector configuration: …`, keys named in
 * camelCase).
 */
export interface CollectorOptions {
  /** Collector base URL, `http://` or `https://`; records go to `<endpoint>/v1/logs`. */
  endpoint: string
  /** Extra request headers (e.g. `{Authorization: 'Bearer …'}`). */
  headers?: { [name: string]: string }
  /** Resource attribute `service.name` (default `aegis`). */
  serviceName?: string
  /** Records per request at most, 1 to 10000 (default 512). */
  batch?: number
  /** A partial batch is sent when its first record has waited this long (default 1000). */
  batchAgeMs?: number
  /** Gzip request bodies (default true). */
  gzip?: boolean
  /** Where the delivery cursor is kept (default `<audit>.ship-cursor`). */
  cursor?: string
  /** Per-request timeout (default 10000). */
  requestTimeoutMs?: number
  /** Cap of the retry backoff (default 30000). */
  maxBackoffMs?: number
  /** Bound on the final delivery attempt of `close()` without an argument (default 5000; 0 allowed). */
  closeTimeoutMs?: number
}

/** Where the shipper is: the last delivered (or set-aside) record. */
export interface CollectorCursor {
  /** File name (no directory) the record was read from: `audit.jsonl` or a rotated `audit.jsonl.NNNNNN`. */
  file: string
  /** Byte offset just after the record's line. */
  offset: number
  seq: number
  hash: string
}

export interface CollectorMetrics {
  /** Records delivered (2xx) since start. */
  shipped: number
  /** Records in the audit files beyond the cursor. */
  pending: number
  /** Failed attempts that were (or will be) retried. */
  retries: number
  /** Requests answered 2xx. */
  batches: number
  /** Batches rejected as malformed (HTTP 400) and set aside. */
  rejectedBatches: number
  /** Records in those batches. */
  rejectedRecords: number
  /** Log records a collector reported as rejected in a 2xx `partialSuccess`. */
  partiallyRejected: number
  /** Files the rejected batches were written to (`<audit>.ship-rejected.N.jsonl`). */
  rejectedFiles: string[]
  /** The last error, if any (it is not cleared by later successes). */
  lastError: string | null
  cursor: CollectorCursor | null
}

/** The background shipper of an engine's audit file (`engine.collector`). */
export declare class Collector {
  private constructor()
  /** The metrics so far. */
  metrics(): CollectorMetrics
  /**
   * Resolves once every record in the audit files at call time is delivered; rejects
   * with an AegisError if that does not happen within `timeoutMs` (default 5000, at most
   * 3600000) or shipping has stopped. Waits off the JS thread.
   */
  flush(timeoutMs?: number): Promise<void>
  /**
   * Stops shipping with a final delivery attempt bounded by `timeoutMs` (default the
   * configured `closeTimeoutMs`) and resolves to the final metrics; rejects with an
   * AegisError, after stopping, if that attempt could not deliver everything (the
   * records stay in the file; the next start ships them). Idempotent.
   */
  close(timeoutMs?: number | null): Promise<CollectorMetrics>
  /** Whether `close` was called. */
  readonly closed: boolean
}

export type KillScope = 'agent' | 'tool' | 'session' | 'all'

export declare class Engine {
  private constructor()
  static fromPath(path: string, options?: EngineOptions): Engine
  static fromYaml(text: string, options?: EngineOptions): Engine
  evaluate(request: Request): Decision
  /**
   * Decides a request given as JSON text. JSON from outside belongs here, not through
   * `JSON.parse` + `evaluate`: this refuses duplicate keys, `JSON.parse` keeps the last.
   */
  evaluateJson(requestJson: string): string
  /**
   * Sets a kill switch (spec §6.1). With a Redis `state` it applies to this engine at
   * once and to the fleet once written; when it cannot be written it throws an
   * AegisError with code `state_unavailable` (the kill stays in force here and is
   * written when Redis is back).
   */
  kill(scope: KillScope, id: string, reason?: string): void
  /**
   * Lifts a kill switch; returns whether one was set. With a Redis `state` it applies
   * once written (Redis unreachable: an AegisError with code `state_unavailable`).
   */
  revive(scope: KillScope, id: string): boolean
  grant(approvalId: string, approver: string, ttlSeconds: number): string
  /**
   * The session's live marks (spec §10) at the engine's clock, sorted (`[]` when none is
   * live). They survive `reload`. A bad session name (empty, over 256 bytes, a control
   * character) throws an AegisError (`invalid_argument`).
   */
  marks(session: string): string[]
  /** Forgets the session's marks (an operator's act); returns whether it had live ones. */
  clearMarks(session: string): boolean
  reload(): void
  reloadYaml(text: string): void
  policyHash(): string
  /** The collector started by the `collector` option, or null. */
  readonly collector: Collector | null
  /**
   * Closes the collector (as `collector.close(timeoutMs)`; at once without one), then
   * the engine: its audit file is closed and unlocked (another engine may open it) and
   * every later call throws an AegisError (`invalid_argument`). Rejects if the
   * collector's final attempt failed; the engine is closed all the same.
   */
  close(timeoutMs?: number | null): Promise<void>
  /** Whether `close` was called. */
  readonly closed: boolean
}

/**
 * An agent context (`withAgent`). Nested, a chain only grows: the inner chain is the
 * outer chain, then the outer agent (when this context names an `agent`), then `chain`.
 * Without `agent`, the outer agent is kept; other fields are inherited unless given.
 */
export interface AgentContext {
  agent?: string
  chain?: string[]
  session?: string
  environment?: string
  context?: { [key: string]: JsonValue | undefined }
}

export interface CurrentAgent {
  readonly agent: string | undefined
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

/**
 * Guards `fn`. The returned function takes exactly one argument, the params object: the
 * engine reads it once to decide, and `fn` receives a fresh deep copy of the params as
 * decided (plain objects and arrays; keys in canonical order), so no change of the
 * caller's objects made meanwhile — in the audit callback, during an async approval —
 * reaches the decision or the tool. A call with further arguments, or with no agent in
 * context, is refused (`AegisError`, code `invalid_argument`).
 */
export declare function secureTool<P extends { [key: string]: any }, R>(
  engine: Engine,
  options: SecureToolOptions,
  fn: (params: P) => R | Promise<R>,
): (params: P) => Promise<Awaited<R>>

export interface LoadErrorInfo {
  file: string
  line: number
  column: number
  message: string
  help: string | null
}

/** The stable error codes of spec §17 (docs/errors.md). */
export type ErrorCode =
  | 'policy_invalid'
  | 'request_invalid'
  | 'config_invalid'
  | 'invalid_argument'
  | 'audit_failed'
  | 'state_unavailable'
  | 'approval_invalid'
  | 'collector_failed'
  | 'io'
  | 'denied'
  | 'approval_required'
  | 'approval_rejected'

export declare class AegisError extends Error {
  /** The stable code (spec §17). */
  readonly code: ErrorCode
  /**
   * The option (`config_invalid`, as written: camelCase) or request field
   * (`request_invalid`) at fault; `''` when none.
   */
  readonly field: string
}
/** A bundle did not load (`policy_invalid`): every load error with its location. */
export declare class PolicyError extends AegisError {
  readonly code: 'policy_invalid'
  readonly errors: LoadErrorInfo[]
}
/** A request breaks §1 (`request_invalid`): nothing was decided or recorded. */
export declare class RequestError extends AegisError {
  readonly code: 'request_invalid'
  /** The request field at fault (`params`, `agent`…; empty for the request as a whole). */
  readonly field: string
}
/** An engine option was refused (`config_invalid`); `field` names it as written. */
export declare class ConfigError extends AegisError {
  readonly code: 'config_invalid'
}
/** A guarded tool call was denied (`denied`). */
export declare class PolicyDenied extends AegisError {
  readonly decision: Decision
}
/** `code` is `approval_rejected` when the approval handler refused (returned null), else `approval_required`. */
export declare class ApprovalRequired extends AegisError {
  readonly decision: Decision
}
