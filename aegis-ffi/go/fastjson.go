package aegis

// A reflection-free decoder for decision lines (the engine's own canonical output). It
// falls back to encoding/json for anything outside its fast cases, with the same
// result. Requests are encoded by encode.go and decoded strictly by decode.go.

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxFastDepth: deeper decision values are handed to encoding/json.
const maxFastDepth = 64

// errSlow: the fast decoder met something outside its cases; use encoding/json.
var errSlow = errors.New("aegis: fast decode not applicable")

// decoder reads one JSON text; strings without escapes are substrings of src (no copy).
type decoder struct {
	src string
	pos int
}

func (d *decoder) peek() byte {
	if d.pos < len(d.src) {
		return d.src[d.pos]
	}
	return 0
}

func (d *decoder) expect(c byte) error {
	if d.peek() != c {
		return errSlow
	}
	d.pos++
	return nil
}

// parseDecisionFast decodes a decision line as json.Unmarshal into Decision would.
func parseDecisionFast(line string) (Decision, error) {
	d := decoder{src: line}
	var out Decision
	if err := d.expect('{'); err != nil {
		return out, err
	}
	if d.peek() == '}' {
		d.pos++
	} else {
		for {
			key, err := d.str()
			if err != nil {
				return out, err
			}
			if err := d.expect(':'); err != nil {
				return out, err
			}
			switch key {
			case "outcome":
				s, err := d.str()
				if err != nil {
					return out, err
				}
				out.Outcome = Outcome(s)
			case "reason":
				if out.Reason, err = d.str(); err != nil {
					return out, err
				}
			case "rules":
				if out.Rules, err = d.strList(); err != nil {
					return out, err
				}
			case "approval":
				a, err := d.approval()
				if err != nil {
					return out, err
				}
				out.Approval = a
			case "errors":
				if out.Errors, err = d.decisionErrors(); err != nil {
					return out, err
				}
			case "audit":
				v, err := d.value(0)
				if err != nil {
					return out, err
				}
				m, ok := v.(map[string]any)
				if !ok {
					return out, errSlow
				}
				out.Audit = m
			default:
				if key != "explain" {
					return out, errSlow
				}
				if _, err := d.value(0); err != nil {
					return out, err
				}
			}
			if d.peek() == ',' {
				d.pos++
				continue
			}
			if err := d.expect('}'); err != nil {
				return out, err
			}
			break
		}
	}
	if d.pos != len(d.src) {
		return out, errSlow
	}
	return out, nil
}

func (d *decoder) approval() (*Approval, error) {
	if d.peek() == 'n' {
		return nil, errSlow
	}
	if err := d.expect('{'); err != nil {
		return nil, err
	}
	a := &Approval{}
	for {
		key, err := d.str()
		if err != nil {
			return nil, err
		}
		if err := d.expect(':'); err != nil {
			return nil, err
		}
		switch key {
		case "id":
			if a.ID, err = d.str(); err != nil {
				return nil, err
			}
		case "approvers":
			if a.Approvers, err = d.strList(); err != nil {
				return nil, err
			}
		default:
			return nil, errSlow
		}
		if d.peek() == ',' {
			d.pos++
			continue
		}
		return a, d.expect('}')
	}
}

func (d *decoder) decisionErrors() ([]DecisionError, error) {
	if err := d.expect('['); err != nil {
		return nil, err
	}
	out := []DecisionError{}
	if d.peek() == ']' {
		d.pos++
		return out, nil
	}
	for {
		if err := d.expect('{'); err != nil {
			return nil, err
		}
		var e DecisionError
		for {
			key, err := d.str()
			if err != nil {
				return nil, err
			}
			if err := d.expect(':'); err != nil {
				return nil, err
			}
			switch key {
			case "rule":
				e.Rule, err = d.str()
			case "path":
				e.Path, err = d.str()
			case "message":
				e.Message, err = d.str()
			default:
				err = errSlow
			}
			if err != nil {
				return nil, err
			}
			if d.peek() == ',' {
				d.pos++
				continue
			}
			if err := d.expect('}'); err != nil {
				return nil, err
			}
			break
		}
		out = append(out, e)
		if d.peek() == ',' {
			d.pos++
			continue
		}
		return out, d.expect(']')
	}
}

