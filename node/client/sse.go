package client

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// maxEventBytes bounds one line and the data of one event of a watch
// stream: a value of the node's default limit (1 MiB of JSON) grows up to
// six times when JSON escapes it again.
const maxEventBytes = 64 << 20

// errEventTooLarge: a line or an event's data beyond maxEventBytes.
var errEventTooLarge = fmt.Errorf("client: watch stream: event larger than %d bytes", maxEventBytes)

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	Type string // the "event" field; "message" when the event named none
	Data string // the "data" lines joined with "\n"
	// ID is the stream's last event ID once this event was dispatched (the
	// spec's lastEventId: it persists from earlier events).
	ID string
	// IDSet reports that this event's own lines set the last event ID.
	IDSet bool
}

// sseReader interprets a text/event-stream as the HTML standard says
// (https://html.spec.whatwg.org/multipage/server-sent-events.html,
// "Interpreting an event stream"): lines end with "\r\n", "\n" or "\r"; a
// line starting with ':' is a comment; "name: value" is a field, with one
// optional space after the colon, and a line without a colon is a field
// with an empty value; "data" lines are joined with "\n", "event" sets the
// type, "id" the last event ID (ignored when it holds NUL), "retry" the
// reconnection time (ignored unless ASCII digits); a blank line dispatches
// the event, unless it has no data; unknown fields are ignored. A leading
// byte order mark is skipped, invalid UTF-8 becomes U+FFFD, and an event
// not ended by a blank line when the stream ends is dropped.
type sseReader struct {
	r       *bufio.Reader
	max     int
	started bool // the byte order mark check is done
	skipLF  bool // the last line ended with '\r': a '\n' next belongs to it
	line    []byte

	data   []byte // the data buffer: each data line and a '\n'
	typ    string // the event type buffer
	lastID string // the last event ID buffer
	idSet  bool   // an id field since the last dispatch
	retry  time.Duration
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 32<<10), max: maxEventBytes}
}

// next returns the next dispatched event. At the end of the stream it
// returns io.EOF, or the reading error.
func (s *sseReader) next() (sseEvent, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if len(line) == 0 {
			if ev, ok := s.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			continue // a comment (the server's keep-alives)
		}
		name, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			name, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(name) {
		case "event":
			s.typ = string(value)
		case "data":
			if len(s.data)+len(value)+1 > s.max {
				return sseEvent{}, errEventTooLarge
			}
			s.data = append(s.data, value...)
			s.data = append(s.data, '\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				s.lastID, s.idSet = string(value), true
			}
		case "retry":
			if ms, ok := digits(value); ok {
				s.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// digits parses a non-empty run of ASCII digits, saturating at an hour.
func digits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < int64(time.Hour/time.Millisecond) {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, int64(time.Hour/time.Millisecond)), true
}

// dispatch ends the current event at a blank line; ok is false when it has
// no data (nothing is dispatched then).
func (s *sseReader) dispatch() (sseEvent, bool) {
	ev := sseEvent{ID: s.lastID, IDSet: s.idSet}
	data, typ := s.data, s.typ
	s.data, s.typ, s.idSet = s.data[:0], "", false
	if len(data) == 0 {
		return sseEvent{}, false
	}
	ev.Data = string(data[:len(data)-1])
	ev.Type = typ
	if ev.Type == "" {
		ev.Type = "message"
	}
	return ev, true
}

// readLine returns the next complete line without its end. A line the
// stream ends in the middle of is not returned (io.EOF).
func (s *sseReader) readLine() ([]byte, error) {
	s.line = s.line[:0]
	if s.skipLF {
		b, err := s.r.Peek(1)
		if len(b) == 0 {
			return nil, err
		}
		if b[0] == '\n' {
			_, _ = s.r.Discard(1)
		}
		s.skipLF = false
	}
	if !s.started {
		s.started = true
		b, err := s.r.Peek(3)
		if err != nil {
			return nil, err // under 3 bytes in all: no event can be in them
		}
		if bytes.Equal(b, []byte("\xEF\xBB\xBF")) {
			_, _ = s.r.Discard(3)
		}
	}
	for {
		if s.r.Buffered() == 0 {
			if _, err := s.r.Peek(1); err != nil {
				return nil, err
			}
		}
		buf, _ := s.r.Peek(s.r.Buffered())
		i := bytes.IndexAny(buf, "\r\n")
		end := i
		if i < 0 {
			end = len(buf)
		}
		if len(s.line)+end > s.max {
			return nil, errEventTooLarge
		}
		s.line = append(s.line, buf[:end]...)
		if i < 0 {
			_, _ = s.r.Discard(len(buf))
			continue
		}
		_, _ = s.r.Discard(i + 1)
		s.skipLF = buf[i] == '\r'
		if !utf8.Valid(s.line) {
			s.line = []byte(strings.ToValidUTF8(string(s.line), "\uFFFD"))
		}
		return s.line, nil
	}
}

// isEOF reports whether err means the stream ended (cleanly or cut).
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
