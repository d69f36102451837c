// The Go runner of the cross-binding check (tests/cross/run.py): one JSON line per case
// of cases.json — EvaluateJSON of the text, and Evaluate of the text decoded into
// aegis.Request (which decodes strictly), or of a native value for tagged cases.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"

	"aegis.example/aegis"
)

type nativeTag struct {
	Base   string   `json:"base"`
	Set    []string `json:"set"`
	Bytes  *string  `json:"bytes"`
	Int    *string  `json:"int"`
}

type testCase struct {
	Name   string     `json:"name"`
	JSON   *string    `json:"json"`
	Native *nativeTag `json:"native"`
}

type spec struct {
	Policy string     `json:"policy"`
	Cases  []testCase `json:"cases"`
}

func codeOf(err error) string {
	var ae *aegis.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return "not an *aegis.Error: " + err.Error()
}

func fresh(policy string) *aegis.Engine {
	e, err := aegis.NewEngineFromYAML(policy)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cross: policy:", err)
		os.Exit(1)
	}
	return e
}

// native builds the request of a tagged case: the base request with one value the JSON
// text cannot express.
func native(t *nativeTag) (aegis.Request, error) {
	var req aegis.Request
	if err := json.Unmarshal([]byte(t.Base), &req); err != nil {
		return req, err
	}
	var v any
	if t.Bytes != nil {
		v = []byte(*t.Bytes)
	} else {
		n, ok := new(big.Int).SetString(*t.Int, 10)
		switch {
		case ok && n.IsInt64():
			v = n.Int64()
		case ok && n.IsUint64():
			v = n.Uint64()
		default:
			return req, fmt.Errorf("bad int %q", *t.Int)
		}
	}
	if req.Params == nil {
		req.Params = map[string]any{}
	}
	req.Params[t.Set[1]] = v
	return req, nil
}

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var s spec
	if err := json.Unmarshal(raw, &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	for _, c := range s.Cases {
		line := map[string]any{"name": c.Name, "json": nil, "native": nil}
		var req aegis.Request
		haveNative := false
		if c.JSON != nil {
			e := fresh(s.Policy)
			if got, err := e.EvaluateJSON(*c.JSON); err != nil {
				line["json"] = map[string]string{"error": codeOf(err)}
			} else {
				line["json"] = map[string]string{"line": got}
			}
			e.Close()
			if err := json.Unmarshal([]byte(*c.JSON), &req); err != nil {
				var ae *aegis.Error
				if errors.As(err, &ae) {
					line["native"] = map[string]string{"error": ae.Code}
				}
				// Not JSON at all for the host either: nothing to hand to Evaluate.
			} else {
				haveNative = true
			}
		} else {
			r, err := native(c.Native)
			if err != nil {
				fmt.Fprintln(os.Stderr, "cross:", c.Name, err)
				os.Exit(1)
			}
			req, haveNative = r, true
		}
		if haveNative {
			e := fresh(s.Policy)
			if d, err := e.Evaluate(req); err != nil {
				line["native"] = map[string]string{"error": codeOf(err)}
			} else {
				line["native"] = map[string]any{"outcome": d.Outcome, "rules": d.Rules, "hash": d.Audit["hash"]}
			}
			e.Close()
		}
		if err := out.Encode(line); err != nil {
			os.Exit(1)
		}
	}
}
