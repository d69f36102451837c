// A tiny service that guards a payments tool with Aegis (policies/finance).
//
// From the repository root:
//
//	cargo build --release -j2 -p aegis-ffi
//	cd examples/go && go run . ../../policies/finance
package main

import (
	"errors"
	"fmt"
	"log"
	"os"

	"aegis.example/aegis"
)

// pay is the tool being guarded.
func pay(amount float64, currency string) { fmt.Printf("  -> paid %.2f %s\n", amount, currency) }

// guardedPay decides the call and runs the tool only when it is allowed.
func guardedPay(e *aegis.Engine, amount float64, currency string) error {
	d, err := e.Evaluate(aegis.Request{
		Agent: "finance-agent", Tool: "payments", Action: "create", Session: "example",
		Params: map[string]any{"amount": amount, "currency": currency, "payee": "acme"},
	})
	if err != nil {
		// No decision: fail closed. err is an *aegis.Error with a stable Code
		// (request_invalid, audit_failed, …).
		var ae *aegis.Error
		if errors.As(err, &ae) {
			return fmt.Errorf("no decision (%s): %w", ae.Code, err)
		}
		return err
	}
	fmt.Printf("%.2f %s: %s (%s)\n", amount, currency, d.Outcome, d.Reason)
	switch d.Outcome {
	case aegis.Allow:
		pay(amount, currency)
		return nil
	case aegis.RequireApproval:
		return fmt.Errorf("approval %s needed from %v", d.Approval.ID, d.Approval.Approvers)
	default:
		return errors.New("denied: " + d.Reason)
	}
}

func main() {
	path := "../../policies/finance"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	// Every With… option writes into one configuration document, validated by the core
	// (the same validator, and messages, as in Python, Node and C).
	opts := []aegis.Option{aegis.WithRequestMaxBytes(64 << 10)}
	// An approval key from the environment: when AEGIS_APPROVAL_KEY is set but empty the
	// engine refuses it (config_invalid) rather than accepting grants MACed with "".
	if k, ok := os.LookupEnv("AEGIS_APPROVAL_KEY"); ok {
		opts = append(opts, aegis.WithApprovalKey([]byte(k)))
	}
	// An audit file (locked while the engine lives), synced in batches.
	if f := os.Getenv("AEGIS_AUDIT_FILE"); f != "" {
		opts = append(opts, aegis.WithAuditFile(f), aegis.WithFsync(aegis.FsyncBatch))
	}
	e, err := aegis.NewEngineFromPath(path, opts...)
	if err != nil {
		var ae *aegis.Error
		if errors.As(err, &ae) && ae.Code == aegis.CodeConfigInvalid {
			// e.g. field "approval_key": "`approval_key` is empty; an empty HMAC key lets anyone forge what it protects"
			log.Fatalf("option %s refused: %s", ae.Field, ae.Message)
		}
		log.Fatal(err) // policy_invalid: err lists every load error, ae.Errors has their locations
	}
	defer e.Close()
	for _, c := range []struct {
		amount   float64
		currency string
	}{{120, "USD"}, {18500, "EUR"}, {90000, "USD"}} {
		if err := guardedPay(e, c.amount, c.currency); err != nil {
			fmt.Println("  not run:", err)
		}
	}
}
