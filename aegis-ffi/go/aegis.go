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
#include "aegis.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Status is a libaegis status code (stable numbers).
type Status int

// Status codes, as in aegis.h.
const (
	StatusOK              Status = C.AEGIS_OK
	StatusNullParameter   Status = C.AEGIS_NULL_PARAMETER
	StatusInvalidUTF8     Status = C.AEGIS_INVALID_UTF8
	StatusInvalidRequest  Status = C.AEGIS_INVALID_REQUEST
	StatusPolicyError     Status = C.AEGIS_POLICY_ERROR
	StatusIOError         Status = C.AEGIS_IO_ERROR
	StatusInvalidArgument Status = C.AEGIS_INVALID_ARGUMENT
	StatusPanic           Status = C.AEGIS_PANIC
	// StatusNoCollector: a collector method on an Engine without a collector (ErrNoCollector).
	StatusNoCollector Status = C.AEGIS_NO_COLLECTOR
	// StatusCollectorError: the collector could not deliver in time (FlushCollector,
	// CloseCollector, Close); nothing is lost, the records stay in the audit file.
	StatusCollectorError Status = C.AEGIS_COLLECTOR_ERROR
	// StatusClosed is Go-only: the Engine was closed.
	StatusClosed Status = 100
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNullParameter:
		return "null parameter"
	case StatusInvalidUTF8:
		return "invalid UTF-8"
	case StatusInvalidRequest:
		return "invalid request"
	case StatusPolicyError:
		return "policy error"
	case StatusIOError:
		return "audit I/O error"
	case StatusInvalidArgument:
		return "invalid argument"
	case StatusPanic:
		return "internal panic"
	case StatusNoCollector:
		return "no collector"
	case StatusCollectorError:
		return "collector error"
	case StatusClosed:
		return "engine closed"
	}
	return fmt.Sprintf("status %d", int(s))
}

// Error is returned by every failing call: the status and libaegis' message. For
// StatusPolicyError the message lists every load error, one per line
// (`FILE:LINE:COLUMN: error: MESSAGE`). StatusIOError means the audit record could not
// be written: the tool call must not run.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string { return "aegis: " + e.Status.String() + ": " + e.Message }

// Is lets errors.Is(err, &aegis.Error{Status: aegis.StatusInvalidRequest}) match on status.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status && (t.Message == "" || t.Message == e.Message)
}

// ErrClosed is returned by calls on a closed Engine.
var ErrClosed = &Error{Status: StatusClosed, Message: "the engine is closed"}

// check turns a status and an error string (freed here) into an error.
func check(st C.aegis_status, cerr *C.char) error {
	if cerr != nil {
		defer C.aegis_string_free(cerr)
	}
	if st == C.AEGIS_OK {
		return nil
	}
	msg := ""
	if cerr != nil {
		msg = C.GoString(cerr)
	}
	return &Error{Status: Status(st), Message: msg}
}

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
	SigningKey   []byte // HMAC key for record signatures
	SigningKeyID string // `kid` (default: first 16 hex of SHA-256(SigningKey))
	ApprovalKey  []byte // HMAC key for approval grants
	AuditFile    string // append records to this JSONL file ("" = none)
	AuditFsync   Fsync  // when AuditFile is set
	// Collector ships AuditFile to an OpenTelemetry collector (nil = none; needs AuditFile).
	Collector *CollectorConfig

	rawCollector *string // the collector JSON as is (tests: keys a CollectorConfig cannot spell)
}

// Option changes Options (functional options).
type Option func(*Options)

// WithSigningKey sets the record signing key.
func WithSigningKey(key []byte) Option { return func(o *Options) { o.SigningKey = key } }

// WithSigningKeyID sets the key id written as `kid`.
func WithSigningKeyID(kid string) Option { return func(o *Options) { o.SigningKeyID = kid } }

// WithApprovalKey sets the approval grant key.
func WithApprovalKey(key []byte) Option { return func(o *Options) { o.ApprovalKey = key } }

// WithAuditFile appends every record to path (JSONL), synced per fsync.
func WithAuditFile(path string, fsync Fsync) Option {
	return func(o *Options) { o.AuditFile = path; o.AuditFsync = fsync }
}

// WithOptions sets all options at once.
func WithOptions(opts Options) Option { return func(o *Options) { *o = opts } }

