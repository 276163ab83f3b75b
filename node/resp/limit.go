package resp

import (
	"errors"
	"io"
)

// maxInlineBytes bounds an inline (telnet-style) command line, as Redis's
// PROTO_INLINE_MAX_SIZE does.
const maxInlineBytes = 64 << 10

// errProtocol is a request that breaks the protocol or a limit: the
// connection answers it once and closes.
type errProtocol struct{ msg string }

func (e *errProtocol) Error() string { return "Protocol error: " + e.msg }

// limitReader watches the RESP framing of the bytes a connection reads
// before redcon's parser buffers them, and fails the read at the first
// header that exceeds a limit: redcon itself grows its buffer to whatever
// a header announces. It follows the framing only as far as it needs to
// count; malformed framing is left to redcon, which rejects it.
type limitReader struct {
	r        io.Reader
	maxArgs  int
	maxBulk  int
	maxTotal int

	state   uint8 // what the next byte is (see the states below)
	num     int64 // the number being read
	digits  int
	args    int // arguments left in the current command
	skip    int // bulk bytes (and CRLF) left to skip
	total   int // bytes of the current command so far
	inline  int // bytes of the current inline line so far
	pending error
}

const (
	stStart     uint8 = iota // the first byte of a command
	stArrayLen               // digits of *<n>
	stBulkStart              // '$' of the next argument
	stBulkLen                // digits of $<n>
	stBulkBody               // skipping an argument's bytes and its CRLF
	stInline                 // an inline command, up to '\n'
)

func (l *limitReader) Read(p []byte) (int, error) { return l.read(p, true) }

// read is Read; inline false sends every byte through scan (the reference
// the inline path is tested against).
func (l *limitReader) read(p []byte, inline bool) (int, error) {
	if l.pending != nil {
		return 0, l.pending
	}
	n, err := l.r.Read(p)
	got := p[:n]
	for i := 0; i < n; i++ {
		if inline && (l.state == stArrayLen || l.state == stBulkLen) {
			// A count's digits and its '\r' without a call (most of a
			// pipelined command's framing), when scan would only count
			// them: within 18 digits and the command's limit.
			b := got[i]
			if l.total < l.maxTotal && ((b >= '0' && b <= '9' && l.digits < 18) || (b == '\r' && l.digits > 0)) {
				l.total++
				if b != '\r' {
					l.digits++
					l.num = l.num*10 + int64(b-'0')
				}
				continue
			}
		}
		if perr := l.scan(got, &i); perr != nil {
			// Hand redcon what came before the offending header (complete
			// commands among it are still served), then the error.
			l.pending = perr
			if i == 0 {
				return 0, perr
			}
			return i, nil
		}
	}
	return n, err
}

// scan advances the state machine over p[*i] (or, in a bulk body, over as
// many bytes as it can, leaving *i on the last one).
func (l *limitReader) scan(p []byte, i *int) error {
	b := p[*i]
	l.total++
	switch l.state {
	case stStart:
		l.total = 1
		if b == '*' {
			l.state, l.num, l.digits = stArrayLen, 0, 0
			return nil
		}
		l.state, l.inline = stInline, 0
		return l.scanInline(b)
	case stInline:
		return l.scanInline(b)
	case stArrayLen, stBulkLen:
		switch {
		case b >= '0' && b <= '9':
			l.digits++
			if l.digits > 18 {
				return l.tooLong()
			}
			l.num = l.num*10 + int64(b-'0')
		case b == '\r' && l.digits > 0:
		case b == '\n':
			return l.endNumber()
		default:
			// Stricter than redcon (which takes "+5"): a count the
			// limiter did not read exactly would put it out of step.
			return l.tooLong()
		}
	case stBulkStart:
		if b != '$' {
			l.state = stStart // malformed: redcon rejects it
			return nil
		}
		l.state, l.num, l.digits = stBulkLen, 0, 0
	case stBulkBody:
		// Skip what this read holds of the body at once.
		take := min(l.skip, len(p)-*i)
		l.skip -= take
		l.total += take - 1
		*i += take - 1
		if l.skip == 0 {
			l.nextArg()
		}
	}
	if l.total > l.maxTotal {
		return &errProtocol{"command too large"}
	}
	return nil
}

func (l *limitReader) scanInline(b byte) error {
	if b == '\n' {
		l.state = stStart
		return nil
	}
	l.inline++
	if l.inline > maxInlineBytes {
		return &errProtocol{"too big inline request"}
	}
	return nil
}

// tooLong is the error for a count that is too long or not a number.
func (l *limitReader) tooLong() error {
	if l.state == stArrayLen {
		return &errProtocol{"invalid multibulk length"}
	}
	return &errProtocol{"invalid bulk length"}
}

func (l *limitReader) endNumber() error {
	if l.digits == 0 {
		return l.tooLong()
	}
	if l.state == stArrayLen {
		if l.num > int64(l.maxArgs) {
			return &errProtocol{"invalid multibulk length"}
		}
		l.args = int(l.num)
		if l.args == 0 {
			l.state = stStart
			return nil
		}
		l.state = stBulkStart
		return nil
	}
	if l.num > int64(l.maxBulk) {
		return &errProtocol{"invalid bulk length"}
	}
	if int(l.num)+l.total > l.maxTotal {
		return &errProtocol{"command too large"}
	}
	l.skip = int(l.num) + 2
	l.state = stBulkBody
	return nil
}

func (l *limitReader) nextArg() {
	l.args--
	if l.args <= 0 {
		l.state = stStart
	} else {
		l.state = stBulkStart
	}
}

// isProtocol reports whether err is a request the client got wrong (as
// opposed to the connection failing).
func isProtocol(err error) bool {
	var pe *errProtocol
	if errors.As(err, &pe) {
		return true
	}
	return err != nil && len(err.Error()) > 15 && err.Error()[:15] == "Protocol error:"
}
