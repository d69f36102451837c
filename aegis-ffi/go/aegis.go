// Package aegis is the Go binding of Aegis, a policy-decision engine for AI agents'
// tool calls. It wraps the C ABI (libaegis, crate aegis-ffi) with cgo.
//
// Build libaegis first (from the repository root):
//
//	cargo build --release -j2 -p aegis-ffi
//
// The package links target/release/libaegis.a statically, so binaries and tests need
// no LD_LIBRARY_PATH. An Engine is safe for concurrent use.
package aegis

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#cgo LDFLAGS: ${SRCDIR}/../../target/release/libaegis.a -lpthread -ldl -lm
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
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// takeString copies a library string into Go and frees it.
func takeString(s *C.char) string {
	if s == nil {
		return ""
	}
	defer C.aegis_string_free(s)
	return C.GoString(s)
}

// Fsync says when the audit file is synced.
type Fsync int

// Fsync modes.
const (
	FsyncAlways Fsync = C.AEGIS_FSYNC_ALWAYS
	FsyncBatch  Fsync = C.AEGIS_FSYNC_BATCH
	FsyncNever  Fsync = C.AEGIS_FSYNC_NEVER
)

// Options configure an Engine. The zero value is the default.
type Options struct {
	// SigningKey is the HMAC key for record signatures (nil = none). A non-nil empty key
	// is refused (config_invalid): an empty HMAC key makes signatures worthless.
	SigningKey []byte
	// SigningKeyID is the `kid` (default: first 16 hex of SHA-256(SigningKey)): 1–256
	// bytes, no control characters (NUL included), else config_invalid.
	SigningKeyID string
	// ApprovalKey is the HMAC key for approval grants (nil = none). A non-nil empty key
	// is refused (config_invalid): with an empty key anyone could forge grants.
	ApprovalKey []byte
	AuditFile   string // append records to this JSONL file ("" = none); one engine per file
	AuditFsync  Fsync  // when AuditFile is set
	// Collector ships AuditFile to an OpenTelemetry collector (nil = none; needs AuditFile).
	Collector *CollectorConfig
	// AuditCallbacks receive every record (one line of canonical JSON) synchronously,
	// after AuditFile. A callback that returns an error or panics makes that Evaluate
	// fail with audit_failed (the tool must not run; the chain stays whole). It must
	// not call back into the engine (such a call fails, and so does the Evaluate).
	AuditCallbacks []func(record string) error

	rawCollector *string // the collector JSON as is (tests: keys a CollectorConfig cannot spell)
	// set by WithSigningKey / WithSigningKeyID / WithApprovalKey: the option was given,
	// so a nil or empty value is refused rather than taken as "none".
	signingKeySet, signingKeyIDSet, approvalKeySet bool
}

// Option changes Options (functional options).
type Option func(*Options)

// WithSigningKey sets the record signing key. An empty (or nil) key is refused with
// config_invalid — `WithSigningKey([]byte(os.Getenv("UNSET")))` fails, it never signs
// with an empty key.
func WithSigningKey(key []byte) Option {
	return func(o *Options) { o.SigningKey = key; o.signingKeySet = true }
}

// WithSigningKeyID sets the key id written as `kid` (1–256 bytes, no control
// characters, else config_invalid).
func WithSigningKeyID(kid string) Option {
	return func(o *Options) { o.SigningKeyID = kid; o.signingKeyIDSet = true }
}

// WithApprovalKey sets the approval grant key. An empty (or nil) key is refused with
// config_invalid — `WithApprovalKey([]byte(os.Getenv("UNSET")))` fails, it never
// accepts grants MACed with an empty key.
func WithApprovalKey(key []byte) Option {
	return func(o *Options) { o.ApprovalKey = key; o.approvalKeySet = true }
}

// WithAuditFile appends every record to path (JSONL), synced per fsync. The file is
// locked while the engine lives: a second engine on it fails with audit_failed ("in
// use by another engine") until the first is closed.
func WithAuditFile(path string, fsync Fsync) Option {
	return func(o *Options) { o.AuditFile = path; o.AuditFsync = fsync }
}

// WithAuditCallback adds an audit callback (see Options.AuditCallbacks): f receives
// every record synchronously, on the evaluating goroutine, before Evaluate returns. An
// error or a panic fails that Evaluate with audit_failed. f must not call the engine.
func WithAuditCallback(f func(record string) error) Option {
	return func(o *Options) { o.AuditCallbacks = append(o.AuditCallbacks, f) }
}

