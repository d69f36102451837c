package aegis

// Strict JSON for Request (SPEC §9a): json.Unmarshal into a Request refuses what the
// core's evaluate_json refuses — unknown fields, field names in another case (`AGENT`),
// duplicate keys anywhere (`params` twice, or inside params), `null` fields, lone
// surrogate escapes, invalid UTF-8 and numbers beyond ±(2^53−1) — with request_invalid
// errors, instead of encoding/json's case-insensitive, last-duplicate-wins decoding.

import (
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MarshalJSON encodes the request as Evaluate sends it (strictly: []byte, invalid
// UTF-8, NaN and structs are request errors; see Engine.Evaluate).
func (r Request) MarshalJSON() ([]byte, error) {
	return appendRequest(nil, &r, math.MaxInt, defaultMaxDepth)
}

// UnmarshalJSON decodes a request strictly (see the file comment); on error r is left
// unchanged. JSON text from outside is better given to Engine.EvaluateJSON whole.
func (r *Request) UnmarshalJSON(data []byte) error {
	d := strictDecoder{src: data, maxDepth: defaultMaxDepth}
	var out Request
	if err := d.request(&out); err != nil {
		return err
	}
	*r = out
	return nil
}

type strictDecoder struct {
	src      []byte
	pos      int
	maxDepth int
	path     []pathSeg
}

func (d *strictDecoder) pathText() string {
	e := encoder{path: d.path}
	return e.pathText()
}

func (d *strictDecoder) errAt(msg string) error {
	field := ""
	if len(d.path) > 0 {
		field = d.path[0].key
	}
	return requestError(field, msg)
}

func (d *strictDecoder) syntax(what string) error {
	return requestError("", "not valid JSON: "+what+" at byte "+strconv.Itoa(d.pos))
}

func (d *strictDecoder) ws() {
	for d.pos < len(d.src) {
		switch d.src[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *strictDecoder) peek() byte {
	d.ws()
	if d.pos < len(d.src) {
		return d.src[d.pos]
	}
	return 0
}

func (d *strictDecoder) eat(c byte) error {
	if d.peek() != c {
		return d.syntax("expected " + strconv.QuoteRune(rune(c)))
	}
	d.pos++
	return nil
}

func typeName(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	}
	return "number"
}

var requestFields = [...]string{"agent", "tool", "action", "params", "chain", "session", "environment", "context", "time", "approval"}

func (d *strictDecoder) request(r *Request) error {
	if c := d.peek(); c != '{' {
		if c == 0 {
			return d.syntax("no value")
		}
		return requestError("", "a request is a JSON object, found a "+typeName(c))
	}
	d.pos++
	seen := map[string]bool{}
	if d.peek() == '}' {
		d.pos++
	} else {
		for {
			key, err := d.str()
			if err != nil {
				return err
			}
			if err := d.eat(':'); err != nil {
				return err
			}
			if seen[key] {
				return requestError(key, "duplicate field `"+key+"`")
			}
			seen[key] = true
			c := d.peek()
			if c == 'n' {
				known := false
				for _, f := range requestFields {
					known = known || f == key
				}
				if known {
					return requestError(key, "`"+key+"` is null; leave the field out instead")
				}
			}
			var s *string
			switch key {
			case "agent":
				s = &r.Agent
			case "tool":
				s = &r.Tool
			case "action":
				s = &r.Action
			case "session":
				s = &r.Session
			case "environment":
				s = &r.Environment
			case "time":
				s = &r.Time
			case "approval":
				s = &r.Approval
			case "params", "context":
				if c != '{' {
					return requestError(key, "`"+key+"` must be an object, found a "+typeName(c))
				}
				d.path = append(d.path[:0], pathSeg{key: key, index: -1})
				v, err := d.value(1)
				d.path = d.path[:0]
				if err != nil {
					return err
				}
				if key == "params" {
					r.Params = v.(map[string]any)
				} else {
					r.Context = v.(map[string]any)
				}
			case "chain":
				if c != '[' {
					return requestError("chain", "`chain` must be a list of agent ids, found a "+typeName(c))
				}
				d.pos++
				r.Chain = []string{}
				if d.peek() == ']' {
					d.pos++
					break
				}
				for i := 0; ; i++ {
					if c := d.peek(); c != '"' {
						return requestError("chain", "`chain."+strconv.Itoa(i)+"` must be a string, found a "+typeName(c))
					}
					s, err := d.str()
					if err != nil {
						return err
					}
					r.Chain = append(r.Chain, s)
					if d.peek() == ',' {
						d.pos++
						continue
					}
					if err := d.eat(']'); err != nil {
						return err
					}
					break
				}
			default:
				hint := ""
				for _, f := range requestFields {
					if equalFoldASCII(f, key) {
						hint = " (did you mean `" + f + "`?)"
					}
				}
				return requestError(key, "unknown field `"+key+"`"+hint)
			}
			if s != nil {
				if c != '"' {
					return requestError(key, "`"+key+"` must be a string, found a "+typeName(c))
				}
				v, err := d.str()
				if err != nil {
					return err
				}
				*s = v
			}
			if d.peek() == ',' {
				d.pos++
				continue
			}
			if err := d.eat('}'); err != nil {
				return err
			}
			break
		}
	}
	if d.peek() != 0 {
		return d.syntax("trailing data")
	}
	if !seen["agent"] {
		return requestError("agent", "`agent` is required")
	}
	if !seen["tool"] {
		return requestError("tool", "`tool` is required")
	}
	return nil
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// value decodes any value inside params/context; a container here is at level depth.
func (d *strictDecoder) value(depth int) (any, error) {
	c := d.peek()
	switch {
	case c == '{' || c == '[':
		if depth > d.maxDepth {
			top := d.path[0].key
			return nil, requestError(top, "`"+top+"` is nested more than "+strconv.Itoa(d.maxDepth)+
				" levels deep (at `"+d.pathText()+"`); the limit is "+strconv.Itoa(d.maxDepth))
		}
		d.pos++
		if c == '[' {
			l := []any{}
			if d.peek() == ']' {
				d.pos++
				return l, nil
			}
			for i := 0; ; i++ {
				d.path = append(d.path, pathSeg{index: i})
				v, err := d.value(depth + 1)
				if err != nil {
					return nil, err
				}
				d.path = d.path[:len(d.path)-1]
				l = append(l, v)
				if d.peek() == ',' {
					d.pos++
					continue
				}
				return l, d.eat(']')
			}
		}
		m := map[string]any{}
		if d.peek() == '}' {
			d.pos++
			return m, nil
		}
		for {
			k, err := d.str()
			if err != nil {
				return nil, err
			}
			if _, dup := m[k]; dup {
				return nil, d.errAt("`" + d.pathText() + "` has a duplicate key `" + k + "`")
			}
			if err := d.eat(':'); err != nil {
				return nil, err
			}
			d.path = append(d.path, pathSeg{key: k, index: -1})
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			d.path = d.path[:len(d.path)-1]
			m[k] = v
			if d.peek() == ',' {
				d.pos++
				continue
			}
			return m, d.eat('}')
		}
	case c == '"':
		return d.str()
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range [...]struct {
			s string
			v any
		}{{"true", true}, {"false", false}, {"null", nil}} {
			if len(d.src)-d.pos >= len(lit.s) && string(d.src[d.pos:d.pos+len(lit.s)]) == lit.s {
				d.pos += len(lit.s)
				return lit.v, nil
			}
		}
		return nil, d.syntax("invalid literal")
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
		text := string(d.src[start:d.pos])
		if !isJSONNumber(text) {
			return nil, d.syntax("invalid number")
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.Abs(f) > maxSafeInteger {
			return nil, d.errAt("`" + d.pathText() + "` is a number beyond ±9007199254740991 (2^53 − 1), " +
				"where numbers stop being exact; send large ids as strings")
		}
		return f, nil
	}
	return nil, d.syntax("unexpected character")
}

// str decodes a string strictly: valid UTF-8, no control characters unescaped, no lone
// surrogate escapes (never U+FFFD).
func (d *strictDecoder) str() (string, error) {
	if d.peek() != '"' {
		return "", d.syntax("expected a string")
	}
	d.pos++
	start := d.pos
	var buf []byte
	for d.pos < len(d.src) {
		c := d.src[d.pos]
		switch {
		case c == '"':
			raw := d.src[start:d.pos]
			d.pos++
			if buf != nil {
				buf = append(buf, raw...)
				raw = buf
			}
			if !utf8.Valid(raw) {
				return "", d.errAt(d.where() + "is not valid UTF-8 (strings are never replaced by U+FFFD)")
			}
			return string(raw), nil
		case c < 0x20:
			return "", d.syntax("a control character in a string")
		case c != '\\':
			d.pos++
			continue
		}
		buf = append(buf, d.src[start:d.pos]...)
		if d.pos+1 >= len(d.src) {
			return "", d.syntax("a truncated escape")
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
				return "", d.syntax("a bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if r < 0xdc00 && d.pos+1 < len(d.src) && d.src[d.pos] == '\\' && d.src[d.pos+1] == 'u' {
					d.pos += 2
					if x, ok := d.hex4(); ok {
						r2 = x
					}
				}
				p := utf16.DecodeRune(r, r2)
				if p == utf8.RuneError {
					return "", d.errAt(d.where() + "contains a lone surrogate (\\u" + strconv.FormatInt(int64(r), 16) +
						"); strings must be well-formed Unicode (they are never replaced by U+FFFD)")
				}
				r = p
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", d.syntax("a bad escape")
		}
		start = d.pos
	}
	return "", d.syntax("an unterminated string")
}

// where names the value being decoded for string errors ("`params.x` ", or "a key ").
func (d *strictDecoder) where() string {
	if len(d.path) == 0 {
		return "a string "
	}
	return "a string in `" + d.pathText() + "` "
}

func (d *strictDecoder) hex4() (rune, bool) {
	if d.pos+4 > len(d.src) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(d.src[d.pos:d.pos+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	d.pos += 4
	return rune(n), true
}
