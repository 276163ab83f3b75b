package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/httpapi"
)

// readAll parses a whole stream.
func readAll(r io.Reader) ([]sseEvent, *sseReader, error) {
	s := newSSEReader(r)
	var evs []sseEvent
	for {
		ev, err := s.next()
		if err != nil {
			return evs, s, err
		}
		evs = append(evs, ev)
	}
}

func msg(data, id string, idSet bool) sseEvent {
	return sseEvent{Type: "message", Data: data, ID: id, IDSet: idSet}
}

// TestSSEInterpretation checks the parser against the rules of the HTML
// standard's event stream interpretation, one rule per case.
func TestSSEInterpretation(t *testing.T) {
	for _, tt := range []struct {
		name, stream string
		want         []sseEvent
	}{
		{"LF line ends", "data: a\n\n", []sseEvent{msg("a", "", false)}},
		{"CRLF line ends", "data: a\r\n\r\ndata: b\r\n\r\n", []sseEvent{msg("a", "", false), msg("b", "", false)}},
		{"CRLF is one line end", "data: a\r\ndata: b\r\nid: 1\r\n\r\n", []sseEvent{msg("a\nb", "1", true)}},
		{"CR line ends", "data: a\r\rdata: b\r\r", []sseEvent{msg("a", "", false), msg("b", "", false)}},
		{"mixed line ends", "data: a\rdata: b\r\n\ndata: c\n\r", []sseEvent{msg("a\nb", "", false), msg("c", "", false)}},
		{"no space after the colon", "data:a\n\n", []sseEvent{msg("a", "", false)}},
		{"only one space is removed", "data:  a \n\n", []sseEvent{msg(" a ", "", false)}},
		{"a colon in the value", "data: a: b:c\n\n", []sseEvent{msg("a: b:c", "", false)}},
		{"data lines join with LF", "data: {\ndata:\ndata: }\n\n", []sseEvent{msg("{\n\n}", "", false)}},
		{"a field without colon has an empty value", "data\ndata\n\n", []sseEvent{msg("\n", "", false)}},
		{"an empty data line is an event", "data:\n\n", []sseEvent{msg("", "", false)}},
		{"comments are ignored", ": hello\n:\ndata: a\n: mid\n\n", []sseEvent{msg("a", "", false)}},
		{"unknown fields are ignored", "foo: bar\nData: x\ndata: a\n\n", []sseEvent{msg("a", "", false)}},
		{"no data, no event", "event: x\nid: 1\n\n\n\ndata: a\n\n", []sseEvent{msg("a", "1", false)}},
		{"event sets the type", "event: error\ndata: x\n\ndata: y\n\n", []sseEvent{{Type: "error", Data: "x"}, msg("y", "", false)}},
		{"an empty event type is message", "event:\ndata: x\n\n", []sseEvent{msg("x", "", false)}},
		{"the last event field wins", "event: a\nevent: b\ndata: x\n\n", []sseEvent{{Type: "b", Data: "x"}}},
		{"id persists", "id: 7\ndata: a\n\ndata: b\n\n", []sseEvent{msg("a", "7", true), msg("b", "7", false)}},
		{"id after data in the block", "data: a\nid: 8\n\n", []sseEvent{msg("a", "8", true)}},
		{"an empty id resets", "id: 7\ndata: a\n\nid\ndata: b\n\n", []sseEvent{msg("a", "7", true), msg("b", "", true)}},
		{"an id with NUL is ignored", "id: 7\ndata: a\n\nid: 8\x009\ndata: b\n\n", []sseEvent{msg("a", "7", true), msg("b", "7", false)}},
		{"id keeps its spaces after the first", "id:  9 \ndata: a\n\n", []sseEvent{msg("a", " 9 ", true)}},
		{"a byte order mark is skipped", "\xEF\xBB\xBFdata: a\n\n", []sseEvent{msg("a", "", false)}},
		{"only one leading BOM", "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n", []sseEvent{msg("b", "", false)}},
		{"invalid UTF-8 becomes U+FFFD", "data: a\xffb\n\n", []sseEvent{msg("a\uFFFDb", "", false)}},
		{"the final event without a blank line is dropped", "data: a\n\ndata: b\n", []sseEvent{msg("a", "", false)}},
		{"an unterminated last line is dropped", "data: a\n\ndata: b", []sseEvent{msg("a", "", false)}},
		{"a CR at the end of the stream", "data: a\r\r", []sseEvent{msg("a", "", false)}},
		{"nothing", "", nil},
		{"short", "\n\n", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, split := range []bool{false, true} {
				var r io.Reader = strings.NewReader(tt.stream)
				if split {
					r = iotest.OneByteReader(r) // a CR and its LF in different reads
				}
				got, _, err := readAll(r)
				if err != io.EOF {
					t.Fatalf("err %v, want io.EOF", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("one byte at a time %t:\n got %#v\nwant %#v", split, got, tt.want)
				}
			}
		})
	}
}

