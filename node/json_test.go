package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestCanonicalJSON(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{nil, `null`},
		{map[string]any{"b": 1, "a": []any{"<&>", 1.5}}, `{"a":["<&>",1.5],"b":1}`},
		{"\u2028\x00\x1f\"\\/", `"` + "\u2028" + `\u0000\u001f\"\\/"`},
		{1e21, `1e+21`},
		{1e20, `1e+20`}, // integral beyond int64: an exponent, so it reads back as a float64
		{1e-7, `1e-7`},
		{-0.000001, `-0.000001`},
		{math.Copysign(0, -1), `0`},
		{float32(1.1), `1.1`},
		{json.Number("-0"), `0`},
		{json.Number("1.0"), `1`},
		{json.Number("100000000000000000000000"), `100000000000000000000000`},
		{json.RawMessage(" [ 1 , {\"b\":2,\"a\":\"\\u00e9\\n\"} ] "), `[1,{"a":"é\n","b":2}]`},
		{json.RawMessage(`"\ud83d\ude00"`), `"😀"`},
	}
	for _, c := range cases {
		got, err := encodeValue(c.in)
		if err != nil || string(got) != c.want {
			t.Errorf("encode %#v = %s, %v; want %s", c.in, got, err, c.want)
			continue
		}
		// Canonical bytes are valid JSON and a fixed point.
		if !json.Valid(got) {
			t.Errorf("%s is not valid JSON", got)
		}
		again, err := encodeValue(json.RawMessage(got))
		if err != nil || !bytes.Equal(again, got) {
			t.Errorf("canonical form of %s is not a fixed point: %s, %v", got, again, err)
		}
	}
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`{"a":[1,2.5,-3e2,"x",true,false,null,{}],"b":{"c":[]}}`,
		`"esc \" \\ \/ \b \f \n \r \t \u0041 \u00e9 \ud83d\ude00"`,
		`-9223372036854775808`, `9223372036854775807`, `9223372036854775808`,
		` 12 `,
	} {
		got, err := decodeValue([]byte(s))
		var want any
		d := json.NewDecoder(bytes.NewReader([]byte(s)))
		d.UseNumber()
		werr := d.Decode(&want)
		if (err != nil) != (werr != nil) {
			t.Errorf("%s: decode error %v, encoding/json %v", s, err, werr)
			continue
		}
		if err != nil {
			continue
		}
		if !reflect.DeepEqual(got, normaliseNumbers(want)) {
			t.Errorf("%s: decoded %#v, encoding/json %#v", s, got, want)
		}
	}
	// Unlike encoding/json, numbers beyond float64 are refused: they have
	// no Go value and Put never stores them.
	if _, err := decodeValue([]byte(`1e400`)); err == nil {
		t.Error("1e400 decoded")
	}
}

// normaliseNumbers applies the documented number rule to encoding/json's output.
func normaliseNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		if !strings.ContainsAny(string(x), ".eE") && strconv.FormatFloat(f, 'f', 0, 64) != string(x) {
			return x // an integer beyond int64 that a float64 would round keeps its digits
		}
		if f == math.Trunc(f) && f >= -1<<63 && f < 1<<63 {
			return int64(f)
		}
		return f
	case []any:
		for i := range x {
			x[i] = normaliseNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normaliseNumbers(x[k])
		}
	}
	return v
}

