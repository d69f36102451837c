package aegis

/*
#include <stddef.h>
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// aegisGoAuditCallback is the C audit callback behind WithAuditCallback: user is the
// cgo.Handle of the Go function. It runs synchronously on the evaluating goroutine
// (its OS thread), under the engine's record lock. A returned error or a panic is a
// non-zero return: the core fails that evaluation with audit_failed.
//
//export aegisGoAuditCallback
func aegisGoAuditCallback(user unsafe.Pointer, record *C.char, n C.size_t) (rc C.int) {
	defer func() {
		if recover() != nil {
			rc = 2
		}
	}()
	f, ok := cgo.Handle(uintptr(user)).Value().(func(string) error)
	if !ok {
		return 3
	}
	if err := f(C.GoStringN(record, C.int(n))); err != nil {
		return 1
	}
	return 0
}
