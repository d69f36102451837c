package aegis

/*
#include "aegis.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Status is a libaegis status code (stable numbers, as in aegis.h).
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
	// StatusConfigInvalid: an engine option was refused (code config_invalid).
	StatusConfigInvalid Status = C.AEGIS_CONFIG_INVALID
	// StatusClosed is Go-only: the Engine was closed (code invalid_argument).
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
	case StatusConfigInvalid:
		return "invalid configuration"
	case StatusClosed:
		return "engine closed"
	}
	return fmt.Sprintf("status %d", int(s))
}

// The stable error codes of SPEC §17 (Error.Code).
const (
	CodePolicyInvalid   = "policy_invalid"   // the bundle did not load (Errors lists every problem)
	CodeRequestInvalid  = "request_invalid"  // the request breaks SPEC §1: nothing decided or recorded
	CodeConfigInvalid   = "config_invalid"   // an engine option was refused
	CodeInvalidArgument = "invalid_argument" // a bad kill scope, grant argument, NUL in a name, closed engine…
	CodeAuditFailed     = "audit_failed"     // an audit sink failed: the tool call must not run
	CodeCollectorFailed = "collector_failed" // the collector could not deliver in time
	CodeIO              = "io"               // another file-system error
)

// Code is the §17 code a status stands for (the table of docs/c.md).
func (s Status) Code() string {
	switch s {
	case StatusInvalidRequest:
		return CodeRequestInvalid
	case StatusPolicyError:
		return CodePolicyInvalid
	case StatusIOError:
		return CodeAuditFailed
	case StatusCollectorError:
		return CodeCollectorFailed
	case StatusConfigInvalid:
		return CodeConfigInvalid
	case StatusPanic:
		return CodeIO
	}
	return CodeInvalidArgument
}

// ErrorLocation is one load error of a bundle (Error.Errors, code policy_invalid).
type ErrorLocation struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
	Help    string `json:"help,omitempty"`
}

// Error is returned by every failing call (SPEC §17): the stable Code, the libaegis
// Status, the Message (the core's own, the same in every language), the option or
// request Field at fault ("" when none) and, for policy_invalid, every load error in
// Errors (its Message is the first one and how many more). Code audit_failed
// (StatusIOError) means the audit record could not be written: the tool call must not
// run. Errors from libaegis are decoded from aegis_last_error_json.
type Error struct {
	Code    string
	Status  Status
	Message string
	Field   string
	Errors  []ErrorLocation
}

// Error is "aegis: STATUS: MESSAGE", or for load errors every one of them, one per line
// (`FILE:LINE:COLUMN: error: MESSAGE — HELP`).
func (e *Error) Error() string {
	if len(e.Errors) == 0 {
		return "aegis: " + e.Status.String() + ": " + e.Message
	}
	var b strings.Builder
	b.WriteString("aegis: " + e.Status.String() + ":")
	for _, l := range e.Errors {
		fmt.Fprintf(&b, "\n%s:%d:%d: error: %s", l.File, l.Line, l.Column, l.Message)
		if l.Help != "" {
			b.WriteString(" — " + l.Help)
		}
	}
	return b.String()
}

// Is lets errors.Is(err, &aegis.Error{Code: aegis.CodeRequestInvalid}) (or
// &aegis.Error{Status: aegis.StatusInvalidRequest}) match: every non-zero field of the
// target (Code, Status, Message, Field) must be equal.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && (t.Status == 0 || t.Status == e.Status) && (t.Code == "" || t.Code == e.Code) &&
		(t.Message == "" || t.Message == e.Message) && (t.Field == "" || t.Field == e.Field)
}

// ErrClosed is returned by calls on a closed Engine.
var ErrClosed = &Error{Code: CodeInvalidArgument, Status: StatusClosed, Message: "the engine is closed"}

// newError is an error made on the Go side (the code follows from the status).
func newError(st Status, field, msg string) *Error {
	return &Error{Code: st.Code(), Status: st, Message: msg, Field: field}
}

// requestError is a request refused before it reaches the core, worded as the core
// words its own (`invalid request: …`).
func requestError(field, msg string) *Error {
	return newError(StatusInvalidRequest, field, "invalid request: "+msg)
}

// configError is a refused option.
func configError(field, msg string) *Error { return newError(StatusConfigInvalid, field, msg) }

// argError is a bad argument to a control function.
func argError(field, msg string) *Error { return newError(StatusInvalidArgument, field, msg) }

// lastError is aegis_last_error_json, decoded.
type lastError struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Field   string          `json:"field"`
	Errors  []ErrorLocation `json:"errors"`
}

// check turns a status and an error string (freed here) into an error. It must run on
// the OS thread that made the call (runtime.LockOSThread around both): the error is
// decoded from that thread's aegis_last_error_json — code, message, field and load
// errors as the core made them; error_out is only the fallback.
func check(st C.aegis_status, cerr *C.char) error {
	if cerr != nil {
		defer C.aegis_string_free(cerr)
	}
	if st == C.AEGIS_OK {
		return nil
	}
	var le lastError
	if j := C.aegis_last_error_json(); j == nil || json.Unmarshal([]byte(C.GoString(j)), &le) != nil || le.Code == "" {
		le = lastError{Code: Status(st).Code()}
		if cerr != nil {
			le.Message = C.GoString(cerr)
		}
	}
	e := &Error{Code: le.Code, Status: Status(st), Message: le.Message, Field: le.Field}
	if len(le.Errors) > 0 {
		e.Errors = le.Errors
	}
	return e
}
