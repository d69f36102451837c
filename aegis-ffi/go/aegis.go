// Package aegis is the Go binding of Aegis, a policy-decision engine for AI agents'
// tool calls. It wraps the C ABI (libaegis, crate aegis-ffi) with cgo.
//
// Build libaegis first (from the repository root):
//
//	cargo build --release -j2 -p aegis-ffi
//
// The package links target/release/libaegis.a statically, so binaries and tests need
// no LD_LIBRARY_PATH. An Engine is safe for concurrent use. Engines are configured with
// With… options (options.go), which build the one configuration document of SPEC §17.
package aegis

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#cgo LDFLAGS: ${SRCDIR}/../../target/release/libaegis.a -lpthread -ldl -lm
#include <stdlib.h>
#include <stdint.h>
#include "aegis.h"
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
	limits  limits       // the request bounds, for Evaluate's encoder
}

// newEngine builds the options on a locked OS thread and opens an engine with them
// (open is aegis_engine_from_path_with or aegis_engine_from_yaml_with).
func newEngine(opts []Option, open func(*C.aegis_engine_options, **C.aegis_engine, **C.char) C.aegis_status) (*Engine, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	co, handles, lim, err := cOptions(opts)
	if err != nil {
		return nil, err
	}
	defer C.aegis_engine_options_free(co)
	var e *C.aegis_engine
	var cerr *C.char
	if err := check(open(co, &e, &cerr), cerr); err != nil {
		deleteHandles(handles)
		return nil, err
	}
	eng := &Engine{e: e, handles: handles, limits: lim}
	runtime.SetFinalizer(eng, func(eng *Engine) { _ = eng.Close() })
	return eng, nil
}

// NewEngineFromPath loads a bundle from a file or directory. A path with a NUL byte
// is refused (invalid_argument), never cut short.
func NewEngineFromPath(path string, opts ...Option) (*Engine, error) {
	cpath, err := cString(path, "path", argError)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cpath))
	return newEngine(opts, func(co *C.aegis_engine_options, out **C.aegis_engine, cerr **C.char) C.aegis_status {
		return C.aegis_engine_from_path_with(cpath, co, out, cerr)
	})
}

// NewEngineFromYAML loads a bundle from YAML text (errors name the file `<yaml>`).
func NewEngineFromYAML(yaml string, opts ...Option) (*Engine, error) {
	return newEngine(opts, func(co *C.aegis_engine_options, out **C.aegis_engine, cerr **C.char) C.aegis_status {
		st := C.aegis_engine_from_yaml_with(charPtr(yaml), C.size_t(len(yaml)), co, out, cerr)
		runtime.KeepAlive(yaml)
		return st
	})
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

// callString runs call on the live engine (see with) and returns the string it gives
// in out (copied and freed); checkFn turns its status into an error.
func (eng *Engine) callString(checkFn func(C.aegis_status, *C.char) error,
	call func(e *C.aegis_engine, out, cerr **C.char) C.aegis_status) (string, error) {
	var s string
	err := eng.with(func(e *C.aegis_engine) error {
		var cout, cerr *C.char
		if err := checkFn(call(e, &cout, &cerr), cerr); err != nil {
			return err
		}
		s = takeString(cout)
		return nil
	})
	return s, err
}

// EvaluateJSON decides a request given as JSON text (SPEC §1) and returns the decision
// as one line of canonical JSON, byte-identical to `aegis eval`. This is the way for
// JSON text from outside: the core refuses duplicate keys, unknown or mis-cased fields
// and lone surrogates (a host json.Unmarshal into a map would keep the last duplicate).
func (eng *Engine) EvaluateJSON(requestJSON string) (string, error) {
	return eng.callString(check, func(e *C.aegis_engine, out, cerr **C.char) C.aegis_status {
		st := C.aegis_evaluate_json(e, charPtr(requestJSON), C.size_t(len(requestJSON)), out, cerr)
		runtime.KeepAlive(requestJSON)
		return st
	})
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

// Marks returns the session's live marks (SPEC §10) at the engine's clock, sorted
// ([]string{} when none is live). A bad session — empty, over 256 bytes, a control
// character — is refused with invalid_argument, and so is a NUL byte or invalid UTF-8
// (never cut short by C); from inside one of the engine's audit callbacks it is
// audit_failed.
func (eng *Engine) Marks(session string) ([]string, error) {
	cs, err := cString(session, "session", argError)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cs))
	line, err := eng.callString(check, func(e *C.aegis_engine, out, cerr **C.char) C.aegis_status {
		return C.aegis_engine_marks(e, cs, out, cerr)
	})
	if err != nil {
		return nil, err
	}
	marks := []string{}
	if err := json.Unmarshal([]byte(line), &marks); err != nil {
		return nil, newError(StatusPanic, "", "cannot parse marks: "+err.Error())
	}
	return marks, nil
}