func (d *decoder) strList() ([]string, error) {
	if err := d.expect('['); err != nil {
		return nil, err
	}
	if d.peek() == ']' {
		d.pos++
		return []string{}, nil
	}
	out := make([]string, 0, 2)
	for {
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		if d.peek() == ',' {
			d.pos++
			continue
		}
		return out, d.expect(']')
	}
}

// value decodes any JSON value into the types encoding/json uses for `any`.
func (d *decoder) value(depth int) (any, error) {
	if depth > maxFastDepth {
		return nil, errSlow
	}
	switch c := d.peek(); {
	case c == '"':
		return d.str()
	case c == '{':
		d.pos++
		m := make(map[string]any, 24)
		if d.peek() == '}' {
			d.pos++
			return m, nil
		}
		for {
			key, err := d.str()
			if err != nil {
				return nil, err
			}
			if err := d.expect(':'); err != nil {
				return nil, err
			}
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m[key] = v
			if d.peek() == ',' {
				d.pos++
				continue
			}
			return m, d.expect('}')
		}
	case c == '[':
		d.pos++
		l := []any{}
		if d.peek() == ']' {
			d.pos++
			return l, nil
		}
		for {
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			if d.peek() == ',' {
				d.pos++
				continue
			}
			return l, d.expect(']')
		}
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range [...]struct {
			s string
			v any
		}{{"true", true}, {"false", false}, {"null", nil}} {
			if len(d.src)-d.pos >= len(lit.s) && d.src[d.pos:d.pos+len(lit.s)] == lit.s {
				d.pos += len(lit.s)
				return lit.v, nil
			}
		}
		return nil, errSlow
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.pos
		for d.pos < len(d.src) {
			c := d.src[d.pos]
			if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
				d.pos++
				continue
			}
			break
		}
		f, err := strconv.ParseFloat(d.src[start:d.pos], 64)
		if err != nil {
			return nil, errSlow
		}
		return f, nil
	}
	return nil, errSlow
}

// str decodes a JSON string. Without escapes it is a substring of the source.
func (d *decoder) str() (string, error) {
	if err := d.expect('"'); err != nil {
		return "", err
	}
	start := d.pos
	for d.pos < len(d.src) {
		c := d.src[d.pos]
		switch {
		case c == '"':
			s := d.src[start:d.pos]
			d.pos++
			if !utf8.ValidString(s) {
				return "", errSlow
			}
			return s, nil
		case c == '\\':
			return d.strEscaped(start)
		case c < 0x20:
			return "", errSlow
		}
		d.pos++
	}
	return "", errSlow
}

func (d *decoder) strEscaped(start int) (string, error) {
	buf := []byte(d.src[start:d.pos])
	for d.pos < len(d.src) {
		c := d.src[d.pos]
		switch {
		case c == '"':
			d.pos++
			if !utf8.Valid(buf) {
				return "", errSlow
			}
			return string(buf), nil
		case c < 0x20:
			return "", errSlow
		case c != '\\':
			buf = append(buf, c)
			d.pos++
			continue
		}
		if d.pos+1 >= len(d.src) {
			return "", errSlow
		}
		e := d.src[d.pos+1]
		d.pos += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", errSlow
			}
			if utf16.IsSurrogate(r) {
				// A pair, or a lone surrogate (U+FFFD, as encoding/json does).
				save := d.pos
				if d.pos+1 < len(d.src) && d.src[d.pos] == '\\' && d.src[d.pos+1] == 'u' {
					d.pos += 2
					if r2, ok := d.hex4(); ok {
						if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
							buf = utf8.AppendRune(buf, p)
							continue
						}
					}
				}
				d.pos = save
				r = utf8.RuneError
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", errSlow
		}
	}
	return "", errSlow
}

func (d *decoder) hex4() (rune, bool) {
	if d.pos+4 > len(d.src) {
		return 0, false
	}
	n, err := strconv.ParseUint(d.src[d.pos:d.pos+4], 16, 32)
	if err != nil {
		return 0, false
	}
	d.pos += 4
	return rune(n), true
}
