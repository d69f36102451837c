package aegis

// The request encoder: native Go values → request JSON for the core, strictly and
// bounded as it walks (SPEC §9a "Bindings take no shortcut the CLI refuses").
//
//   - Types: nil, bool, strings (valid UTF-8 only, map keys too), every integer and
//     float kind (floats finite; integers written exactly, so the core refuses those
//     beyond ±(2^53−1) instead of anything rounding them), json.Number (checked),
//     maps with string or integer keys, slices and arrays, pointers and interfaces (to
//     those), and types implementing json.Marshaler or encoding.TextMarshaler (their
//     output checked: valid UTF-8 and valid JSON). Byte strings ([]byte, [N]byte and
//     named kinds of them), structs, channels, functions and complex numbers are
//     request errors naming the path — never base64 text, never U+FFFD.
//   - Bounds: containers nested deeper than the request depth limit (params and
//     context themselves are depth 1), cycles, and output larger than the request size
//     limit are refused while walking, so a value whose shared sub-maps expand to
//     gigabytes stops after about one limit's worth of bytes. The limits are the
//     engine's (WithRequestMaxBytes, WithRequestMaxDepth).
//
// The same encoder writes the configuration document (options.go): its mistakes are
// config_invalid errors naming the option, a []byte is written as a key's JSON form
// {"base64": "…"}, and map keys are written in sorted order (so that the first mistake
// reported is always the same one).