// cOptions builds an aegis_engine_options; the caller frees it.
func cOptions(opts []Option) (*C.aegis_engine_options, error) {
	var o Options
	for _, f := range opts {
		f(&o)
	}
	co := C.aegis_engine_options_new()
	if co == nil {
		return nil, &Error{Status: StatusPanic, Message: "cannot allocate options"}
	}
	var cerr *C.char
	fail := func(err error) (*C.aegis_engine_options, error) {
		C.aegis_engine_options_free(co)
		return nil, err
	}
	if o.SigningKey != nil {
		if err := check(C.aegis_engine_options_set_signing_key(co, bytesPtr(o.SigningKey), C.size_t(len(o.SigningKey)), &cerr), cerr); err != nil {
			return fail(err)
		}
	}
	if o.SigningKeyID != "" {
		s := C.CString(o.SigningKeyID)
		defer C.free(unsafe.Pointer(s))
		if err := check(C.aegis_engine_options_set_signing_key_id(co, s, &cerr), cerr); err != nil {
			return fail(err)
		}
	}
	if o.ApprovalKey != nil {
		if err := check(C.aegis_engine_options_set_approval_key(co, bytesPtr(o.ApprovalKey), C.size_t(len(o.ApprovalKey)), &cerr), cerr); err != nil {
			return fail(err)
		}
	}
	if o.AuditFile != "" {
		s := C.CString(o.AuditFile)
		defer C.free(unsafe.Pointer(s))
		if err := check(C.aegis_engine_options_set_audit_file(co, s, C.int(o.AuditFsync), &cerr), cerr); err != nil {
			return fail(err)
		}
	}
	if o.Collector != nil || o.rawCollector != nil {
		var b []byte
		var err error
		if o.rawCollector != nil {
			b = []byte(*o.rawCollector)
		} else if b, err = json.Marshal(*o.Collector); err != nil {
			return fail(&Error{Status: StatusInvalidArgument, Message: "invalid collector configuration: " + err.Error()})
		}
		st := C.aegis_engine_options_set_collector(co, (*C.char)(unsafe.Pointer(unsafe.SliceData(b))), C.size_t(len(b)), &cerr)
		runtime.KeepAlive(b)
		if err := check(st, cerr); err != nil {
			return fail(err)
		}
	}
	return co, nil
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
	mu sync.RWMutex
	e  *C.aegis_engine
}

func newEngine(e *C.aegis_engine) *Engine {
	eng := &Engine{e: e}
	runtime.SetFinalizer(eng, func(eng *Engine) { _ = eng.Close() })
	return eng
}

// NewEngineFromPath loads a bundle from a file or directory.
func NewEngineFromPath(path string, opts ...Option) (*Engine, error) {
	co, err := cOptions(opts)
	if err != nil {
		return nil, err
	}
	defer C.aegis_engine_options_free(co)
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var e *C.aegis_engine
	var cerr *C.char
	if err := check(C.aegis_engine_from_path_with(cpath, co, &e, &cerr), cerr); err != nil {
		return nil, err
	}
	return newEngine(e), nil
}

// NewEngineFromYAML loads a bundle from YAML text (errors name the file `<yaml>`).
func NewEngineFromYAML(yaml string, opts ...Option) (*Engine, error) {
	co, err := cOptions(opts)
	if err != nil {
		return nil, err
	}
	defer C.aegis_engine_options_free(co)
	var e *C.aegis_engine
	var cerr *C.char
	st := C.aegis_engine_from_yaml_with(charPtr(yaml), C.size_t(len(yaml)), co, &e, &cerr)
	runtime.KeepAlive(yaml)
	if err := check(st, cerr); err != nil {
		return nil, err
	}
	return newEngine(e), nil
}

// Close frees the engine. Idempotent; waits for calls in flight; later calls return
// ErrClosed. With a collector it first closes the collector (as CloseCollector with the
// configured CloseTimeout, so it may block that long) and returns its error, if any
// (StatusCollectorError: the final attempt left records undelivered); the engine is
// freed either way.
func (eng *Engine) Close() error {
	eng.mu.Lock()
	defer eng.mu.Unlock()
	var err error
	if eng.e != nil {
		var cerr *C.char
		if st := C.aegis_engine_collector_close(eng.e, -1, nil, &cerr); st != C.AEGIS_NO_COLLECTOR {
			err = check(st, cerr)
		} else {
			C.aegis_string_free(cerr)
		}
		C.aegis_engine_free(eng.e)
		eng.e = nil
		runtime.SetFinalizer(eng, nil)
	}
	return err
}

