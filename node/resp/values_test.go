package resp

import (
	"encoding/json"
	"testing"
)

// FuzzRegisterBytes: GET of a register holding a JSON string answers what
// encoding/json decodes from it, for every string encoding/json writes.
func FuzzRegisterBytes(f *testing.F) {
	for _, s := range []string{"", "plain", `q"b\s`, "\n\t\r\b\f\x00", "\u2028é😀", "\xff", `\u00`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if got := registerBytes(raw); string(got) != want {
			t.Fatalf("registerBytes(%s) = %q; want %q", raw, got, want)
		}
	})
}