// ClearMarks forgets the session's marks (SPEC §10, an operator's act) and reports
// whether it had live ones. Errors as Marks.
func (eng *Engine) ClearMarks(session string) (bool, error) {
	cs, err := cString(session, "session", argError)
	if err != nil {
		return false, err
	}
	defer C.free(unsafe.Pointer(cs))
	var cleared C.bool
	err = eng.with(func(e *C.aegis_engine) error {
		var cerr *C.char
		return check(C.aegis_engine_clear_marks(e, cs, &cleared, &cerr), cerr)
	})
	return bool(cleared), err
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
	return eng.callString(check, func(e *C.aegis_engine, out, cerr **C.char) C.aegis_status {
		return C.aegis_engine_grant(e, cs[0], cs[1], C.uint64_t(ttlSeconds), out, cerr)
	})
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
	return eng.callString(check, func(e *C.aegis_engine, out, cerr **C.char) C.aegis_status {
		return C.aegis_engine_policy_hash(e, out, cerr)
	})
}

// ChainHead is the head of the audit chain: the seq the next record gets and the hash
// of the last record (64 zeros before the first).
func (eng *Engine) ChainHead() (uint64, string, error) {
	var seq C.uint64_t
	h, err := eng.callString(check, func(e *C.aegis_engine, out, cerr **C.char) C.aegis_status {
		return C.aegis_engine_chain_head(e, &seq, out, cerr)
	})
	return uint64(seq), h, err
}

// requestBufs recycles the buffers Evaluate encodes requests into.
var requestBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// evaluateBytes is EvaluateJSON for a request already encoded in b.
func (eng *Engine) evaluateBytes(b []byte) (string, error) {
	return eng.callString(check, func(e *C.aegis_engine, out, cerr **C.char) C.aegis_status {
		st := C.aegis_evaluate_json(e, bytesPtr(b), C.size_t(len(b)), out, cerr)
		runtime.KeepAlive(b)
		return st
	})
}

// bytesPtr points C at b's bytes.
func bytesPtr(b []byte) *C.char { return (*C.char)(unsafe.Pointer(unsafe.SliceData(b))) }

// encodeRequest encodes req into a pooled buffer (give it back with putRequestBuf),
// bounded by the engine's request limits.
func (eng *Engine) encodeRequest(req *Request) (*[]byte, []byte, error) {
	bp := requestBufs.Get().(*[]byte)
	b, err := appendRequest((*bp)[:0], req, eng.limits.maxBytes, eng.limits.maxDepth)
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
// deeper than the engine's request depth (64 unless WithRequestMaxDepth) and values
// whose expanded size passes its request size (1 MiB unless WithRequestMaxBytes) are
// refused before they can use much memory. The decision line is decoded without reflection.
func (eng *Engine) Evaluate(req Request) (Decision, error) {
	bp, b, err := eng.encodeRequest(&req)
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
	bp, b, err := eng.encodeRequest(&req)
	if err != nil {
		return "", err
	}
	defer putRequestBuf(bp, b)
	var o C.aegis_outcome
	err = eng.with(func(e *C.aegis_engine) error {
		var cerr *C.char
		st := C.aegis_evaluate(e, bytesPtr(b), C.size_t(len(b)), &o, &cerr)
		runtime.KeepAlive(b)
		return check(st, cerr)
	})
	if err != nil {
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
