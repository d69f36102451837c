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
		return err // no decision (bad request, audit write failed): fail closed
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
	e, err := aegis.NewEngineFromPath(path)
	if err != nil {
		log.Fatal(err)
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