func TestSSERetry(t *testing.T) {
	for stream, want := range map[string]time.Duration{
		"retry: 1500\n\n":         1500 * time.Millisecond,
		"retry: 15x\n\n":          0,
		"retry: -1\n\n":           0,
		"retry:\n\n":              0,
		"retry: 1\nretry: 2.5\n":  time.Millisecond,
		"retry: 99999999999999\n": time.Hour,
	} {
		_, r, _ := readAll(strings.NewReader(stream))
		if r.retry != want {
			t.Errorf("%q: retry %v, want %v", stream, r.retry, want)
		}
	}
}

// TestSSEBounds: a line or an event's data beyond the bound is an error,
// not an unbounded buffer.
func TestSSEBounds(t *testing.T) {
	for _, stream := range []string{
		"data: " + strings.Repeat("a", 100) + "\n\n",
		strings.Repeat("data: "+strings.Repeat("a", 30)+"\n", 4) + "\n",
		": " + strings.Repeat("c", 100) + "\n",
	} {
		r := newSSEReader(strings.NewReader(stream))
		r.max = 64
		if _, err := r.next(); !errors.Is(err, errEventTooLarge) {
			t.Errorf("%.20q...: err %v, want errEventTooLarge", stream, err)
		}
	}
}

// TestSSEWatchStream reads a stream as the server writes it: change events
// decode into node.Events, and the error event into the mapped error.
func TestSSEWatchStream(t *testing.T) {
	stream := ": shoal watch\n\n: keep-alive\n\n" +
		"id: 7\nevent: message\ndata: {\"key\":\"a\",\"type\":\"register\",\"value\":1,\"origin\":\"r\",\"offset\":7}\n\n" +
		"data: {\"key\":\"b\",\"deleted\":true,\n" + "data: \"origin\":\"r\",\"offset\":8}\n\n" +
		"event: error\ndata: {\"error\":\"node: slow subscriber: more than 1 events behind\",\"code\":\"slow_subscriber\"}\n\n"
	evs, _, err := readAll(strings.NewReader(stream))
	if err != io.EOF || len(evs) != 3 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	a, err := decodeEvent(evs[0].Data)
	if err != nil || !reflect.DeepEqual(a, node.Event{Key: "a", Type: node.TypeRegister, Data: int64(1), Origin: "r", Offset: 7}) || evs[0].ID != "7" {
		t.Fatalf("first: %#v %v (id %q)", a, err, evs[0].ID)
	}
	b, err := decodeEvent(evs[1].Data)
	if err != nil || !reflect.DeepEqual(b, node.Event{Key: "b", Deleted: true, Origin: "r", Offset: 8}) || evs[1].IDSet {
		t.Fatalf("second: %#v %v", b, err)
	}
	if evs[2].Type != "error" {
		t.Fatalf("third: %#v", evs[2])
	}
	err = eventError(evs[2].Data)
	var ae *APIError
	if !errors.Is(err, node.ErrSlowSubscriber) || !errors.As(err, &ae) || ae.Message != "node: slow subscriber: more than 1 events behind" {
		t.Fatalf("error event: %#v", err)
	}
	for _, bad := range []string{`{"key":`, `[]`, `"key"`, `{"key":1,"origin":"r","offset":1}`, `{"key":"k","offset":-1}`,
		`{"key":"k","offset":1.5}`, `{"key":"k","deleted":"yes"}`, `{"key":"k","kind":"later"}`,
		`{"key":"k","type":"map","value":{"s":[1]},"sets":[["s"]]}`, `{"key":"k","sets":[[1]]}`,
		`{"key":"k","type":"counter","value":"x"}`, `{"key":"k","type":"set","value":[1]}`,
		`{"key":"k","offset":3,"error":"too big"}`} {
		if ev, err := decodeEvent(bad); !errors.Is(err, errBadEvent) {
			t.Errorf("malformed event %s: %#v, %v", bad, ev, err)
		}
	}
	// null is a zero value; fields the client does not know are ignored.
	ev, err := decodeEvent(`{"kind":null,"key":"k","type":"register","value":null,"sets":null,"deleted":null,"origin":"r","offset":0,"new":[1]}`)
	if err != nil || !reflect.DeepEqual(ev, node.Event{Key: "k", Type: node.TypeRegister, Origin: "r"}) {
		t.Fatalf("nulls: %#v, %v", ev, err)
	}
}

