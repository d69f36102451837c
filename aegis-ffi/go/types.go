package aegis

import "encoding/json"

// Request is one tool call to decide (SPEC §1). Optional fields are omitted when empty.
type Request struct {
	Agent       string         `json:"agent"`
	Tool        string         `json:"tool"`
	Action      string         `json:"action,omitempty"`
	Params      map[string]any `json:"params,omitempty"`
	Chain       []string       `json:"chain,omitempty"`
	Session     string         `json:"session,omitempty"`
	Environment string         `json:"environment,omitempty"`
	Context     map[string]any `json:"context,omitempty"`
	Time        string         `json:"time,omitempty"`     // RFC 3339; empty: now
	Approval    string         `json:"approval,omitempty"` // a grant token
}

// Outcome of a decision.
type Outcome string

// Outcomes.
const (
	Allow           Outcome = "allow"
	Deny            Outcome = "deny"
	RequireApproval Outcome = "require_approval"
)

// Approval is set when the outcome is RequireApproval.
type Approval struct {
	ID        string   `json:"id"`
	Approvers []string `json:"approvers"`
}

// DecisionError is an evaluation error of one rule (the rule did not hold; fail closed).
type DecisionError struct {
	Rule    string `json:"rule"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Decision is the engine's answer (SPEC §4).
type Decision struct {
	Outcome  Outcome         `json:"outcome"`
	Allowed  bool            `json:"-"` // Outcome == Allow
	Rules    []string        `json:"rules"`
	Reason   string          `json:"reason"`
	Approval *Approval       `json:"approval,omitempty"`
	Errors   []DecisionError `json:"errors"`
	Audit    map[string]any  `json:"audit"` // the audit record (SPEC §5.2)
}

// ParseDecision parses a decision line from EvaluateJSON. Lines in the engine's canonical
// form are decoded without reflection; anything else goes through encoding/json, with the
// same result.
func ParseDecision(line string) (Decision, error) {
	d, err := parseDecisionFast(line)
	if err != nil {
		d = Decision{}
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			return Decision{}, newError(StatusPanic, "", "cannot parse decision: "+err.Error())
		}
	}
	d.Allowed = d.Outcome == Allow
	if d.Rules == nil {
		d.Rules = []string{}
	}
	if d.Errors == nil {
		d.Errors = []DecisionError{}
	}
	return d, nil
}
