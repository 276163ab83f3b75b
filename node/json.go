package node

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// Register values are stored as canonical JSON: object keys sorted (a
// duplicate key is refused), no insignificant space, no HTML escaping,
// numbers in their shortest form (integers within int64 as plain digits,
// -0 as 0; other numbers as the shortest float64 that reads back the same,
// integral ones beyond int64 with an exponent; integers that no float64
// holds exactly keep every digit), at most MaxDepth nested arrays and
// objects. Two values that are equal as JSON get equal bytes, so replicas
// compare and hash them alike, and every stored value reads back as
// stored: decoding gives int64, float64 or (for those long integers)
// json.Number, never a rounded number.

var errJSON = errors.New("malformed JSON")

// encodeValue returns the canonical JSON of a Put value: nil, bool, every
// integer and float kind, string, []any, []string, map[string]any (recursively),
// json.Number and json.RawMessage. Callers wrap an error in ErrInvalidValue.
func encodeValue(v any) ([]byte, error) {
	switch x := v.(type) {
	case string: // sized at once: most values are strings
		return appendString(nil, x)
	case json.RawMessage: // an HTTP body: most are strings already canonical
		if s, ok := plainString(x); ok {
			return bytes.Clone(s), nil
		}
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		// Encoded on the stack and copied out at its size: one allocation.
		var scratch [32]byte
		b, err := appendJSON(scratch[:0], v, 0)
		if err != nil {
			return nil, err
		}
		return bytes.Clone(b), nil
	}
	b, err := appendJSON(make([]byte, 0, 64), v, 0)
	if err == nil && cap(b)-len(b) > len(b)/4 {
		b = bytes.Clone(b) // the state keeps it (Tx.PutOwned): no slack
	}
	return b, err
}

// plainString returns raw without the whitespace around it when it is one
// JSON string in valid UTF-8 holding no escape and no byte that needs one:
// its own canonical form, kept without decoding it and encoding it again.
func plainString(raw []byte) ([]byte, bool) {
	s := bytes.Trim(raw, " \t\r\n")
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return nil, false
	}
	body := s[1 : len(s)-1]
	i, ascii := 0, uint64(0)
	for ; i+8 <= len(body); i += 8 {
		w := binary.LittleEndian.Uint64(body[i:])
		if needsEscape(w) {
			return nil, false
		}
		ascii |= w
	}
	hi := byte(0)
	for _, c := range body[i:] {
		if escLen[c] != 0 {
			return nil, false
		}
		hi |= c
	}
	if (ascii&(lsb*0x80) != 0 || hi >= 0x80) && !utf8.Valid(body) {
		return nil, false // the parser says what is wrong
	}
	return s, true
}

// depth is how many containers (arrays, objects) enclose v: a value may
// nest at most MaxDepth containers, counting its own.
func appendJSON(b []byte, v any, depth int) ([]byte, error) {
	switch v.(type) {
	case []any, []string, map[string]any:
		if depth >= MaxDepth {
			return nil, fmt.Errorf("nested deeper than %d arrays and objects", MaxDepth)
		}
	}
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		if x {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case string:
		return appendString(b, x)
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case float32:
		return appendFloat(b, float64(x), 32)
	case float64:
		return appendFloat(b, x, 64)
	case json.Number:
		return appendNumber(b, string(x))
	case json.RawMessage:
		p := jsonParser{b: x, useNumber: true, depth: depth}
		val, err := p.parse()
		if err != nil {
			return nil, err
		}
		return appendJSON(b, val, depth)
	case []string: // a set's members (views of sets, alone or in a map)
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendString(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendString(b, k); err != nil {
				return nil, err
			}
			b = append(b, ':')
			if b, err = appendJSON(b, x[k], depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	return nil, fmt.Errorf("unsupported type %T (use nil, bool, numbers, string, []any, []string, map[string]any, json.Number or json.RawMessage)", v)
}

func appendFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("unsupported number %v", f)
	}
	if f == 0 {
		return append(b, '0'), nil // also -0
	}
	if f == math.Trunc(f) && f >= -1<<63 && f < 1<<63 {
		return strconv.AppendInt(b, int64(f), 10), nil
	}
	// encoding/json's choice of format: plain decimals between 1e-6 and
	// 1e21, except integral values beyond int64, which take an exponent so
	// that they never read back as an integer literal (and so as another
	// type, or another number: the shortest digits of a large float padded
	// with zeros are not its value).
	abs := math.Abs(f)
	format := byte('f')
	if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) || f == math.Trunc(f) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendNumber canonicalises a JSON number literal. Integer literals keep
// every digit, so integers beyond int64 survive in the stored bytes.
func appendNumber(b []byte, s string) ([]byte, error) {
	if n := scanNumber(s); n != len(s) || n == 0 {
		return nil, fmt.Errorf("malformed number %q", s)
	}
	integral := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '.' || c == 'e' || c == 'E' {
			integral = false
			break
		}
	}
	if integral {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return strconv.AppendInt(b, i, 10), nil
		}
		// Beyond int64: a float64 if one holds it exactly (spelt as such,
		// so that equal numbers get equal bytes), else every digit, read
		// back as a json.Number.
		if f, err := strconv.ParseFloat(s, 64); err == nil && strconv.FormatFloat(f, 'f', 0, 64) == s {
			return appendFloat(b, f, 64)
		}
		return append(b, s...), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && (!errors.Is(err, strconv.ErrRange) || math.IsInf(f, 0)) {
		return nil, fmt.Errorf("number %s beyond the range of a float64 (±1.8e308)", truncateKey(s))
	}
	return appendFloat(b, f, 64)
}

