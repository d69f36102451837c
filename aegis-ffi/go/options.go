package aegis

/*
#include <stdlib.h>
#include <stdint.h>
#include "aegis.h"

// The Go audit callback (callback.go), registered with its cgo.Handle as `user`.
extern int aegisGoAuditCallback(void *user, char *record, size_t len);

static aegis_status aegis_go_add_audit_callback(aegis_engine_options *o, uintptr_t handle, char **error_out) {
	return aegis_engine_options_add_audit_callback(
		o, (aegis_audit_callback)aegisGoAuditCallback, (void *)handle, error_out);
}
*/
import "C"

import (
	"encoding/json"
	"runtime"
	"runtime/cgo"
)

// Option sets one option of the engine's configuration document (SPEC §17,
// docs/configuration.md) or adds an audit callback. Every Option of a constructor call
// writes into one document, which the core validates whole — the same validator as in
// Python, JavaScript and C, so a mistake gets the same config_invalid message in every
// language. A later Option for the same key replaces the earlier one.
type Option func(*config)

// config is what the Options of one constructor call build.
type config struct {
	doc       map[string]any
	callbacks []func(record string) error
}

// WithOption sets the option key (snake_case, as SPEC §17 and docs/configuration.md
// name it) to value, for any option — those without a helper of their own too. The
// value is converted as a request value is (strictly: invalid UTF-8, NaN, structs,
// channels and functions are config_invalid errors naming the option), except that a
// []byte is a key: it is written as {"base64": "…"}. nil is the option not given.
// Unknown keys, wrong values and options of later releases are refused by the core
// (config_invalid, Field the key): WithOption("fsnyc", "always") gives "unknown option
// `fsnyc` (did you mean `fsync`?)".
func WithOption(key string, value any) Option {
	return func(c *config) {
		if c.doc == nil {
			c.doc = map[string]any{}
		}
		c.doc[key] = value
	}
}

// WithAuditFile appends every record to the JSONL file at path (option `audit`),
// resuming its chain. The file is locked while the engine lives: a second engine on it
// fails with audit_failed ("in use by another engine") until the first is closed.
func WithAuditFile(path string) Option { return WithOption("audit", path) }

// Fsync says when the audit file is synced (option `fsync`).
type Fsync string

// Fsync modes.
const (
	FsyncAlways Fsync = "always" // after every record (the default)
	FsyncBatch  Fsync = "batch"  // group commit: batches of records
	FsyncNever  Fsync = "never"  // the OS flushes
)

// WithFsync sets when the audit file is synced (needs WithAuditFile).
func WithFsync(mode Fsync) Option { return WithOption("fsync", string(mode)) }

// WithRotateBytes rotates the audit file once it passes n bytes (needs WithAuditFile).
func WithRotateBytes(n int64) Option { return WithOption("rotate_bytes", n) }

// WithSigningKey sets the HMAC key for record signatures (any bytes). An empty or nil
// key is refused with config_invalid — WithSigningKey([]byte(os.Getenv("UNSET")))
// fails, it never signs with an empty key.
func WithSigningKey(key []byte) Option { return WithOption("signing_key", nonNil(key)) }

// WithSigningKeyID sets the key id written as `kid` (default: the first 16 hex digits
// of SHA-256(key)): 1–256 bytes of UTF-8, no control characters, and it needs
// WithSigningKey; else config_invalid.
func WithSigningKeyID(kid string) Option { return WithOption("signing_key_id", kid) }

// WithApprovalKey sets the HMAC key that verifies and issues approval grants (any
// bytes). An empty or nil key is refused with config_invalid — with an empty key anyone
// could forge grants.
func WithApprovalKey(key []byte) Option { return WithOption("approval_key", nonNil(key)) }

// WithRequestMaxBytes sets the largest request (default 1 MiB, at most 64 MiB).
// Evaluate's encoder stops at the same bound.
func WithRequestMaxBytes(n int) Option { return WithOption("request_max_bytes", n) }

// WithRequestMaxDepth sets how deep params and context may nest (default 64, at most
// 100).
func WithRequestMaxDepth(n int) Option { return WithOption("request_max_depth", n) }

// WithMaxLimitCounters sets how many limit counters are kept (default 100,000); beyond
// it new counters fail closed.
func WithMaxLimitCounters(n int) Option { return WithOption("max_limit_counters", n) }

// WithMaxSessions sets how many sessions with live marks are kept (SPEC §10; default
// 100,000, at most 10,000,000). While the table is full, a call that would mark a
// session it does not hold is denied (rule `state:full`) and such a session's
// `session.marks` does not resolve (fail closed).
func WithMaxSessions(n int) Option { return WithOption("max_sessions", n) }

// WithMarksTTL sets how long a mark written without its own ttl stays live (SPEC §10):
// a duration N + s, m, h or d ("24h", the default; "90m"), counted from its request's
// time. Anything else is refused with config_invalid.
func WithMarksTTL(d string) Option { return WithOption("marks_ttl", d) }