// BenchmarkDecodeEvent: one watch event of a 256-byte register.
func BenchmarkDecodeEvent(b *testing.B) {
	data := `{"key":"bench/00012345","type":"register","value":"` + strings.Repeat("v", 256) + `","origin":"4f2a9c0d11e3b7a5","offset":123456}`
	for range b.N {
		if _, err := decodeEvent(data); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzSSE: whatever a server streams, the parser returns events or an
// error and never panics; and events written by the server's own writer,
// between keep-alives, parse back to what was written, the error event to
// its sentinel.
func FuzzSSE(f *testing.F) {
	f.Add([]byte("id: 1\ndata: {\"key\":\"a\",\"offset\":1}\n\n"), "k", "v", uint64(1), false, 0)
	f.Add([]byte("event: error\ndata: {\"error\":\"x\"}\n\n"), "a/b", "line\nbreak\r\n", uint64(1<<40), true, 3)
	f.Add([]byte(": c\r\n\r\ndata: {\rdata: }\r\r"), "ключ", "\u2028<&>", uint64(0), false, 1)
	f.Add([]byte("data: [1,2]\n\nid\n\nretry: 10\n\n\xEF\xBB\xBF"), "\x00", "data: x\n\n", uint64(7), true, 2)
	f.Fuzz(func(t *testing.T, raw []byte, key, value string, offset uint64, deleted bool, kind int) {
		_, _, _ = readAll(bytes.NewReader(raw))
		_, _, _ = readAll(iotest.OneByteReader(bytes.NewReader(raw)))

		// The round trip: values of each type, as the node gives them.
		var data any
		typ := []node.Type{node.TypeRegister, node.TypeCounter, node.TypeSet, node.TypeMap}[uint(kind)%4]
		switch typ {
		case node.TypeRegister:
			data = value
		case node.TypeCounter:
			data = int64(offset)
		case node.TypeSet:
			data = []string{key, value}
		case node.TypeMap:
			data = map[string]any{key: []string{value}, "n": map[string]any{value: []string{}, "r": []any{key}}}
		}
		want := []node.Event{
			{Key: key, Type: typ, Data: data, Origin: "o", Offset: offset},
			{Key: value, Deleted: true, Origin: key, Offset: offset + 1},
		}
		if deleted {
			want = want[1:]
		}
		var stream []byte
		for i := range want {
			stream = append(stream, ": keep-alive\n\n"...)
			stream = httpapi.AppendEvent(stream, &want[i], i%2 == 0)
		}
		stream = httpapi.AppendErrorEvent(stream, fmt.Errorf("%w: %s", node.ErrSlowSubscriber, value))
		evs, _, err := readAll(bytes.NewReader(stream))
		if err != io.EOF || len(evs) != len(want)+1 {
			t.Fatalf("%d events (%v) from %q", len(evs), err, stream)
		}
		for i, w := range want {
			if !utf8.ValidString(key) || !utf8.ValidString(value) {
				return // JSON replaces invalid UTF-8: nothing to compare
			}
			got, err := decodeEvent(evs[i].Data)
			if err != nil || !reflect.DeepEqual(got, w) {
				t.Fatalf("event %d: %#v (%v), want %#v", i, got, err, w)
			}
			if evs[i].IDSet != (i%2 == 0) || evs[i].IDSet && evs[i].ID != fmt.Sprint(w.Offset) {
				t.Fatalf("event %d: id %q set %t", i, evs[i].ID, evs[i].IDSet)
			}
		}
		if last := evs[len(evs)-1]; last.Type != "error" || !errors.Is(eventError(last.Data), node.ErrSlowSubscriber) {
			t.Fatalf("error event: %#v", last)
		}
	})
}