// with runs f with the live engine under the read lock.
func (eng *Engine) with(f func(e *C.aegis_engine) error) error {
	eng.mu.RLock()
	defer eng.mu.RUnlock()
	if eng.e == nil {
		return ErrClosed
	}
	return f(eng.e)
}

// EvaluateJSON decides a request given as JSON text (SPEC §1) and returns the decision
// as one line of canonical JSON, byte-identical to `aegis eval`.
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
// evaluations are denied with reason (empty: the default reason).
func (eng *Engine) Kill(scope, id, reason string) error {
	return eng.with(func(e *C.aegis_engine) error {
		cs, ci, cr := C.CString(scope), C.CString(id), C.CString(reason)
		defer C.free(unsafe.Pointer(cs))
		defer C.free(unsafe.Pointer(ci))
		defer C.free(unsafe.Pointer(cr))
		var cerr *C.char
		return check(C.aegis_engine_kill(e, cs, ci, cr, &cerr), cerr)
	})
}

// Revive lifts a kill and reports whether one was in force.
func (eng *Engine) Revive(scope, id string) (bool, error) {
	var was C.bool
	err := eng.with(func(e *C.aegis_engine) error {
		cs, ci := C.CString(scope), C.CString(id)
		defer C.free(unsafe.Pointer(cs))
		defer C.free(unsafe.Pointer(ci))
		var cerr *C.char
		return check(C.aegis_engine_revive(e, cs, ci, &was, &cerr), cerr)
	})
	return bool(was), err
}

// Grant issues a grant token for approvalID by approver, valid ttlSeconds from now
// (the engine needs an approval key).
func (eng *Engine) Grant(approvalID, approver string, ttlSeconds uint64) (string, error) {
	var tok string
	err := eng.with(func(e *C.aegis_engine) error {
		ca, cw := C.CString(approvalID), C.CString(approver)
		defer C.free(unsafe.Pointer(ca))
		defer C.free(unsafe.Pointer(cw))
		var cout, cerr *C.char
		if err := check(C.aegis_engine_grant(e, ca, cw, C.uint64_t(ttlSeconds), &cout, &cerr), cerr); err != nil {
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

// requestBufs recycles the buffers Evaluate encodes requests into.
var requestBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// evaluateBytes is EvaluateJSON for a request already encoded in b.
func (eng *Engine) evaluateBytes(b []byte) (string, error) {
	eng.mu.RLock()
	defer eng.mu.RUnlock()
	if eng.e == nil {
		return "", ErrClosed
	}
	var cout, cerr *C.char
	st := C.aegis_evaluate_json(eng.e, (*C.char)(unsafe.Pointer(unsafe.SliceData(b))), C.size_t(len(b)), &cout, &cerr)
	runtime.KeepAlive(b)
	if err := check(st, cerr); err != nil {
		return "", err
	}
	return takeString(cout), nil
}

// encodeRequest encodes req into a pooled buffer (give it back with requestBufs.Put).
func encodeRequest(req *Request) (*[]byte, []byte, error) {
	bp := requestBufs.Get().(*[]byte)
	b, err := appendRequest((*bp)[:0], req)
	if err != nil {
		requestBufs.Put(bp)
		return nil, nil, &Error{Status: StatusInvalidRequest, Message: err.Error()}
	}
	return bp, b, nil
}

// Evaluate decides a typed request. The request is encoded and the decision line decoded
// without reflection (falling back to encoding/json for values outside the common
// types), with the same results as EvaluateJSON plus encoding/json on both sides.
func (eng *Engine) Evaluate(req Request) (Decision, error) {
	bp, b, err := encodeRequest(&req)
	if err != nil {
		return Decision{}, err
	}
	line, err := eng.evaluateBytes(b)
	if cap(b) <= 1<<16 {
		*bp = b
		requestBufs.Put(bp)
	}
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
	defer func() {
		if cap(b) <= 1<<16 {
			*bp = b
			requestBufs.Put(bp)
		}
	}()
	eng.mu.RLock()
	defer eng.mu.RUnlock()
	if eng.e == nil {
		return "", ErrClosed
	}
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
