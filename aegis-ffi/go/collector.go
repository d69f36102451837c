package aegis

/*
#include <stdlib.h>
#include "aegis.h"
*/
import "C"

import (
	"encoding/json"
	"time"
)

// CollectorConfig ships the engine's audit file to an OpenTelemetry collector
// (OTLP/HTTP JSON logs) from a background thread, off the Evaluate path
// (docs/collector.md). It needs the engine's audit sink to be a file (WithAuditFile);
// otherwise the constructor fails with config_invalid (StatusConfigInvalid, Field
// "collector"), as it does for a bad setting. Only Endpoint is required; zero values
// mean the default and are left out of the configuration.
type CollectorConfig struct {
	Endpoint       string            // collector base URL, http:// or https:// (records go to Endpoint/v1/logs)
	Headers        map[string]string // extra request headers (e.g. Authorization)
	ServiceName    string            // resource attribute service.name (default "aegis")
	Batch          int               // records per request at most (default 512, 1..10000)
	BatchAge       time.Duration     // a partial batch is sent when its first record waited this long (default 1 s)
	Gzip           *bool             // gzip request bodies (default true)
	Cursor         string            // where the cursor is kept (default AUDIT_FILE.ship-cursor)
	RequestTimeout time.Duration     // per request (default 10 s)
	MaxBackoff     time.Duration     // cap of the retry backoff (default 30 s)
	CloseTimeout   time.Duration     // bound on the final attempt at close (default 5 s)
}

// ms converts a duration to whole milliseconds, rounding a positive fraction up (so
// 500µs is 1 ms, not the default).
func ms(d time.Duration) int64 {
	if d > 0 {
		return int64((d + time.Millisecond - 1) / time.Millisecond)
	}
	return int64(d / time.Millisecond)
}

// document is the `collector` option of the configuration document: snake_case keys,
// durations as integer milliseconds, zero values left out.
func (c CollectorConfig) document() map[string]any {
	m := map[string]any{}
	if c.Endpoint != "" {
		m["endpoint"] = c.Endpoint
	}
	if c.Headers != nil {
		m["headers"] = c.Headers
	}
	if c.ServiceName != "" {
		m["service_name"] = c.ServiceName
	}
	if c.Batch != 0 {
		m["batch"] = c.Batch
	}
	if c.Gzip != nil {
		m["gzip"] = *c.Gzip
	}
	if c.Cursor != "" {
		m["cursor"] = c.Cursor
	}
	for key, d := range map[string]time.Duration{
		"batch_age_ms":       c.BatchAge,
		"request_timeout_ms": c.RequestTimeout,
		"max_backoff_ms":     c.MaxBackoff,
		"close_timeout_ms":   c.CloseTimeout,
	} {
		if d != 0 {
			m[key] = ms(d)
		}
	}
	return m
}

// MarshalJSON gives the `collector` object WithCollector puts in the configuration
// document (keys sorted), written by the same strict encoder: a header with invalid
// UTF-8 is an error, never U+FFFD.
func (c CollectorConfig) MarshalJSON() ([]byte, error) {
	return encodeOptions(c.document())
}

// CollectorCursor is the last delivered (or set aside) record.
type CollectorCursor struct {
	File   string `json:"file"`
	Offset uint64 `json:"offset"`
	Seq    uint64 `json:"seq"`
	Hash   string `json:"hash"`
}

// CollectorMetrics tell how shipping goes.
type CollectorMetrics struct {
	Shipped           uint64           `json:"shipped"`            // records delivered (2xx) since start
	Pending           uint64           `json:"pending"`            // records in the files not yet delivered
	Retries           uint64           `json:"retries"`            // failed attempts retried
	Batches           uint64           `json:"batches"`            // requests answered 2xx
	RejectedBatches   uint64           `json:"rejected_batches"`   // batches rejected as malformed (400), set aside
	RejectedRecords   uint64           `json:"rejected_records"`   // records in those batches
	PartiallyRejected uint64           `json:"partially_rejected"` // records a collector rejected in a 2xx partialSuccess
	RejectedFiles     []string         `json:"rejected_files"`     // where rejected batches were written
	LastError         string           `json:"last_error"`         // the last error ("" if none)
	Cursor            *CollectorCursor `json:"cursor"`             // nil before the first delivery
}

func parseMetrics(s string) (CollectorMetrics, error) {
	var m CollectorMetrics
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return CollectorMetrics{}, newError(StatusPanic, "", "cannot parse collector metrics: "+err.Error())
	}
	if m.RejectedFiles == nil {
		m.RejectedFiles = []string{}
	}
	return m, nil
}

// ErrNoCollector is returned by the collector methods of an Engine made without
// WithCollector.
var ErrNoCollector = &Error{Code: CodeInvalidArgument, Status: StatusNoCollector, Message: "the engine has no collector (set one with WithCollector)"}

// checkCollector is check, with ErrNoCollector for StatusNoCollector.
func checkCollector(st C.aegis_status, cerr *C.char) error {
	err := check(st, cerr)
	if st == C.AEGIS_NO_COLLECTOR {
		return ErrNoCollector
	}
	return err
}

// CollectorMetrics returns the collector's metrics (the final ones after
// CloseCollector). ErrNoCollector without a collector.
func (eng *Engine) CollectorMetrics() (CollectorMetrics, error) {
	s, err := eng.callString(checkCollector, func(e *C.aegis_engine, out, cerr **C.char) C.aegis_status {
		return C.aegis_engine_collector_metrics(e, out, cerr)
	})
	if err != nil {
		return CollectorMetrics{}, err
	}
	return parseMetrics(s)
}

// FlushCollector blocks until every record in the audit files at the time of the call
// is delivered, up to timeout (negative: 0). Not delivered in time: an *Error with
// StatusCollectorError (shipping goes on). After CloseCollector it succeeds only if
// nothing is pending. ErrNoCollector without a collector. Close waits for it.
func (eng *Engine) FlushCollector(timeout time.Duration) error {
	if timeout < 0 {
		timeout = 0
	}
	return eng.with(func(e *C.aegis_engine) error {
		var cerr *C.char
		return checkCollector(C.aegis_engine_collector_flush(e, C.uint64_t(ms(timeout)), &cerr), cerr)
	})
}

// CloseCollector stops the collector with a final attempt to deliver what is in the
// files, bounded by timeout (negative: the configured CloseTimeout, default 5 s), and
// returns the final metrics. The error (StatusCollectorError) says the final attempt left
// records undelivered; the collector is stopped all the same and the metrics are valid.
// Idempotent: later calls return the first outcome at once. The Engine keeps evaluating
// and writing the audit file (the next collector started on it ships the rest).
// ErrNoCollector without a collector.
func (eng *Engine) CloseCollector(timeout time.Duration) (CollectorMetrics, error) {
	t := int64(-1)
	if timeout >= 0 {
		t = ms(timeout)
	}
	var s string
	var closeErr error
	err := eng.with(func(e *C.aegis_engine) error {
		var cout, cerr *C.char
		closeErr = checkCollector(C.aegis_engine_collector_close(e, C.int64_t(t), &cout, &cerr), cerr)
		s = takeString(cout)
		if cout == nil {
			return closeErr
		}
		return nil
	})
	if err != nil {
		return CollectorMetrics{}, err
	}
	m, err := parseMetrics(s)
	if err != nil {
		return m, err
	}
	return m, closeErr
}