// WithOptions sets all options at once.
func WithOptions(opts Options) Option { return func(o *Options) { *o = opts } }

// cString is C.CString for a string that must reach C whole: one with a NUL (which C
// would cut) or invalid UTF-8 is refused with err(field, message). Free the result.
func cString(s, field string, err func(field, msg string) *Error) (*C.char, error) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return nil, err(field, "`"+field+"` contains a NUL byte (at byte "+itoa(i)+"); it would be cut by C")
	}
	if !utf8.ValidString(s) {
		return nil, err(field, "`"+field+"` is not valid UTF-8")
	}
	return C.CString(s), nil
}

func itoa(i int) string { return string(appendInt(nil, int64(i))) }

// cStrings converts several strings with cString; free them with freeStrings (also on
// error).
func cStrings(err func(field, msg string) *Error, pairs ...string) ([]*C.char, error) {
	out := make([]*C.char, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		c, e := cString(pairs[i], pairs[i+1], err)
		if e != nil {
			freeStrings(out)
			return nil, e
		}
		out = append(out, c)
	}
	return out, nil
}

func freeStrings(cs []*C.char) {
	for _, c := range cs {
		C.free(unsafe.Pointer(c))
	}
}

// cOptions builds an aegis_engine_options; the caller frees it, and deletes the
// callback handles once the engine made from it is freed (or was not made). Call it on
// a locked OS thread (check reads this thread's last error).
func cOptions(opts []Option) (*C.aegis_engine_options, []cgo.Handle, error) {
	var o Options
	for _, f := range opts {
		f(&o)
	}
	// Refused here, before C: the core would refuse them too, but an unset key must
	// never be mistaken for "no key".
	if (o.signingKeySet || o.SigningKey != nil) && len(o.SigningKey) == 0 {
		return nil, nil, configError("signing_key", "`signing_key` is empty; an empty HMAC key lets anyone forge what it protects")
	}
	if (o.approvalKeySet || o.ApprovalKey != nil) && len(o.ApprovalKey) == 0 {
		return nil, nil, configError("approval_key", "`approval_key` is empty; an empty HMAC key lets anyone forge what it protects")
	}
	var handles []cgo.Handle
	co := C.aegis_engine_options_new()
	if co == nil {
		return nil, nil, newError(StatusPanic, "", "cannot allocate options")
	}
	var cerr *C.char
	fail := func(err error) (*C.aegis_engine_options, []cgo.Handle, error) {
		C.aegis_engine_options_free(co)
		deleteHandles(handles)
		return nil, nil, err
	}
	if o.SigningKey != nil {
		st := C.aegis_engine_options_set_signing_key(co, bytesPtr(o.SigningKey), C.size_t(len(o.SigningKey)), &cerr)
		runtime.KeepAlive(o.SigningKey)
		if err := check(st, cerr); err != nil {
			return fail(err)
		}
	}
	if o.signingKeyIDSet || o.SigningKeyID != "" {
		if o.SigningKeyID == "" {
			return fail(configError("signing_key_id", "`signing_key_id` must not be empty"))
		}
		// A NUL is a control character: refused like any other (never cut by C).
		if strings.IndexByte(o.SigningKeyID, 0) >= 0 {
			return fail(configError("signing_key_id", "`signing_key_id` contains a control character"))
		}
		s, err := cString(o.SigningKeyID, "signing_key_id", configError)
		if err != nil {
			return fail(err)
		}
		st := C.aegis_engine_options_set_signing_key_id(co, s, &cerr)
		C.free(unsafe.Pointer(s))
		if err := check(st, cerr); err != nil {
			return fail(err)
		}
	}
	if o.ApprovalKey != nil {
		st := C.aegis_engine_options_set_approval_key(co, bytesPtr(o.ApprovalKey), C.size_t(len(o.ApprovalKey)), &cerr)
		runtime.KeepAlive(o.ApprovalKey)
		if err := check(st, cerr); err != nil {
			return fail(err)
		}
	}
	if o.AuditFile != "" {
		s, err := cString(o.AuditFile, "audit", configError)
		if err != nil {
			return fail(err)
		}
		st := C.aegis_engine_options_set_audit_file(co, s, C.int(o.AuditFsync), &cerr)
		C.free(unsafe.Pointer(s))
		if err := check(st, cerr); err != nil {
			return fail(err)
		}
	}
	for _, f := range o.AuditCallbacks {
		if f == nil {
			return fail(configError("audit", "an audit callback is nil"))
		}
		h := cgo.NewHandle(f)
		handles = append(handles, h)
		if err := check(C.aegis_go_add_audit_callback(co, C.uintptr_t(h), &cerr), cerr); err != nil {
			return fail(err)
		}
	}
	if o.Collector != nil || o.rawCollector != nil {
		var b []byte
		var err error
		if o.rawCollector != nil {
			b = []byte(*o.rawCollector)
		} else if b, err = json.Marshal(*o.Collector); err != nil {
			return fail(newError(StatusInvalidArgument, "collector", "invalid collector configuration: "+err.Error()))
		}
		st := C.aegis_engine_options_set_collector(co, (*C.char)(unsafe.Pointer(unsafe.SliceData(b))), C.size_t(len(b)), &cerr)
		runtime.KeepAlive(b)
		if err := check(st, cerr); err != nil {
			return fail(err)
		}
	}
	return co, handles, nil
}