import (
	"encoding"
	"encoding/base64"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// The core's default request limits (RequestLimits::default; an engine's own are set
// with WithRequestMaxBytes and WithRequestMaxDepth).
const (
	defaultMaxBytes = 1 << 20
	defaultMaxDepth = 64
)

// maxSafeInteger is 2^53 − 1, the largest magnitude the core accepts (§9a).
const maxSafeInteger = 1<<53 - 1

type pathSeg struct {
	key   string
	index int // -1 for a key
}

// encoder appends one request (or the configuration document); its errors name the
// path of the value at fault.
type encoder struct {
	b        []byte
	start    int // len(b) when the request began
	maxBytes int
	maxDepth int
	path     []pathSeg
	// the containers on the current path, for cycles (compared by identity)
	stack []unsafe.Pointer
	// options: the configuration document (config_invalid errors, []byte as
	// {"base64": …}, sorted keys) rather than a request
	options bool
}

// err is a refusal of the value at field (the request field or the option).
func (e *encoder) err(field, msg string) error {
	if e.options {
		return configError(field, msg)
	}
	return requestError(field, msg)
}

// what names the whole value being encoded, for messages.
func (e *encoder) what() string {
	if e.options {
		return "the options document"
	}
	return "request"
}

func (e *encoder) pathText() string {
	var out []byte
	for i, s := range e.path {
		if s.index >= 0 {
			out = append(out, '.')
			out = strconv.AppendInt(out, int64(s.index), 10)
			continue
		}
		if i > 0 {
			out = append(out, '.')
		}
		out = append(out, s.key...)
	}
	return string(out)
}

// fail is an error about the value at the current path.
func (e *encoder) fail(what string) error {
	if len(e.path) == 0 {
		return e.err("", e.what()+" "+what)
	}
	return e.err(e.path[0].key, "`"+e.pathText()+"` "+what)
}

// over reports whether the output passed the size limit (checked after each value).
func (e *encoder) over() error {
	if len(e.b)-e.start > e.maxBytes {
		return e.tooLarge()
	}
	return nil
}

func (e *encoder) tooLarge() error {
	return e.err("", e.what()+" is larger than "+strconv.Itoa(e.maxBytes)+" bytes")
}

// appendRequest appends req as the JSON text of a request (SPEC §1), refusing what the
// core would refuse in JSON or could not see once encoded (see the file comment).
func appendRequest(b []byte, r *Request, maxBytes, maxDepth int) ([]byte, error) {
	e := encoder{b: b, start: len(b), maxBytes: maxBytes, maxDepth: maxDepth}
	if err := e.request(r); err != nil {
		return nil, err
	}
	return e.b, nil
}

func (e *encoder) field(name, v string, always bool) error {
	if v == "" && !always {
		return nil
	}
	if !utf8.ValidString(v) {
		return requestError(name, "`"+name+"` is not valid UTF-8 (strings are never replaced by U+FFFD)")
	}
	if len(e.b) > e.start+1 {
		e.b = append(e.b, ',')
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, name...)
	e.b = append(e.b, '"', ':')
	e.b = appendString(e.b, v)
	return e.over()
}

func (e *encoder) request(r *Request) error {
	e.b = append(e.b, '{')
	for _, part := range [...]func() error{
		func() error { return e.field("agent", r.Agent, true) },
		func() error { return e.field("tool", r.Tool, true) },
		func() error { return e.field("action", r.Action, false) },
		func() error { return e.object("params", r.Params) },
		func() error { return e.chain(r.Chain) },
		func() error { return e.field("session", r.Session, false) },
		func() error { return e.field("environment", r.Environment, false) },
		func() error { return e.object("context", r.Context) },
		func() error { return e.field("time", r.Time, false) },
		func() error { return e.field("approval", r.Approval, false) },
	} {
		if err := part(); err != nil {
			return err
		}
	}
	e.b = append(e.b, '}')
	return e.over()
}

func (e *encoder) chain(chain []string) error {
	if len(chain) == 0 {
		return nil
	}
	e.b = append(e.b, `,"chain":`...)
	e.path = append(e.path[:0], pathSeg{key: "chain", index: -1})
	err := e.list(nil, len(chain), 1, func(i int) error { return e.str(chain[i]) })
	e.path = e.path[:0]
	return err
}

func (e *encoder) object(name string, m map[string]any) error {
	if len(m) == 0 {
		return nil
	}
	e.b = append(e.b, ',', '"')
	e.b = append(e.b, name...)
	e.b = append(e.b, '"', ':')
	e.path = append(e.path[:0], pathSeg{key: name, index: -1})
	err := e.mapAny(m, 1)
	e.path = e.path[:0]
	return err
}

// enter pushes a container at nesting level depth (params itself is 1); it refuses
// cycles and nesting beyond the limit.
func (e *encoder) enter(p unsafe.Pointer, depth int) error {
	if p != nil {
		for _, q := range e.stack {
			if q == p {
				return e.fail("contains itself (a cyclic value); requests are trees")
			}
		}
	}
	if depth > e.maxDepth {
		return e.err(e.path[0].key, "`"+e.path[0].key+"` is nested more than "+strconv.Itoa(e.maxDepth)+
			" levels deep (at `"+e.pathText()+"`); the limit is "+strconv.Itoa(e.maxDepth))
	}
	e.stack = append(e.stack, p)
	return nil
}

func (e *encoder) leave() { e.stack = e.stack[:len(e.stack)-1] }

// open starts a container ('[' or '{') at nesting level depth: see enter.
func (e *encoder) open(p unsafe.Pointer, depth int, c byte) error {
	if err := e.enter(p, depth); err != nil {
		return err
	}
	e.b = append(e.b, c)
	return nil
}

// item appends the i-th element of the open list, written by value at its path.
func (e *encoder) item(i int, value func() error) error {
	return e.entry(i, pathSeg{index: i}, value)
}

// member appends the i-th member of the open object: its key, then its value.
func (e *encoder) member(i int, key string, value func() error) error {
	return e.entry(i, pathSeg{key: key, index: -1}, value)
}

func (e *encoder) entry(i int, seg pathSeg, value func() error) error {
	if i > 0 {
		e.b = append(e.b, ',')
	}
	if seg.index < 0 {
		if err := e.key(seg.key); err != nil {
			return err
		}
	}
	e.path = append(e.path, seg)
	if err := value(); err != nil {
		return err
	}
	e.path = e.path[:len(e.path)-1]
	return e.over()
}

// close ends the open container (']' or '}').
func (e *encoder) close(c byte) {
	e.b = append(e.b, c)
	e.leave()
}

// sortedKeys are the keys of m in sorted order (the options document).
func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (e *encoder) key(k string) error {
	if !utf8.ValidString(k) {
		return e.fail("has a key that is not valid UTF-8 (" + strconv.Quote(k) + "); keys are never replaced by U+FFFD")
	}
	e.b = appendString(e.b, k)
	e.b = append(e.b, ':')
	return nil
}

func (e *encoder) mapAny(m map[string]any, depth int) error {
	if m == nil {
		e.b = append(e.b, "null"...)
		return nil
	}
	if err := e.open(reflect.ValueOf(m).UnsafePointer(), depth, '{'); err != nil {
		return err
	}
	if e.options {
		for i, k := range sortedKeys(m) {
			if err := e.member(i, k, func() error { return e.value(m[k], depth+1) }); err != nil {
				return err
			}
		}
	} else {
		i := 0
		for k, v := range m {
			if err := e.member(i, k, func() error { return e.value(v, depth+1) }); err != nil {
				return err
			}
			i++
		}
	}
	e.close('}')
	return nil
}

func (e *encoder) str(s string) error {
	if !utf8.ValidString(s) {
		return e.fail("is not valid UTF-8 (strings are never replaced by U+FFFD)")
	}
	e.b = appendString(e.b, s)
	return nil
}

// nonFinite is the core's message for a non-finite number given natively
// (aegis_core::value::non_finite_message), so Go, Python and Node say the same.
func nonFinite(f float64) string {
	switch {
	case math.IsNaN(f):
		return "is NaN; numbers must be finite"
	case f > 0:
		return "is Infinity; numbers must be finite"
	default:
		return "is -Infinity; numbers must be finite"
	}
}

func (e *encoder) float(f float64, bits int) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return e.fail(nonFinite(f))
	}
	// As encoding/json (and ES6) write numbers: fixed notation for 1e-6 ≤ |f| < 1e21.
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	e.b = strconv.AppendFloat(e.b, f, format, -1, bits)
	return nil
}

