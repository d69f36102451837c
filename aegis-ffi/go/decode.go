package aegis

// Strict JSON for Request (SPEC §9a): json.Unmarshal into a Request refuses what the
// core's evaluate_json refuses — unknown fields, field names in another case (`AGENT`),
// duplicate keys anywhere (`params` twice, or inside params), `null` fields, lone
// surrogate escapes, invalid UTF-8 and numbers beyond ±(2^53−1) — with request_invalid
// errors, instead of encoding/json's case-insensitive, last-duplicate-wins decoding.

import (
	"math"
	"slices"
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
	d := strictDecoder{scanner: scanner[[]byte]{src: data, ws: true}, maxDepth: defaultMaxDepth}
	var out Request
	if err := d.request(&out); err != nil {
		return err
	}
	*r = out
	return nil
}

type strictDecoder struct {
	scanner[[]byte]
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

// text is the string field of r named key (nil: key names none).
func (r *Request) text(key string) *string {
	for _, f := range [...]struct {
		name string
		p    *string
	}{{"agent", &r.Agent}, {"tool", &r.Tool}, {"action", &r.Action}, {"session", &r.Session}, {"environment", &r.Environment}, {"time", &r.Time}, {"approval", &r.Approval}} {
		if f.name == key {
			return f.p
		}
	}
	return nil
}

func (d *strictDecoder) object(member func(key string) error) error {
	return d.scanner.object(d.eat, d.str, member)
}

func (d *strictDecoder) array(item func(i int) error) error { return d.scanner.array(d.eat, item) }

func (d *strictDecoder) request(r *Request) error {
	if c := d.peek(); c != '{' {
		if c == 0 {
			return d.syntax("no value")
		}
		return requestError("", "a request is a JSON object, found a "+typeName(c))
	}
	seen := map[string]bool{}
	if err := d.object(func(key string) error { return d.field(r, key, seen) }); err != nil {
		return err
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

// field reads the value of the request field key into r.
func (d *strictDecoder) field(r *Request, key string, seen map[string]bool) error {
	if seen[key] {
		return requestError(key, "duplicate field `"+key+"`")
	}
	seen[key] = true
	c := d.peek()
	if c == 'n' && slices.Contains(requestFields[:], key) {
		return requestError(key, "`"+key+"` is null; leave the field out instead")
	}
	if s := r.text(key); s != nil {
		if c != '"' {
			return requestError(key, "`"+key+"` must be a string, found a "+typeName(c))
		}
		v, err := d.str()
		*s = v
		return err
	}
	switch key {
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
		return nil
	case "chain":
		if c != '[' {
			return requestError("chain", "`chain` must be a list of agent ids, found a "+typeName(c))
		}
		r.Chain = []string{}
		return d.array(func(i int) error {
			if c := d.peek(); c != '"' {
				return requestError("chain", "`chain."+strconv.Itoa(i)+"` must be a string, found a "+typeName(c))
			}
			s, err := d.str()
			r.Chain = append(r.Chain, s)
			return err
		})
	}
	hint := ""
	for _, f := range requestFields {
		if equalFoldASCII(f, key) {
			hint = " (did you mean `" + f + "`?)"
		}
	}
	return requestError(key, "unknown field `"+key+"`"+hint)
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
		// a container is read by value at depth+1 for each of its elements, at its path
		if c == '[' {
			l := []any{}
			err := d.array(func(i int) error {
				d.path = append(d.path, pathSeg{index: i})
				v, err := d.value(depth + 1)
				d.path = d.path[:len(d.path)-1]
				l = append(l, v)
				return err
			})
			return l, err
		}
		m := map[string]any{}
		err := d.object(func(k string) error {
			if _, dup := m[k]; dup {
				return d.errAt("`" + d.pathText() + "` has a duplicate key `" + k + "`")
			}
			d.path = append(d.path, pathSeg{key: k, index: -1})
			v, err := d.value(depth + 1)
			d.path = d.path[:len(d.path)-1]
			m[k] = v
			return err
		})
		return m, err
	case c == '"':
		return d.str()
	case c == 't' || c == 'f' || c == 'n':
		v, n, ok := literal(d.src, d.pos)
		if !ok {
			return nil, d.syntax("invalid literal")
		}
		d.pos += n
		return v, nil
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.pos
		d.pos = numberEnd(d.src, d.pos)
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
		if b, ok := unescape(e); ok {
			buf = append(buf, b)
		} else if e != 'u' {
			return "", d.syntax("a bad escape")
		} else {
			r, ok := hex4(d.src, d.pos)
			if !ok {
				return "", d.syntax("a bad \\u escape")
			}
			d.pos += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if r < 0xdc00 && d.pos+1 < len(d.src) && d.src[d.pos] == '\\' && d.src[d.pos+1] == 'u' {
					if x, ok := hex4(d.src, d.pos+2); ok {
						d.pos += 6
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