func deleteHandles(hs []cgo.Handle) {
	for _, h := range hs {
		h.Delete()
	}
}

// bytesPtr gives a C pointer to b's bytes (a non-NULL pointer even for an empty slice).
func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return (*C.uint8_t)(unsafe.Pointer(&emptyByte))
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

var emptyByte byte

func charPtr(s string) *C.char {
	if len(s) == 0 {
		return (*C.char)(unsafe.Pointer(&emptyByte))
	}
	return (*C.char)(unsafe.Pointer(unsafe.StringData(s)))
}

// Engine is a loaded policy engine. Safe for concurrent use; Close waits for calls in
// flight.
type Engine struct {
	mu      sync.RWMutex
	e       *C.aegis_engine
	handles []cgo.Handle // the audit callbacks, deleted once the engine is freed
}

func newEngine(e *C.aegis_engine, handles []cgo.Handle) *Engine {
	eng := &Engine{e: e, handles: handles}
	runtime.SetFinalizer(eng, func(eng *Engine) { _ = eng.Close() })
	return eng
}

// NewEngineFromPath loads a bundle from a file or directory. A path with a NUL byte
// is refused (invalid_argument), never cut short.
func NewEngineFromPath(path string, opts ...Option) (*Engine, error) {
	cpath, err := cString(path, "path", argError)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cpath))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	co, handles, err := cOptions(opts)
	if err != nil {
		return nil, err
	}
	defer C.aegis_engine_options_free(co)
	var e *C.aegis_engine
	var cerr *C.char
	if err := check(C.aegis_engine_from_path_with(cpath, co, &e, &cerr), cerr); err != nil {
		deleteHandles(handles)
		return nil, err
	}
	return newEngine(e, handles), nil
}

// NewEngineFromYAML loads a bundle from YAML text (errors name the file `<yaml>`).
func NewEngineFromYAML(yaml string, opts ...Option) (*Engine, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	co, handles, err := cOptions(opts)
	if err != nil {
		return nil, err
	}
	defer C.aegis_engine_options_free(co)
	var e *C.aegis_engine
	var cerr *C.char
	st := C.aegis_engine_from_yaml_with(charPtr(yaml), C.size_t(len(yaml)), co, &e, &cerr)
	runtime.KeepAlive(yaml)
	if err := check(st, cerr); err != nil {
		deleteHandles(handles)
		return nil, err
	}
	return newEngine(e, handles), nil
}

// Close frees the engine and releases its audit file (another engine may then open
// it). Idempotent; waits for calls in flight; later calls return ErrClosed. With a
// collector it first closes the collector (as CloseCollector with the configured
// CloseTimeout, so it may block that long) and returns its error, if any
// (StatusCollectorError: the final attempt left records undelivered); the engine is
// freed either way. Never call it from an audit callback.
func (eng *Engine) Close() error {
	eng.mu.Lock()
	defer eng.mu.Unlock()
	var err error
	if eng.e != nil {
		runtime.LockOSThread()
		var cerr *C.char
		if st := C.aegis_engine_collector_close(eng.e, -1, nil, &cerr); st != C.AEGIS_NO_COLLECTOR {
			err = check(st, cerr)
		} else {
			C.aegis_string_free(cerr)
		}
		runtime.UnlockOSThread()
		C.aegis_engine_free(eng.e)
		eng.e = nil
		deleteHandles(eng.handles)
		eng.handles = nil
		runtime.SetFinalizer(eng, nil)
	}
	return err
}