// FuzzJSON: the value decoder never panics; what it accepts encoding/json
// accepts too, and canonicalising is a fixed point.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e3,"x\u00e9",true,null]}`, `"\ud800"`, `[[[]]]`, `-0.0e-0`, `{"a":1,"a":2}`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeValue(b)
		in := bytes.Clone(b)
		if u, uerr := AppendUnquoted([]byte("x"), b); uerr == nil {
			if str, ok := v.(string); err != nil || !ok || "x"+str != string(u) {
				t.Fatalf("AppendUnquoted(%q) = %q; decodeValue: %#v, %v", b, u, v, err)
			}
		} else if str, ok := v.(string); ok && err == nil && b[0] == '"' && b[len(b)-1] == '"' {
			t.Fatalf("AppendUnquoted(%q) failed (%v); decodeValue: %q", b, uerr, str)
		}
		if !bytes.Equal(in, b) {
			t.Fatalf("AppendUnquoted changed its input %q to %q", in, b)
		}
		// In place (dst = s[:0]): the same contents, or the same failure.
		u, uerr := AppendUnquoted([]byte("x"), b)
		own := bytes.Clone(b)
		if ip, iperr := AppendUnquoted(own[:0], own); (iperr == nil) != (uerr == nil) ||
			uerr == nil && !bytes.Equal(ip, u[1:]) {
			t.Fatalf("AppendUnquoted(%q) in place = %q, %v; into another buffer %q, %v", b, ip, iperr, u, uerr)
		}
		checkPlainString(t, b)
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		if str, ok := v.(string); ok {
			var want string
			if err := json.Unmarshal(b, &want); err != nil || str != want {
				t.Fatalf("%q decodes to %q, encoding/json says %q (%v)", b, str, want, err)
			}
		}
		c1, err := encodeValue(json.RawMessage(b))
		if err != nil {
			t.Fatalf("decodable %q does not canonicalise: %v", b, err)
		}
		c2, err := encodeValue(json.RawMessage(c1))
		if err != nil || !bytes.Equal(c1, c2) {
			t.Fatalf("not a fixed point: %q -> %q -> %q (%v)", b, c1, c2, err)
		}
		v2, err := decodeValue(c1)
		if err != nil {
			t.Fatalf("canonical %q does not decode: %v", c1, err)
		}
		if !reflect.DeepEqual(v, v2) && !hasNaNish(v) {
			t.Fatalf("canonicalising changed the value: %#v vs %#v", v, v2)
		}
	})
}

// hasNaNish reports values DeepEqual cannot compare (none today; kept
// for float edge cases).
func hasNaNish(v any) bool {
	f, ok := v.(float64)
	return ok && f != f
}

// checkPlainString: a body plainString keeps as it is canonicalises, by
// the parser, to exactly those bytes.
func checkPlainString(t *testing.T, raw []byte) {
	t.Helper()
	s, ok := plainString(raw)
	if !ok {
		return
	}
	want, err := appendJSON(nil, json.RawMessage(raw), 0)
	if err != nil || !bytes.Equal(s, want) {
		t.Fatalf("plainString(%q) = %q; the parser canonicalises it to %q (%v)", raw, s, want, err)
	}
}