// scanNumber returns the length of the JSON number at the start of s, or 0.
func scanNumber[T string | []byte](s T) int {
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
		return 0
	}
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return 0
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return 0
		}
	}
	return i
}

const hexDigits = "0123456789abcdef"

func appendString(b []byte, s string) ([]byte, error) {
	// Find the first byte that needs escaping (or is not ASCII) a word at
	// a time; plain ASCII strings, the common case, are copied at once.
	i, ascii := 0, uint64(0)
	for ; i+8 <= len(s); i += 8 {
		w := word(s, i)
		if needsEscape(w) {
			break
		}
		ascii |= w
	}
	// The rest in one pass: what its escapes add, and whether it is ASCII.
	extra, hi := 0, byte(0)
	for j := i; j < len(s); j++ {
		c := s[j]
		hi |= c
		if e := escLen[c]; e != 0 {
			extra += int(e) - 1
		}
	}
	if (ascii&(lsb*0x80) != 0 || hi >= 0x80) && !utf8.ValidString(s) {
		return nil, fmt.Errorf("string is not valid UTF-8")
	}
	// Grow b once to the exact size, escapes included: a string's own
	// buffer (encodeValue) is kept by the state, slack and all.
	if need := len(s) + 2 + extra; cap(b)-len(b) < need {
		// Exact for a buffer of its own; doubling within a document.
		nb := make([]byte, len(b), max(len(b)+need, 2*cap(b)))
		copy(nb, b)
		b = nb
	}
	b = append(b, '"')
	start := 0 // s[:i] needs no escape: copied with the first run
	for {
		for i < len(s) && escLen[s[i]] == 0 {
			i++
		}
		b = append(b, s[start:i]...)
		if i == len(s) {
			break
		}
		switch c := s[i]; c {
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
		i++
		start = i
	}
	return append(b, '"'), nil
}

// decodeValue decodes stored JSON bytes into the Go values Get returns:
// nil, bool, int64 (integral numbers within range), float64 (other
// numbers), string, []any and map[string]any. The bytes may come from a
// peer, so malformed input is an error, never a panic.
func decodeValue(b []byte) (any, error) {
	p := jsonParser{b: b}
	return p.parseValue()
}

// decodeOwnedValue is decodeValue for a buffer the caller hands over: it
// is never modified or reused afterwards, so the strings of the result
// point into it instead of copying it (a Get decodes a fresh copy of the
// register, so this saves a second allocation and copy per read).
func decodeOwnedValue(b []byte) (any, error) {
	p := jsonParser{b: b, owned: true}
	return p.parseValue()
}

// AppendUnquoted appends to dst the contents of s, one JSON string with
// its quotes, unescaped: for a caller that wants a string's bytes without
// decoding it into a Go string first. The contents are never longer than
// s, and dst may be s[:0] to unquote in place (what is written never
// overtakes what is read; s is overwritten then, on an error too). On an
// error it returns dst as it was given.
func AppendUnquoted(dst, s []byte) ([]byte, error) {
	if len(s) < 2 || s[0] != '"' {
		return dst, fmt.Errorf("%w: not a JSON string", errJSON)
	}
	p := jsonParser{b: s, i: 1}
	out, err := p.unquote(dst)
	if err == nil && p.i != len(s) {
		err = fmt.Errorf("%w: data after the string", errJSON)
	}
	if err != nil {
		return dst, err
	}
	return out, nil
}

func (p *jsonParser) parseValue() (any, error) {
	v, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("%w: register value: %w", ErrCorrupt, err)
	}
	return v, nil
}