// with runs f with the live engine under the read lock, on a locked OS thread (so that
// check reads the error of this very call).
func (eng *Engine) with(f func(e *C.aegis_engine) error) error {
	eng.mu.RLock()
	defer eng.mu.RUnlock()
	if eng.e == nil {
		return ErrClosed
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return f(eng.e)
}

// EvaluateJSON decides a request given as JSON text (SPEC §1) and returns the decision
// as one line of canonical JSON, byte-identical to `aegis eval`. This is the way for
// JSON text from outside: the core refuses duplicate keys, unknown or mis-cased fields
// and lone surrogates (a host json.Unmarshal into a map would keep the last duplicate).
func (eng *Engine) EvaluateJSON(requestJSON string) (string, error) {
	var out string
	err := eng.with(func(e *C.aegis_engine) error {
		var cout, cerr *C.char
		st := C.aegis_evaluate_json(e, charPtr(requestJSON), C.size_t(len(requestJSON)), &cout, &cerr)
		runtime.KeepAlive(requestJSON)
		if err := check(st, cerr); err != nil {
			return err
		}
		out = takeString(cout)
		return nil
	})
	return out, err
}

// Kill kills scope ("agent", "tool", "session", "all") / id ("*" for all): later
// evaluations are denied with reason (empty: the default reason). A NUL byte or invalid
// UTF-8 in any argument is refused (invalid_argument), never cut short.
func (eng *Engine) Kill(scope, id, reason string) error {
	cs, err := cStrings(argError, scope, "scope", id, "id", reason, "reason")
	if err != nil {
		return err
	}
	defer freeStrings(cs)
	return eng.with(func(e *C.aegis_engine) error {
		var cerr *C.char
		return check(C.aegis_engine_kill(e, cs[0], cs[1], cs[2], &cerr), cerr)
	})
}

// Revive lifts a kill and reports whether one was in force. A NUL byte or invalid UTF-8
// in an argument is refused (invalid_argument): `Revive("agent", "bot\x00x")` never
// revives `bot`.
func (eng *Engine) Revive(scope, id string) (bool, error) {
	cs, err := cStrings(argError, scope, "scope", id, "id")
	if err != nil {
		return false, err
	}
	defer freeStrings(cs)
	var was C.bool
	err = eng.with(func(e *C.aegis_engine) error {
		var cerr *C.char
		return check(C.aegis_engine_revive(e, cs[0], cs[1], &was, &cerr), cerr)
	})
	return bool(was), err
}

// Grant issues a grant token for approvalID by approver, valid ttlSeconds from now
// (the engine needs an approval key). A NUL byte or invalid UTF-8 in an argument is
// refused (invalid_argument), never cut short.
func (eng *Engine) Grant(approvalID, approver string, ttlSeconds uint64) (string, error) {
	cs, err := cStrings(argError, approvalID, "approval_id", approver, "approver")
	if err != nil {
		return "", err
	}
	defer freeStrings(cs)
	var tok string
	err = eng.with(func(e *C.aegis_engine) error {
		var cout, cerr *C.char
		if err := check(C.aegis_engine_grant(e, cs[0], cs[1], C.uint64_t(ttlSeconds), &cout, &cerr), cerr); err != nil {
			return err
		}
		tok = takeString(cout)
		return nil
	})
	return tok, err
}

// Reload reloads the bundle from its path (engines from NewEngineFromPath); on failure
// the old bundle stays in force.
func (eng *Engine) Reload() error {
	return eng.with(func(e *C.aegis_engine) error {
		var cerr *C.char
		return check(C.aegis_engine_reload(e, &cerr), cerr)
	})
}

// ReloadYAML replaces the bundle with one from YAML text; on failure the old stays.
func (eng *Engine) ReloadYAML(yaml string) error {
	return eng.with(func(e *C.aegis_engine) error {
		var cerr *C.char
		st := C.aegis_engine_reload_yaml(e, charPtr(yaml), C.size_t(len(yaml)), &cerr)
		runtime.KeepAlive(yaml)
		return check(st, cerr)
	})
}

// PolicyHash is the hash of the bundle in force (64 hex digits).
func (eng *Engine) PolicyHash() (string, error) {
	var h string
	err := eng.with(func(e *C.aegis_engine) error {
		var cout, cerr *C.char
		if err := check(C.aegis_engine_policy_hash(e, &cout, &cerr), cerr); err != nil {
			return err
		}
		h = takeString(cout)
		return nil
	})
	return h, err
}

// ChainHead is the head of the audit chain: the seq the next record gets and the hash
// of the last record (64 zeros before the first).
func (eng *Engine) ChainHead() (uint64, string, error) {
	var seq C.uint64_t
	var h string
	err := eng.with(func(e *C.aegis_engine) error {
		var cout, cerr *C.char
		if err := check(C.aegis_engine_chain_head(e, &seq, &cout, &cerr), cerr); err != nil {
			return err
		}
		h = takeString(cout)
		return nil
	})
	return uint64(seq), h, err
}

// requestBufs recycles the buffers Evaluate encodes requests into.
var requestBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// evaluateBytes is EvaluateJSON for a request already encoded in b.
func (eng *Engine) evaluateBytes(b []byte) (string, error) {
	eng.mu.RLock()
	defer eng.mu.RUnlock()
	if eng.e == nil {
		return "", ErrClosed
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var cout, cerr *C.char
	st := C.aegis_evaluate_json(eng.e, (*C.char)(unsafe.Pointer(unsafe.SliceData(b))), C.size_t(len(b)), &cout, &cerr)
	runtime.KeepAlive(b)
	if err := check(st, cerr); err != nil {
		return "", err
	}
	return takeString(cout), nil
}

// encodeRequest encodes req into a pooled buffer (give it back with putRequestBuf).
func encodeRequest(req *Request) (*[]byte, []byte, error) {
	bp := requestBufs.Get().(*[]byte)
	b, err := appendRequest((*bp)[:0], req, defaultMaxBytes, defaultMaxDepth)
	if err != nil {
		requestBufs.Put(bp)
		return nil, nil, err
	}
	return bp, b, nil
}

func putRequestBuf(bp *[]byte, b []byte) {
	if cap(b) <= 1<<16 {
		*bp = b[:0]
		requestBufs.Put(bp)
	}
}

// Evaluate decides a typed request. Params and Context are converted strictly and
// bounded as they are walked (docs/go.md): []byte, invalid UTF-8, NaN/±Inf, structs,
// channels and functions are request errors (request_invalid), never base64 or U+FFFD;
// numbers are written exactly (beyond ±(2^53−1) the core refuses them); cycles, nesting
// deeper than 64 and values whose expanded size passes 1 MiB are refused before they
// can use much memory. The decision line is decoded without reflection.
func (eng *Engine) Evaluate(req Request) (Decision, error) {
	bp, b, err := encodeRequest(&req)
	if err != nil {
		return Decision{}, err
	}
	line, err := eng.evaluateBytes(b)
	putRequestBuf(bp, b)
	if err != nil {
		return Decision{}, err
	}
	return ParseDecision(line)
}

// EvaluateOutcome decides a typed request and returns only its outcome — for callers
// that need nothing else (the audit record is still written). It skips building and
// decoding the decision line (aegis_evaluate).
func (eng *Engine) EvaluateOutcome(req Request) (Outcome, error) {
	bp, b, err := encodeRequest(&req)
	if err != nil {
		return "", err
	}
	defer putRequestBuf(bp, b)
	eng.mu.RLock()
	defer eng.mu.RUnlock()
	if eng.e == nil {
		return "", ErrClosed
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var o C.aegis_outcome
	var cerr *C.char
	st := C.aegis_evaluate(eng.e, (*C.char)(unsafe.Pointer(unsafe.SliceData(b))), C.size_t(len(b)), &o, &cerr)
	runtime.KeepAlive(b)
	if err := check(st, cerr); err != nil {
		return "", err
	}
	switch o {
	case C.AEGIS_OUTCOME_ALLOW:
		return Allow, nil
	case C.AEGIS_OUTCOME_REQUIRE_APPROVAL:
		return RequireApproval, nil
	}
	return Deny, nil
}
