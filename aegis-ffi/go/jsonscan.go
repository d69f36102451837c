package aegis

// Scanning shared by the two JSON readers: the strict request decoder (decode.go, over
// []byte) and the fast decision decoder (fastjson.go, over a string). They differ in
// what a mistake is (a request error, or "use encoding/json instead"), so each passes
// its own string reader and punctuation check.

// scanner is a position in a JSON text.
type scanner[T string | []byte] struct {
	src T
	pos int
	ws  bool // skip white space (the strict reader; decision lines have none)
}

// peek is the next byte (after white space, when skipped), 0 at the end.
func (s *scanner[T]) peek() byte {
	for s.ws && s.pos < len(s.src) && (s.src[s.pos] == ' ' || s.src[s.pos] == '\t' || s.src[s.pos] == '\n' || s.src[s.pos] == '\r') {
		s.pos++
	}
	if s.pos < len(s.src) {
		return s.src[s.pos]
	}
	return 0
}

// object reads an object: expect checks its punctuation, key reads each key and member
// each value.
func (s *scanner[T]) object(expect func(byte) error, key func() (string, error), member func(key string) error) error {
	if err := expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		k, err := key()
		if err != nil {
			return err
		}
		if err := expect(':'); err != nil {
			return err
		}
		if err := member(k); err != nil {
			return err
		}
		if s.peek() != ',' {
			return expect('}')
		}
		s.pos++
	}
}

// array reads an array: expect checks its punctuation, item reads element i.
func (s *scanner[T]) array(expect func(byte) error, item func(i int) error) error {
	if err := expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := item(i); err != nil {
			return err
		}
		if s.peek() != ',' {
			return expect(']')
		}
		s.pos++
	}
}

// unescape is the byte a one-character JSON escape (\" \\ \/ \b \f \n \r \t) stands for.
func unescape(c byte) (byte, bool) {
	switch c {
	case '"', '\\', '/':
		return c, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}

// hex4 reads the four hex digits of a \u escape at src[pos:].
func hex4[T string | []byte](src T, pos int) (rune, bool) {
	if pos+4 > len(src) {
		return 0, false
	}
	var r rune
	for i := pos; i < pos+4; i++ {
		c := src[i]
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// literal reads `true`, `false` or `null` at src[pos:]: the value and its length.
func literal[T string | []byte](src T, pos int) (any, int, bool) {
	for _, lit := range [...]struct {
		s string
		v any
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if len(src)-pos >= len(lit.s) && string(src[pos:pos+len(lit.s)]) == lit.s {
			return lit.v, len(lit.s), true
		}
	}
	return nil, 0, false
}

// numberEnd is where the run of number characters starting at src[pos] ends (the
// caller checks the run is a JSON number).
func numberEnd[T string | []byte](src T, pos int) int {
	for pos < len(src) {
		c := src[pos]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			pos++
			continue
		}
		break
	}
	return pos
}