// jsonParser is a strict RFC 8259 parser. It is here rather than
// encoding/json because Get decodes on every read and this is several times
// faster for the small values registers usually hold.
type jsonParser struct {
	b         []byte
	i         int
	useNumber bool // numbers as json.Number (canonicalising input) instead of int64/float64
	owned     bool // b is immutable and handed over: strings may alias it
	depth     int  // containers enclosing the value parsed (when it is part of a larger one)
}

func (p *jsonParser) parse() (any, error) {
	p.ws()
	v, err := p.value(p.depth)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, fmt.Errorf("%w: trailing bytes at %d", errJSON, p.i)
	}
	return v, nil
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// more consumes the separator after an array element or object member:
// ',' (more follow) or close (the end).
func (p *jsonParser) more(close byte) (end bool, err error) {
	p.ws()
	if p.i >= len(p.b) {
		return false, p.fail()
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		return false, nil
	case close:
		p.i++
		return true, nil
	}
	return false, p.fail()
}

func (p *jsonParser) fail() error {
	if p.i >= len(p.b) {
		return fmt.Errorf("%w: unexpected end", errJSON)
	}
	return fmt.Errorf("%w: unexpected %q at %d", errJSON, p.b[p.i], p.i)
}

func (p *jsonParser) literal(word string, v any) (any, error) {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return nil, p.fail()
	}
	p.i += len(word)
	return v, nil
}

func (p *jsonParser) value(depth int) (any, error) {
	if p.i >= len(p.b) {
		return nil, p.fail()
	}
	if c := p.b[p.i]; (c == '[' || c == '{') && depth >= MaxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d arrays and objects", errJSON, MaxDepth)
	}
	switch c := p.b[p.i]; {
	case c == 'n':
		return p.literal("null", nil)
	case c == 't':
		return p.literal("true", true)
	case c == 'f':
		return p.literal("false", false)
	case c == '"':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == '[':
		p.i++
		arr := []any{}
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return arr, nil
		}
		for {
			p.ws()
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
			if end, err := p.more(']'); err != nil {
				return nil, err
			} else if end {
				return arr, nil
			}
		}
	case c == '{':
		p.i++
		obj := map[string]any{}
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return obj, nil
		}
		for {
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return nil, p.fail()
			}
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return nil, p.fail()
			}
			p.i++
			p.ws()
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			if _, dup := obj[k]; dup {
				return nil, fmt.Errorf("%w: duplicate object key %q", errJSON, truncateKey(k))
			}
			obj[k] = v
			if end, err := p.more('}'); err != nil {
				return nil, err
			} else if end {
				return obj, nil
			}
		}
	}
	return nil, p.fail()
}

func (p *jsonParser) number() (any, error) {
	s := p.b[p.i:]
	n := scanNumber(s)
	if n == 0 {
		return nil, p.fail()
	}
	lit := string(s[:n])
	p.i += n
	if p.useNumber {
		return json.Number(lit), nil
	}
	if i, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return i, nil
	} else if errors.Is(err, strconv.ErrRange) && !bytes.ContainsAny(s[:n], ".eE") {
		// An integer beyond int64: a float64 if one holds it exactly (the
		// canonical form of a large integral float is such a literal),
		// else its digits, so that nothing is rounded. (ParseInt reports
		// the range as soon as the digits overflow, even when a fraction
		// or exponent follows: those are floats, below.)
		if f, err := strconv.ParseFloat(lit, 64); err == nil && strconv.FormatFloat(f, 'f', 0, 64) == lit {
			return f, nil
		}
		return json.Number(lit), nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, fmt.Errorf("%w: number %q", errJSON, lit)
	}
	if math.IsInf(f, 0) {
		return nil, fmt.Errorf("%w: number %q out of range", errJSON, lit)
	}
	if f == math.Trunc(f) && f >= -1<<63 && f < 1<<63 {
		return int64(f), nil
	}
	return f, nil
}

// escLen is the length of a byte's escape in a JSON string, 0 for a byte
// that is written as it is. The others (a control byte, '"', '\\') also
// end the fast scan of a string when decoding.
var escLen = func() (t [256]uint8) {
	for c := range 0x20 {
		t[c] = 6 // \u00XX
	}
	t['"'], t['\\'], t['\n'], t['\r'], t['\t'] = 2, 2, 2, 2, 2
	return t
}()