// plainString keeps exactly the strings that are their own canonical form,
// whatever the position of the byte that makes one not so.
func TestPlainStringPositions(t *testing.T) {
	for n := range 30 {
		for _, c := range []string{`"`, `\`, `\n`, `\u00e9`, "\n", "\x00", "\x1f", "é", "😀", "<", "\x7f", "\xff", "\xe2\x82"} {
			for at := 0; at <= n; at++ {
				raw := []byte(" \t\"" + strings.Repeat("a", at) + c + strings.Repeat("b", n-at) + "\"\r\n")
				checkPlainString(t, raw)
				_, kept := plainString(raw)
				plain := c == "é" || c == "😀" || c == "<" || c == "\x7f"
				if kept != plain {
					t.Fatalf("plainString(%q) kept it: %v, want %v", raw, kept, plain)
				}
				v, err := encodeValue(json.RawMessage(raw))
				w, werr := appendJSON(nil, json.RawMessage(raw), 0)
				if (err == nil) != (werr == nil) || !bytes.Equal(v, w) {
					t.Fatalf("encodeValue(%q) = %q, %v; the parser: %q, %v", raw, v, err, w, werr)
				}
			}
		}
	}
	for _, raw := range []string{`""`, `"`, ` `, `"a" "b"`, `"a",`, `1`, `["a"]`, `"a\"`} {
		checkPlainString(t, []byte(raw))
	}
}

// The word-at-a-time string scan finds stops and non-ASCII bytes at every
// position of an 8-byte word.
func TestStringScanPositions(t *testing.T) {
	for n := range 40 {
		for _, c := range []string{"\"", "\\n", "\x01", "é", "\xff"} {
			for at := 0; at <= n; at++ {
				s := strings.Repeat("a", at) + c + strings.Repeat("b", n-at)
				raw := []byte(`"` + s + `"`)
				if c == "\x01" || c == "\"" || c == "\xff" {
					raw = append([]byte(`"`), []byte(s)...)
					raw = append(raw, '"')
				}
				got, err := decodeValue(raw)
				var want any
				werr := json.Unmarshal(raw, &want)
				if c == "\xff" {
					werr = errors.New("invalid UTF-8") // encoding/json replaces it; we refuse
				}
				if (err == nil) != (werr == nil) || err == nil && got != want {
					t.Fatalf("%q: got %#v, %v; want %#v, %v", raw, got, err, want, werr)
				}
			}
		}
	}
}

// appendString escapes correctly whatever the position of the special
// byte within the 8-byte words it scans.
func TestAppendStringPositions(t *testing.T) {
	for n := range 30 {
		for _, c := range []string{"\"", "\\", "\n", "\x00", "\x1f", "é", "😀", "<", "\xff"} {
			for at := 0; at <= n; at++ {
				s := strings.Repeat("a", at) + c + strings.Repeat("b", n-at)
				out, err := appendString(nil, s)
				if c == "\xff" {
					if err == nil {
						t.Fatalf("%q: invalid UTF-8 accepted", s)
					}
					continue
				}
				var back string
				if err != nil || !json.Valid(out) || json.Unmarshal(out, &back) != nil || back != s {
					t.Fatalf("%q: encoded %q (%v), decodes to %q", s, out, err, back)
				}
			}
		}
	}
}

// TestValuesReadBackAsStored: every value Put accepts is read back as
// stored; what cannot be (a number beyond float64, duplicate object keys,
// one container too many) is refused at Put.
func TestValuesReadBackAsStored(t *testing.T) {
	n, _ := openTest(t, nil)
	huge := "1" + strings.Repeat("0", 400)
	if err := n.Put("big", json.RawMessage(huge)); err != nil {
		t.Fatal(err)
	}
	if v, err := n.Get("big"); err != nil || v.Data != json.Number(huge) {
		t.Fatalf("a 401-digit integer reads back as %v, %v", v.Data, err)
	}
	nest := func(levels int) json.RawMessage {
		return json.RawMessage(strings.Repeat("[", levels) + strings.Repeat("]", levels))
	}
	nestGo := func(levels int) any {
		var v any = []any{}
		for i := 1; i < levels; i++ {
			v = []any{v}
		}
		return v
	}
	for _, c := range []struct {
		name  string
		value any
		ok    bool
	}{
		{"64 levels of JSON", nest(MaxDepth), true},
		{"65 levels of JSON", nest(MaxDepth + 1), false},
		{"64 levels of Go values", nestGo(MaxDepth), true},
		{"65 levels of Go values", nestGo(MaxDepth + 1), false},
		{"64 levels in a document field", json.RawMessage(`{"a":` + string(nest(MaxDepth-1)) + `}`), true},
		{"65 levels in a document field", json.RawMessage(`{"a":` + string(nest(MaxDepth)) + `}`), false},
		{"duplicate object keys", json.RawMessage(`{"a":1,"a":2}`), false},
		{"nested duplicate keys", json.RawMessage(`[{"b":{"x":1,"x":1}}]`), false},
		{"a number beyond float64", json.RawMessage(`1e400`), false},
		{"a negative one", json.RawMessage(`-1.5e309`), false},
	} {
		err := n.Put("k", c.value)
		if c.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidValue)) {
			t.Errorf("%s: Put = %v", c.name, err)
		}
		if c.ok {
			if _, err := n.Get("k"); err != nil {
				t.Errorf("%s: Get = %v", c.name, err)
			}
		}
	}
}

