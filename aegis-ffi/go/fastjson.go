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
	scanner[string]
}

func (d *decoder) expect(c byte) error {
	if d.peek() != c {
		return errSlow
	}
	d.pos++
	return nil
}

func (d *decoder) object(member func(key string) error) error {
	return d.scanner.object(d.expect, d.str, member)
}

func (d *decoder) array(item func(i int) error) error { return d.scanner.array(d.expect, item) }

// parseDecisionFast decodes a decision line as json.Unmarshal into Decision would.
func parseDecisionFast(line string) (Decision, error) {
	d := decoder{scanner[string]{src: line}}
	var out Decision
	err := d.object(func(key string) (err error) {
		switch key {
		case "outcome":
			var s string
			s, err = d.str()
			out.Outcome = Outcome(s)
		case "reason":
			out.Reason, err = d.str()
		case "rules":
			out.Rules, err = d.strList()
		case "approval":
			out.Approval, err = d.approval()
		case "errors":
			out.Errors, err = d.decisionErrors()
		case "audit":
			var v any
			if v, err = d.value(0); err == nil {
				var ok bool
				if out.Audit, ok = v.(map[string]any); !ok {
					err = errSlow
				}
			}
		case "explain":
			_, err = d.value(0)
		default:
			err = errSlow
		}
		return err
	})
	if err == nil && d.pos != len(d.src) {
		err = errSlow
	}
	return out, err
}

func (d *decoder) approval() (*Approval, error) {
	if d.peek() == 'n' {
		return nil, errSlow
	}
	a := &Approval{}
	err := d.object(func(key string) (err error) {
		switch key {
		case "id":
			a.ID, err = d.str()
		case "approvers":
			a.Approvers, err = d.strList()
		default:
			err = errSlow
		}
		return err
	})
	return a, err
}

func (d *decoder) decisionErrors() ([]DecisionError, error) {
	out := []DecisionError{}
	err := d.array(func(int) error {
		var e DecisionError
		err := d.object(func(key string) (err error) {
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
			return err
		})
		out = append(out, e)
		return err
	})
	return out, err
}

func (d *decoder) strList() ([]string, error) {
	out := []string{}
	err := d.array(func(int) error {
		s, err := d.str()
		if cap(out) == 0 {
			out = make([]string, 0, 2)
		}
		out = append(out, s)
		return err
	})
	return out, err
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
		m := make(map[string]any, 24)
		err := d.object(func(key string) error {
			v, err := d.value(depth + 1)
			m[key] = v
			return err
		})
		return m, err
	case c == '[':
		l := []any{}
		err := d.array(func(int) error {
			v, err := d.value(depth + 1)
			l = append(l, v)
			return err
		})
		return l, err
	case c == 't' || c == 'f' || c == 'n':
		v, n, ok := literal(d.src, d.pos)
		if !ok {
			return nil, errSlow
		}
		d.pos += n
		return v, nil
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.pos
		d.pos = numberEnd(d.src, d.pos)
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
		if b, ok := unescape(e); ok {
			buf = append(buf, b)
			continue
		}
		r, ok := hex4(d.src, d.pos)
		if e != 'u' || !ok {
			return "", errSlow
		}
		d.pos += 4
		if utf16.IsSurrogate(r) {
			// A pair, or a lone surrogate (U+FFFD, as encoding/json does).
			if d.pos+1 < len(d.src) && d.src[d.pos] == '\\' && d.src[d.pos+1] == 'u' {
				if r2, ok := hex4(d.src, d.pos+2); ok {
					if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
						d.pos += 6
						buf = utf8.AppendRune(buf, p)
						continue
					}
				}
			}
			r = utf8.RuneError
		}
		buf = utf8.AppendRune(buf, r)
	}
	return "", errSlow
}