// WithState makes the engine a member of a fleet (SPEC §11): url is "memory" (the
// default) or a Redis URL (redis://[user:password@]host:port[/db], rediss:// for TLS).
// Engines on the same Redis and prefix share kill switches, limit counters, used grants
// and session marks. A refused password or a malformed URL is config_invalid at
// construction; an unreachable server is not (calls that need it are denied with rule
// `state:unavailable`, and Kill, Revive, Marks and ClearMarks return an *Error with
// Code "state_unavailable").
func WithState(url string) Option { return WithOption("state", url) }

// WithStatePrefix sets the prefix of the fleet's keys (default "aegis:"; needs a Redis
// WithState).
func WithStatePrefix(prefix string) Option { return WithOption("state_prefix", prefix) }

// WithStateTimeoutMs sets the longest any store operation may take, in milliseconds
// (default 200; needs a Redis WithState).
func WithStateTimeoutMs(ms int) Option { return WithOption("state_timeout_ms", ms) }

// WithStateStaleMs sets how old the kill-switch mirror may be before every call is
// denied (rule `state:unavailable`), in milliseconds (default 2000; needs a Redis
// WithState).
func WithStateStaleMs(ms int) Option { return WithOption("state_stale_ms", ms) }

// WithStateMaxSkewMs sets how far a request's time may be from the store's clock before
// it is denied (rule `state:skew`), in milliseconds (default 300000; needs a Redis
// WithState).
func WithStateMaxSkewMs(ms int) Option { return WithOption("state_max_skew_ms", ms) }

// WithCollector ships the audit file (set WithAuditFile too) to an OpenTelemetry
// collector (option `collector`).
func WithCollector(c CollectorConfig) Option { return WithOption("collector", c.document()) }

// WithAuditCallback adds an audit callback (`audit` given as a function; several may
// be added, and WithAuditFile beside them): f receives every record as one line of
// canonical JSON, synchronously on the evaluating goroutine, before Evaluate returns,
// after the audit file. An error or a panic fails that Evaluate with audit_failed (no
// decision without its record). f must not call the engine.
func WithAuditCallback(f func(record string) error) Option {
	return func(c *config) { c.callbacks = append(c.callbacks, f) }
}

// nonNil makes a nil key an empty one, so that it is refused rather than taken as "no
// key".
func nonNil(key []byte) []byte {
	if key == nil {
		return []byte{}
	}
	return key
}

// The bounds of the options document on the Go side (the core bounds its nesting
// further, with its own message).
const (
	optionsMaxBytes = 1 << 20
	optionsMaxDepth = 64
)

// encodeOptions writes the document as JSON, strictly (see encode.go).
func encodeOptions(doc map[string]any) ([]byte, error) {
	if doc == nil {
		return []byte("{}"), nil
	}
	e := encoder{maxBytes: optionsMaxBytes, maxDepth: optionsMaxDepth, options: true}
	if err := e.mapAny(doc, 0); err != nil {
		return nil, err
	}
	return e.b, nil
}

// limits are the request bounds of an engine (for Evaluate's encoder).
type limits struct{ maxBytes, maxDepth int }

// requestLimits reads the request bounds from a document the core has accepted.
func requestLimits(doc []byte) limits {
	var given struct {
		MaxBytes *float64 `json:"request_max_bytes"`
		MaxDepth *float64 `json:"request_max_depth"`
	}
	l := limits{defaultMaxBytes, defaultMaxDepth}
	if json.Unmarshal(doc, &given) == nil {
		if given.MaxBytes != nil {
			l.maxBytes = int(*given.MaxBytes)
		}
		if given.MaxDepth != nil {
			l.maxDepth = int(*given.MaxDepth)
		}
	}
	return l
}

// cOptions builds the C options: the audit callbacks, then the document (encoded
// strictly and handed to aegis_engine_options_set_json, which validates it knowing
// about the callbacks). The caller frees the options, and deletes the callback handles
// once the engine made from them is freed (or was not made). Call it on a locked OS
// thread (check reads this thread's last error).
func cOptions(opts []Option) (*C.aegis_engine_options, []cgo.Handle, limits, error) {
	var c config
	for _, f := range opts {
		f(&c)
	}
	doc, err := encodeOptions(c.doc)
	if err != nil {
		return nil, nil, limits{}, err
	}
	co := C.aegis_engine_options_new()
	if co == nil {
		return nil, nil, limits{}, newError(StatusPanic, "", "cannot allocate options")
	}
	var handles []cgo.Handle
	fail := func(err error) (*C.aegis_engine_options, []cgo.Handle, limits, error) {
		C.aegis_engine_options_free(co)
		deleteHandles(handles)
		return nil, nil, limits{}, err
	}
	var cerr *C.char
	for _, f := range c.callbacks {
		if f == nil {
			return fail(configError("audit", "an audit callback is nil"))
		}
		h := cgo.NewHandle(f)
		handles = append(handles, h)
		if err := check(C.aegis_go_add_audit_callback(co, C.uintptr_t(h), &cerr), cerr); err != nil {
			return fail(err)
		}
	}
	st := C.aegis_engine_options_set_json(co, bytesPtr(doc), C.size_t(len(doc)), &cerr)
	runtime.KeepAlive(doc)
	if err := check(st, cerr); err != nil {
		return fail(err)
	}
	return co, handles, requestLimits(doc), nil
}

func deleteHandles(hs []cgo.Handle) {
	for _, h := range hs {
		h.Delete()
	}
}