func (e *encoder) refuseBytes(v any) error {
	return e.fail("is a byte string (" + reflect.TypeOf(v).String() +
		"); requests carry text, never bytes as base64: convert it with string(b) if it is text")
}

// bytes appends a []byte: in the options document a key's JSON form {"base64": "…"}
// (nil too, so that a nil key is refused as empty, never taken as no key); in a
// request, an error.
func (e *encoder) bytes(b []byte) error {
	if !e.options {
		return e.refuseBytes(b)
	}
	e.b = append(e.b, `{"base64":"`...)
	e.b = base64.StdEncoding.AppendEncode(e.b, b)
	e.b = append(e.b, `"}`...)
	return nil
}

// list appends a list of n elements, each written by item at depth+1; p is the
// backing array (nil: nothing to compare for cycles).
func (e *encoder) list(p unsafe.Pointer, n, depth int, item func(i int) error) error {
	if err := e.open(p, depth, '['); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := e.item(i, func() error { return item(i) }); err != nil {
			return err
		}
	}
	e.close(']')
	return nil
}

// value appends v at nesting level depth (a container there is at that level).
func (e *encoder) value(v any, depth int) error {
	switch x := v.(type) {
	case nil:
		e.b = append(e.b, "null"...)
		return nil
	case string:
		return e.str(x)
	case bool:
		e.b = strconv.AppendBool(e.b, x)
		return nil
	case float64:
		return e.float(x, 64)
	case float32:
		return e.float(float64(x), 32)
	case int:
		e.b = strconv.AppendInt(e.b, int64(x), 10)
		return nil
	case int64:
		e.b = strconv.AppendInt(e.b, x, 10)
		return nil
	case int32:
		e.b = strconv.AppendInt(e.b, int64(x), 10)
		return nil
	case uint64:
		e.b = strconv.AppendUint(e.b, x, 10)
		return nil
	case uint:
		e.b = strconv.AppendUint(e.b, uint64(x), 10)
		return nil
	case map[string]any:
		return e.mapAny(x, depth)
	case []any:
		if x == nil {
			e.b = append(e.b, "null"...)
			return nil
		}
		var p unsafe.Pointer
		if len(x) > 0 {
			p = unsafe.Pointer(&x[0])
		}
		return e.list(p, len(x), depth, func(i int) error { return e.value(x[i], depth+1) })
	case []string:
		if x == nil {
			e.b = append(e.b, "null"...)
			return nil
		}
		// elements are strings, never containers: nothing to compare for cycles
		return e.list(nil, len(x), depth, func(i int) error { return e.str(x[i]) })
	case []byte:
		return e.bytes(x)
	case json.Number:
		return e.number(string(x))
	}
	return e.reflectValue(reflect.ValueOf(v), depth)
}

// number appends a json.Number after checking it is a JSON number.
func (e *encoder) number(s string) error {
	if !isJSONNumber(s) {
		return e.fail("is a json.Number that is not a number (" + strconv.Quote(s) + ")")
	}
	e.b = append(e.b, s...)
	return nil
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// marshaler appends the output of a json.Marshaler or encoding.TextMarshaler, checked:
// valid UTF-8 and (for JSON) a valid JSON value, so the core parses exactly it.
func (e *encoder) marshaler(v reflect.Value) (bool, error) {
	if v.Kind() == reflect.Pointer && v.IsNil() {
		return false, nil
	}
	if v.Type().Implements(marshalerType) {
		out, err := v.Interface().(json.Marshaler).MarshalJSON()
		if err != nil {
			return true, e.fail("could not be marshalled: " + err.Error())
		}
		if !utf8.Valid(out) || !json.Valid(out) {
			return true, e.fail("is a json.Marshaler (" + v.Type().String() + ") whose output is not valid UTF-8 JSON")
		}
		if len(out) > e.maxBytes {
			return true, e.tooLarge()
		}
		e.b = append(e.b, out...)
		return true, nil
	}
	if v.Type().Implements(textMarshalerType) {
		out, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return true, e.fail("could not be marshalled: " + err.Error())
		}
		if len(out) > e.maxBytes {
			return true, e.tooLarge()
		}
		return true, e.str(string(out))
	}
	return false, nil
}

