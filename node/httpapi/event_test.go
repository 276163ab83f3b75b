package httpapi

import (
	"bytes"
	"testing"

	"github.com/shoaldb/shoal/node"

	"pgregory.net/rapid"
)

// jsonText draws strings that take every path of httpAppendString: plain
// ASCII, quotes and backslashes, control bytes, HTML characters, line
// separators, other non-ASCII and invalid UTF-8.
func jsonText() *rapid.Generator[string] {
	parts := []string{"a", "key/1", " ", `"`, `\`, "\n", "\t", "\x00", "\x1f", "\x7f", "<", ">", "&",
		"\u2028", "\u2029", "é", "日本", "\U0001F600", "\xff", "\xc3"}
	return rapid.Custom(func(t *rapid.T) string {
		var b bytes.Buffer
		for range rapid.IntRange(0, 6).Draw(t, "n") {
			b.WriteString(rapid.SampledFrom(parts).Draw(t, "part"))
		}
		return b.String()
	})
}

// TestAppendEventJSONMatchesMarshal: the hand-written event encoding is
// byte for byte what encoding/json writes for the same event, so the watch
// stream's format is the one the API documents.
func TestAppendEventJSONMatchesMarshal(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		text := jsonText()
		e := httpEvent{
			Kind:    rapid.SampledFrom([]string{"", "reset", "state", "synced", "expired"}).Draw(t, "kind"),
			Key:     text.Draw(t, "key"),
			Type:    rapid.SampledFrom([]string{"", "register", "counter", "set", "map"}).Draw(t, "type"),
			Deleted: rapid.Bool().Draw(t, "deleted"),
			Origin:  text.Draw(t, "origin"),
			Offset:  rapid.Uint64().Draw(t, "offset"),
		}
		var data any
		switch rapid.IntRange(0, 4).Draw(t, "value") {
		case 1:
			data = text.Draw(t, "string")
		case 2:
			data = rapid.Int64().Draw(t, "number")
		case 3:
			data = map[string]any{text.Draw(t, "field"): []string{text.Draw(t, "member")},
				"n": map[string]any{"inner": []string{}, "x": 1.5}}
		case 4:
			data = []any{true, nil, text.Draw(t, "item")}
		}
		if data != nil {
			v, err := rawValue(data)
			if err != nil { // invalid UTF-8 in a value: AppendEvent answers the error event
				t.Skip(err)
			}
			e.Value = v
			e.Sets = setPaths(data)
		}
		want, err := marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEventJSON([]byte("x"), &e); !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("appendEventJSON\n got %q\nwant %q", got[1:], want)
		}
	})
}

// TestAppendEventErrorStillJSON: a value that cannot be encoded gives the
// error event, as before.
func TestAppendEventErrorStillJSON(t *testing.T) {
	ev := node.Event{Key: "k", Type: node.TypeRegister, Data: "bad \xff", Offset: 7}
	got := string(AppendEvent(nil, &ev, true))
	if want := "id: 7\ndata: {\"error\":"; !bytes.HasPrefix([]byte(got), []byte(want)) {
		t.Fatalf("got %q, want it to start with %q", got, want)
	}
}

// BenchmarkAppendEvent: one watch event of a 256-byte register value,
// encoded by hand (appendEventJSON) and by encoding/json (marshal), in the
// same run.
func BenchmarkAppendEvent(b *testing.B) {
	v, err := rawValue(string(bytes.Repeat([]byte("v"), 256)))
	if err != nil {
		b.Fatal(err)
	}
	e := httpEvent{Key: "bench/00012345", Type: "register", Value: v, Origin: "4f2a9c0d11e3b7a5", Offset: 123456}
	b.Run("hand", func(b *testing.B) {
		var buf []byte
		for range b.N {
			buf = appendEventJSON(buf[:0], &e)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		var buf []byte
		for range b.N {
			data, err := marshal(e)
			if err != nil {
				b.Fatal(err)
			}
			buf = append(buf[:0], data...)
		}
	})
}

// TestAppendValueAnswerMatchesMarshal: GET's and PUT's hand-written
// answer is byte for byte what encoding/json writes for it.
func TestAppendValueAnswerMatchesMarshal(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		text := jsonText()
		a := httpValueAnswer{Key: text.Draw(t, "key"), Type: text.Draw(t, "type")}
		if rapid.Bool().Draw(t, "expires") {
			a.Expires = text.Draw(t, "expiry")
		}
		var data any
		switch rapid.IntRange(0, 3).Draw(t, "value") {
		case 1:
			data = text.Draw(t, "string")
		case 2:
			data = map[string]any{text.Draw(t, "field"): []string{text.Draw(t, "member")},
				"n": map[string]any{"inner": []string{}, "x": -2}}
		case 3:
			data = []any{false, nil, 1e300, text.Draw(t, "item")}
		}
		if data != nil {
			v, err := rawValue(data)
			if err != nil {
				t.Skip(err)
			}
			a.Value, a.Sets = v, setPaths(data)
		}
		want, err := marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendValueAnswer([]byte("x"), &a); !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("appendValueAnswer\n got %q\nwant %q", got[1:], want)
		}
	})
}
