package resp

import (
	"encoding/json"
	"testing"
)

// FuzzUnquote: unquote agrees with encoding/json on every string it
// accepts, and accepts every string encoding/json writes.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{"", "plain", `q"b\s`, "\n\t\r\b\f\x00", "\u2028é😀", "\xff", `\u00`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		got, ok := unquote(raw)
		if !ok || string(got) != want {
			t.Fatalf("unquote(%s) = %q, %v; want %q", raw, got, ok, want)
		}
		// Arbitrary bytes as JSON: where both decode, they agree.
		in := []byte(`"` + s + `"`)
		if got, ok := unquote(in); ok {
			var w string
			if json.Unmarshal(in, &w) == nil && string(got) != w {
				t.Fatalf("unquote(%q) = %q, encoding/json %q", in, got, w)
			}
		}
	})
}
