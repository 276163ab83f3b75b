package resp

import (
	"io"

	"github.com/tidwall/redcon"
)

// Buffer sizes of a connection's reader: what it starts with, and what it
// shrinks back to once a large command has been served.
const (
	readBufferSize    = 16 << 10
	readBufferKeepMax = 256 << 10
	// maxReadChunk bounds one read, and so the commands (and the
	// argument slices) one fill can bring, whatever the buffer grew to.
	maxReadChunk = 64 << 10
)

// reader parses the commands a connection sends with no allocation per
// command: their arguments are slices of its buffer, valid until the
// next fill (the connection answers every command it has before it reads
// again; MULTI copies what it queues). redcon's Reader copies each
// command and allocates its argument slice, a fifth of the server's CPU
// under pipelined writes; its parser, ReadNextCommand, does neither.
type reader struct {
	r          io.Reader // the limitReader: no command beyond the limits gets here
	buf        []byte
	start, end int      // buf[start:end] is read and not yet parsed
	args       [][]byte // the arguments of the commands returned since the last fill
	scratch    [][]byte // ReadNextCommand's
}

func newReader(r io.Reader) *reader {
	return &reader{r: r, buf: make([]byte, readBufferSize)}
}

// next returns the next command in the buffer, or nil when a read is
// needed for one (see fill). The arguments are valid until the next fill;
// appending to the slice does not overwrite the next command's.
func (rd *reader) next() ([][]byte, error) {
	for rd.start < rd.end {
		complete, args, kind, leftover, err := redcon.ReadNextCommand(rd.buf[rd.start:rd.end], rd.scratch[:0])
		rd.scratch = args[:0]
		if err != nil {
			return nil, err
		}
		if !complete {
			return nil, nil
		}
		if kind == redcon.Tile38 {
			// A line starting with '$' is redcon's Tile38 protocol, not
			// Redis's: refuse it rather than parse it another way.
			return nil, &errProtocol{"expected '*', got '$'"}
		}
		rd.start = rd.end - len(leftover)
		if len(args) == 0 {
			continue // "*0" or an empty line: nothing to run, as in Redis
		}
		s := len(rd.args)
		rd.args = append(rd.args, args...)
		return rd.args[s:len(rd.args):len(rd.args)], nil
	}
	return nil, nil
}

// fill reads more of the connection; it invalidates the arguments next
// returned before.
func (rd *reader) fill() error {
	clear(rd.args)
	rd.args = rd.args[:0]
	switch {
	case len(rd.buf) > readBufferKeepMax && rd.end-rd.start <= readBufferSize/2:
		// A large command is done: back to a small buffer.
		buf := make([]byte, readBufferSize)
		rd.end = copy(buf, rd.buf[rd.start:rd.end])
		rd.buf, rd.start = buf, 0
	case rd.start == rd.end:
		rd.start, rd.end = 0, 0
	case rd.start > 0:
		rd.end = copy(rd.buf, rd.buf[rd.start:rd.end]) // a partial command to the front
		rd.start = 0
	}
	if rd.end == len(rd.buf) {
		// One command fills the buffer; the limitReader bounds how far
		// this grows.
		rd.buf = append(rd.buf, make([]byte, len(rd.buf))...)
	}
	n, err := rd.r.Read(rd.buf[rd.end:min(len(rd.buf), rd.end+maxReadChunk)])
	rd.end += n
	if n > 0 {
		return nil // an error comes again with the next read
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}