func (e *encoder) reflectValue(v reflect.Value, depth int) error {
	if !v.IsValid() {
		e.b = append(e.b, "null"...)
		return nil
	}
	if done, err := e.marshaler(v); done || err != nil {
		return err
	}
	switch v.Kind() {
	case reflect.Bool:
		e.b = strconv.AppendBool(e.b, v.Bool())
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.b = strconv.AppendInt(e.b, v.Int(), 10)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.b = strconv.AppendUint(e.b, v.Uint(), 10)
		return nil
	case reflect.Float32:
		return e.float(v.Float(), 32)
	case reflect.Float64:
		return e.float(v.Float(), 64)
	case reflect.String:
		if v.Type() == reflect.TypeFor[json.Number]() {
			return e.number(v.String())
		}
		return e.str(v.String())
	case reflect.Interface:
		if v.IsNil() {
			e.b = append(e.b, "null"...)
			return nil
		}
		return e.reflectValue(v.Elem(), depth)
	case reflect.Pointer:
		if v.IsNil() {
			e.b = append(e.b, "null"...)
			return nil
		}
		if err := e.enter(v.UnsafePointer(), depth); err != nil {
			return err
		}
		err := e.reflectValue(v.Elem(), depth)
		e.leave()
		return err
	case reflect.Map:
		return e.reflectMap(v, depth)
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if e.options && v.Kind() == reflect.Slice {
				return e.bytes(v.Bytes())
			}
			return e.refuseBytes(v.Interface())
		}
		if v.Kind() == reflect.Slice && v.IsNil() {
			e.b = append(e.b, "null"...)
			return nil
		}
		var p unsafe.Pointer
		if v.Kind() == reflect.Slice && v.Len() > 0 {
			p = v.UnsafePointer()
		}
		return e.list(p, v.Len(), depth, func(i int) error { return e.reflectValue(v.Index(i), depth+1) })
	case reflect.Struct:
		return e.fail("is a Go struct (" + v.Type().String() +
			"); pass a map[string]any (or a type implementing json.Marshaler)")
	}
	if e.options && v.Kind() == reflect.Func {
		return e.fail("is a " + v.Type().String() + ", which has no JSON form (an audit callback goes in WithAuditCallback)")
	}
	return e.fail("is a " + v.Type().String() + ", which has no JSON form")
}

func (e *encoder) reflectMap(v reflect.Value, depth int) error {
	if v.IsNil() {
		e.b = append(e.b, "null"...)
		return nil
	}
	kk := v.Type().Key().Kind()
	isString := kk == reflect.String
	isInt := kk >= reflect.Int && kk <= reflect.Uintptr
	if !isString && !isInt {
		return e.fail("is a map with " + v.Type().Key().String() + " keys; keys must be strings")
	}
	if err := e.open(v.UnsafePointer(), depth, '{'); err != nil {
		return err
	}
	if e.options {
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(mapKey(a), mapKey(b)) })
		for i, k := range keys {
			if err := e.member(i, mapKey(k), func() error { return e.reflectValue(v.MapIndex(k), depth+1) }); err != nil {
				return err
			}
		}
	} else {
		// walked as it goes (never all keys at once), so a huge map stops at the size limit
		it := v.MapRange()
		for i := 0; it.Next(); i++ {
			if err := e.member(i, mapKey(it.Key()), func() error { return e.reflectValue(it.Value(), depth+1) }); err != nil {
				return err
			}
		}
	}
	e.close('}')
	return nil
}

// mapKey is a map key (a string or an integer) as a JSON object key.
func mapKey(k reflect.Value) string {
	switch {
	case k.Kind() == reflect.String:
		return k.String()
	case k.Kind() >= reflect.Int && k.Kind() <= reflect.Int64:
		return strconv.FormatInt(k.Int(), 10)
	}
	return strconv.FormatUint(k.Uint(), 10)
}

// isJSONNumber reports whether s is a number in JSON's grammar.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}

func appendInt(b []byte, i int64) []byte { return strconv.AppendInt(b, i, 10) }

const hexDigits = "0123456789abcdef"

// appendString appends s (valid UTF-8, checked by the caller) as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