// Word-at-a-time byte tests (Hacker's Delight / Bit Twiddling Hacks):
// hasZero reports whether some byte of x is 0, hasLess whether some byte
// is below n (n <= 128).
const lsb = 0x0101010101010101

func hasZero(x uint64) uint64           { return (x - lsb) &^ x & (lsb * 0x80) }
func hasLess(x uint64, n uint64) uint64 { return (x - lsb*n) &^ x & (lsb * 0x80) }

// word is s[i:i+8] as a little-endian word (one load on amd64 and arm64).
func word(s string, i int) uint64 {
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// needsEscape reports whether some byte of w must be escaped in a JSON
// string (a control byte, '"' or '\\').
func needsEscape(w uint64) bool {
	return hasLess(w, 0x20)|hasZero(w^(lsb*'"'))|hasZero(w^(lsb*'\\')) != 0
}

// str parses a string starting at the opening quote.
func (p *jsonParser) str() (string, error) {
	p.i++ // opening quote
	start := p.i
	b := p.b
	i := p.i
	ascii := uint64(0) // the OR of the words scanned 8 bytes at a time
	for i+8 <= len(b) {
		w := binary.LittleEndian.Uint64(b[i:])
		if needsEscape(w) {
			break
		}
		ascii |= w
		i += 8
	}
	for i < len(b) && escLen[b[i]] == 0 {
		i++
	}
	p.i = i
	switch {
	case i >= len(b):
		return "", p.fail()
	case b[i] == '"':
		raw := b[start:i]
		p.i++
		// Words without a high bit are ASCII: only the tail needs checking.
		check := raw
		if ascii&(lsb*0x80) == 0 {
			check = raw[(len(raw)/8)*8:]
		}
		if !utf8.Valid(check) {
			return "", fmt.Errorf("%w: string is not valid UTF-8", errJSON)
		}
		if p.owned && len(raw) > 0 {
			return unsafe.String(&raw[0], len(raw)), nil
		}
		return string(raw), nil
	case b[i] == '\\':
		return p.slowStr(start)
	}
	return "", p.fail()
}

// slowStr parses a string with escapes; start is just after the opening
// quote, p.i on the first backslash.
func (p *jsonParser) slowStr(start int) (string, error) {
	// Unescaped contents are never longer than their text: find where the
	// text ends (the first quote not escaped) and allocate once.
	end := p.i
	for end < len(p.b) && p.b[end] != '"' {
		if p.b[end] == '\\' {
			end++
		}
		end++
	}
	out, err := p.unquote(append(make([]byte, 0, min(end, len(p.b))-start), p.b[start:p.i]...))
	if err != nil {
		return "", err
	}
	// out is this string's own and never written again.
	return unsafe.String(unsafe.SliceData(out), len(out)), nil
}

// unquote appends to out the rest of the string at p.i, unescaped, and
// moves past its closing quote. out may share p.b's bytes before p.i: it
// never grows past what has been read.
func (p *jsonParser) unquote(out []byte) ([]byte, error) {
	for p.i < len(p.b) {
		run := p.i // copy up to the next quote, escape or control byte at once
		for run+8 <= len(p.b) && !needsEscape(binary.LittleEndian.Uint64(p.b[run:])) {
			run += 8 // a word at a time, as str does
		}
		for run < len(p.b) && escLen[p.b[run]] == 0 {
			run++
		}
		out = append(out, p.b[p.i:run]...)
		if p.i = run; p.i >= len(p.b) {
			break
		}
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				return nil, fmt.Errorf("%w: string is not valid UTF-8", errJSON)
			}
			return out, nil
		case c < 0x20:
			return nil, p.fail()
		}
		p.i++ // the backslash
		if p.i >= len(p.b) {
			return nil, p.fail()
		}
		e := p.b[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, p.fail()
			}
			if r >= 0xD800 && r < 0xDC00 {
				// a high surrogate must be followed by an escaped low one
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					lo, ok := p.hex4()
					if !ok {
						return nil, p.fail()
					}
					if lo >= 0xDC00 && lo < 0xE000 {
						r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					} else {
						return nil, fmt.Errorf("%w: unpaired surrogate", errJSON)
					}
				} else {
					return nil, fmt.Errorf("%w: unpaired surrogate", errJSON)
				}
			} else if r >= 0xDC00 && r < 0xE000 {
				return nil, fmt.Errorf("%w: unpaired surrogate", errJSON)
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, fmt.Errorf("%w: bad escape \\%c", errJSON, e)
		}
	}
	return nil, p.fail()
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}