// TestJSONAnswers: PutJSON answers the stored canonical bytes, GetJSON
// reads them back unchanged (no HTML escaping, no rounding), for every
// type, and AppendJSON appends the same.
func TestJSONAnswers(t *testing.T) {
	n, _ := openTest(t, nil)
	getJSON := func(key string) (Type, []byte, error) {
		typ, b, err := n.GetJSON(key)
		atyp, ab, aerr := n.AppendJSON([]byte("pre"), key)
		if atyp != typ || (aerr == nil) != (err == nil) || string(ab) != "pre"+string(b) {
			t.Fatalf("AppendJSON(%s) = %s %q, %v; GetJSON = %s %q, %v", key, atyp, ab, aerr, typ, b, err)
		}
		return typ, b, err
	}
	for _, c := range []struct{ in, stored string }{
		{`{"b": "<&>", "a": -0}`, `{"a":0,"b":"<&>"}`},
		{`123456789012345678901234567890`, `123456789012345678901234567890`},
		{`1e20`, `1e+20`},
		{` [1.50, "x"] `, `[1.5,"x"]`},
	} {
		got, err := n.PutJSON("k", []byte(c.in))
		if err != nil || string(got) != c.stored {
			t.Fatalf("PutJSON(%s) = %s, %v; want %s", c.in, got, err, c.stored)
		}
		typ, back, err := getJSON("k")
		if err != nil || typ != TypeRegister || string(back) != c.stored {
			t.Fatalf("GetJSON after %s = %s %s, %v", c.in, typ, back, err)
		}
	}
	if _, err := n.PutJSON("k", []byte(`{"a":1,"a":2}`)); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("duplicate keys: %v", err)
	}
	if b, err := n.PutJSONAppend([]byte("pre"), "k2", []byte(` [1.50] `), WriteOptions{}); err != nil || string(b) != `pre[1.5]` {
		t.Fatalf("PutJSONAppend = %q, %v", b, err)
	}
	if b, err := n.PutJSONAppend([]byte("pre"), "k2", []byte(`[`), WriteOptions{}); !errors.Is(err, ErrInvalidValue) || string(b) != "pre" {
		t.Fatalf("PutJSONAppend of malformed JSON = %q, %v", b, err)
	}
	n.Incr("c", -3)
	n.SetAdd("s", "b", "<a>")
	n.Update("m", Patch{Set: map[string]any{"t": "x"}, Incr: map[string]int64{"n": 2}})
	for key, want := range map[string]string{"c": `-3`, "s": `["<a>","b"]`, "m": `{"n":2,"t":"x"}`} {
		if _, got, err := getJSON(key); err != nil || string(got) != want {
			t.Errorf("GetJSON(%s) = %s, %v; want %s", key, got, err, want)
		}
	}
	if _, _, err := getJSON("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetJSON of a missing key: %v", err)
	}
}

// TestEncodeValueExactSize: an encoded string or scalar is allocated once
// at its size, escapes included (the state keeps it: slack would be kept
// too).
func TestEncodeValueExactSize(t *testing.T) {
	for _, v := range []any{"plain", strings.Repeat(`a"b\c`+"\n\t\x01", 40), "é\"\x1f", "",
		strings.Repeat("VXKeHogKgJ=[5V9_X^b?48OKF2jGA<f:iR@\\", 7), // a few escapes: growth would double
		int64(1234567), -1.5e300, true, nil, uint64(1 << 63)} {
		b, err := encodeValue(v)
		if err != nil {
			t.Fatal(err)
		}
		if want := cap(append([]byte(nil), b...)); cap(b) > want { // one allocation of len(b)
			t.Errorf("%.20v: %d bytes in a buffer of %d, not %d", v, len(b), cap(b), want)
		}
		if n := testing.AllocsPerRun(10, func() { _, _ = encodeValue(v) }); n > 1 {
			t.Errorf("%.20v: %v allocations", v, n)
		}
	}
}
