package node

import (
	"bytes"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/shoaldb/shoal/crdt"
)

// OpVersion is the record format version EncodeOp writes.
const OpVersion = 1

// OpKind says how a record changes the state. The values are persisted.
type OpKind uint8

const (
	// OpDelta: a delta made by Origin (a local write, or a peer's write
	// received by replication); replay joins it with Keyspace.Apply.
	OpDelta OpKind = 1
	// OpStateRange: the full state of the sender's keys in [Lo, Hi) with the
	// sender's context Ctx (catch-up after the WAL that held the deltas was
	// truncated); replay joins it with Keyspace.JoinRange.
	OpStateRange OpKind = 2
	// OpContext: the end of a state transfer: replay merges the sender's
	// causal context Ctx (Keyspace.MergeContext), then the sender's applied
	// set Applied (Keyspace.MergeApplied), so the receiver does not ask again
	// for operations whose effects the transferred state already holds.
	OpContext OpKind = 3
	// OpSummary: never a WAL record. The first answer to an anti-entropy
	// request whose operations were truncated from the WAL: the sender's key
	// ranges and the sums of their key hashes (Sums, see encodeSummary)
	// with the context Ctx and applied set Applied taken at the same
	// instant. The receiver asks again for the ranges whose sums differ
	// from its own (repl_ranges.go).
	OpSummary OpKind = 4
)

func (k OpKind) String() string {
	switch k {
	case OpDelta:
		return "delta"
	case OpStateRange:
		return "state-range"
	case OpContext:
		return "context"
	case OpSummary:
		return "summary"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op is one WAL record and, byte for byte, one replication payload: an
// operation is encoded once, on the replica that made it, and every other
// replica stores and forwards those same bytes.
type Op struct {
	V      uint8          `msgpack:"v"` // OpVersion
	Kind   OpKind         `msgpack:"k"`
	Origin crdt.ReplicaID `msgpack:"o"` // replica that made the op (or sent the state)
	Time   crdt.Timestamp `msgpack:"t"` // HLC time at the origin
	Delta  *crdt.Delta    `msgpack:"d,omitempty"`
	Lo     string         `msgpack:"lo,omitempty"` // OpStateRange: first key of the range
	Hi     string         `msgpack:"hi,omitempty"` // OpStateRange: end of the range (exclusive; "" = no end)
	Ctx    *crdt.Context  `msgpack:"x,omitempty"`  // OpStateRange, OpContext: the sender's causal context
	// Applied is, for OpContext, the sender's applied set (Keyspace.Applied).
	Applied *crdt.Context `msgpack:"a,omitempty"`
	// Sums is, for OpSummary, the ranges and their sums (encodeSummary).
	// The hand-written codec does not know it: EncodeOp and DecodeOp use
	// the library for summaries (one per catch-up).
	Sums []byte `msgpack:"s,omitempty"`
}

// maxOpDepth bounds msgpack nesting in a record: documents nest up to
// MaxDepth levels and each level costs a few msgpack containers.
const maxOpDepth = 8 * MaxDepth

var encBufs = sync.Pool{New: func() any { return &mpWriter{b: make([]byte, 0, 1024)} }}

// EncodeOp returns the record bytes of op (a new slice owned by the caller).
func EncodeOp(op *Op) ([]byte, error) {
	if op.Sums != nil {
		return encodeOpLibrary(op) // the hand-written codec does not know Sums
	}
	// Encode into a pooled buffer, then copy out at the exact size: one
	// allocation per record instead of one per doubling.
	w := encBufs.Get().(*mpWriter)
	w.b = w.b[:0]
	w.op(op)
	out := bytes.Clone(w.b)
	if cap(w.b) <= 1<<20 {
		encBufs.Put(w)
	}
	return out, nil
}

// encodeOpLibrary encodes with the msgpack library: the reference the
// hand-written codec is tested against.
func encodeOpLibrary(op *Op) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(op); err != nil {
		return nil, fmt.Errorf("node: encode op: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeOp decodes and validates record bytes from the WAL or a peer. It
// never panics and allocates at most a small multiple of len(b); an error
// wraps ErrCorrupt. The result does not alias b.
func DecodeOp(b []byte) (*Op, error) {
	if err := checkMsgpack(b, maxOpDepth); err != nil {
		return nil, fmt.Errorf("decode op: %w", err)
	}
	op, ok := fastDecodeOp(b)
	if !ok {
		op = &Op{}
		if err := msgpack.Unmarshal(b, op); err != nil {
			return nil, fmt.Errorf("%w: decode op: %w", ErrCorrupt, err)
		}
	}
	if err := op.validate(); err != nil {
		return nil, fmt.Errorf("%w: decode op: %w", ErrCorrupt, err)
	}
	return op, nil
}

func (op *Op) validate() error {
	if op.V != OpVersion {
		return fmt.Errorf("unknown record version %d", op.V)
	}
	switch op.Kind {
	case OpDelta:
		if op.Delta == nil {
			return fmt.Errorf("delta op without a delta")
		}
	case OpStateRange:
		if op.Delta == nil || op.Ctx == nil {
			return fmt.Errorf("state-range op without state or context")
		}
		if op.Hi != "" && op.Hi <= op.Lo {
			return fmt.Errorf("state-range op with empty range [%q, %q)", op.Lo, op.Hi)
		}
	case OpContext:
		if op.Ctx == nil {
			return fmt.Errorf("context op without a context")
		}
	case OpSummary:
		if op.Sums == nil || op.Ctx == nil || op.Applied == nil || op.Delta != nil {
			return fmt.Errorf("summary op without sums, context or applied set")
		}
	default:
		return fmt.Errorf("unknown op kind %d", op.Kind)
	}
	if op.Delta != nil {
		for k := range op.Delta.Keys {
			if !validKey(k) {
				return fmt.Errorf("invalid key %q", truncateKey(k))
			}
		}
		if err := op.Delta.Validate(); err != nil {
			return err
		}
	}
	// A decoded context may be in any shape.
	if op.Ctx != nil {
		op.Ctx.Normalize()
	}
	if op.Applied != nil {
		op.Applied.Normalize()
	}
	return nil
}

func validKey(k string) bool {
	return len(k) > 0 && len(k) <= MaxKeyBytes && utf8.ValidString(k)
}

// truncateKey shortens a key for an error message.
func truncateKey(k string) string {
	if len(k) > 64 {
		return k[:64] + "..."
	}
	return k
}
