package node

import (
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/shoaldb/shoal/crdt"
)

type reqKind uint8

const (
	reqPut reqKind = iota + 1
	reqDelete
	reqIncr
	reqSetAdd
	reqSetRemove
	reqUpdate
	reqExpire
	reqPersist
	reqBatch
	reqRemote
	reqSnapshot
)

var reqNames = [...]string{reqPut: "put", reqDelete: "delete", reqIncr: "incr", reqSetAdd: "set_add",
	reqSetRemove: "set_remove", reqUpdate: "update", reqExpire: "expire", reqPersist: "persist",
	reqBatch: "batch", reqRemote: "remote", reqSnapshot: "snapshot"}

func (k reqKind) String() string { return reqNames[k] }

// request is one write handed to the commit loop. The caller fills the
// input fields, the loop the results, then signals done.
type request struct {
	kind    reqKind
	key     string
	value   []byte // canonical JSON (put): the state keeps it
	by      int64
	members []string
	patch   *crdt.Patch
	ttl     time.Duration // put, update with a TTL; expire (checked: 0 < ttl <= MaxTTL)
	batch   []*request    // reqBatch: the operations, in order

	// reqRemote
	raw  []byte
	op   *Op
	from string
	mark transferMark // a request without a record (op nil) for the transfer gate (transfer.go)

	size int // bytes of the operation's payload, for the size limit

	snapDone chan error // reqSnapshot: answered by the snapshot writer

	err     error
	n       int64  // incr: the counter's new value
	counted bool   // n is set (an incr inside a batch: see Pending.Counter)
	offset  uint64 // WAL offset of the record
	done    chan struct{}
}

// reqPool recycles the requests of single operations. A request's done
// channel is made when it is first sent to the loop (sendable) and kept
// through recycling; a batch's operations are never sent on their own and
// never get one.
var reqPool = sync.Pool{New: func() any { return new(request) }}

// sendable gives r the channel the applier answers it on.
func (r *request) sendable() *request {
	if r.done == nil {
		r.done = make(chan struct{}, 1)
	}
	return r
}

func getRequest(kind reqKind) *request {
	r := reqPool.Get().(*request)
	r.kind = kind
	return r
}

func putRequest(r *request) {
	done := r.done
	*r = request{done: done}
	reqPool.Put(r)
}

// submit hands r to the commit loop and waits for its result.
func (n *Node) submit(r *request) error {
	if n.commitInline(r) {
		return r.err
	}
	if err := n.enqueue(r); err != nil {
		return err
	}
	return n.await(r)
}

// enqueue hands r to the commit loop (in the caller's order).
func (n *Node) enqueue(r *request) error {
	if n.closed.Load() || !n.queue(r) {
		return ErrClosed
	}
	return nil
}

// queue sends r to the loop; false when the node closed first.
func (n *Node) queue(r *request) bool {
	n.queued.Add(1) // before the send: commitInline must see it
	r.sendable()
	select { // room in the queue, the usual case: no select over two channels
	case n.reqs <- r:
		return true
	default:
	}
	select {
	case n.reqs <- r:
		return true
	case <-n.closing:
		n.queued.Add(-1)
		return false
	}
}

// await waits for the result of a request enqueued.
func (n *Node) await(r *request) error {
	select {
	case <-r.done:
		return r.err
	case <-n.loopDone:
		// The loop may have answered just before it exited.
		select {
		case <-r.done:
			return r.err
		default:
			return ErrClosed
		}
	}
}

// exec runs a request built by one of the new* functions (passing their
// error through) once its size is checked.
func (n *Node) exec(r *request, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	if err := n.checkSize(r); err != nil {
		return 0, err
	}
	return n.do(r)
}

// do submits a single-operation request and recycles it.
func (n *Node) do(r *request) (int64, error) {
	err := n.submit(r)
	v := r.n
	if err != ErrClosed {
		putRequest(r)
	}
	return v, err
}

// Put writes value to the register at key (last writer wins). value is
// nil, a bool, any integer or float kind, a string, []any, []string,
// map[string]any (recursively), json.Number or json.RawMessage; it is
// stored as canonical
// JSON (see Value.Data for what Get returns). Under SyncAlways Put returns
// once the write is durable.
func (n *Node) Put(key string, value any) error {
	_, err := n.exec(newPut(key, value))
	return err
}

func newPut(key string, value any) (*request, error) {
	if !validKey(key) {
		return nil, keyError("put", key)
	}
	b, err := encodeValue(value)
	if err != nil {
		return nil, fmt.Errorf("%w: put %q: %w", ErrInvalidValue, key, err)
	}
	r := getRequest(reqPut)
	r.key, r.value, r.size = key, b, len(b)
	return r, nil
}

// Delete removes key: the values this replica has seen (an observed
// remove; a concurrent write on another replica survives). ErrNotFound if
// the key does not exist.
func (n *Node) Delete(key string) error {
	_, err := n.exec(newDelete(key))
	return err
}

func newDelete(key string) (*request, error) {
	if !validKey(key) {
		return nil, keyError("delete", key)
	}
	r := getRequest(reqDelete)
	r.key = key
	return r, nil
}

// Incr adds by (which may be negative) to the counter at key, creating it,
// and returns the counter's new value on this replica.
func (n *Node) Incr(key string, by int64) (int64, error) {
	return n.exec(newIncr(key, by))
}

func newIncr(key string, by int64) (*request, error) {
	if !validKey(key) {
		return nil, keyError("incr", key)
	}
	r := getRequest(reqIncr)
	r.key, r.by = key, by
	return r, nil
}

// SetAdd adds members to the set at key, creating it. A member added here
// survives a concurrent remove elsewhere (add wins).
func (n *Node) SetAdd(key string, members ...string) error {
	_, err := n.exec(newSetOp(reqSetAdd, key, members))
	return err
}

// SetRemove removes the members of the set at key that this replica has
// seen (observed remove; an add elsewhere that it has not seen survives).
// Removing from a key that does not exist changes nothing.
func (n *Node) SetRemove(key string, members ...string) error {
	_, err := n.exec(newSetOp(reqSetRemove, key, members))
	return err
}

func newSetOp(kind reqKind, key string, members []string) (*request, error) {
	if !validKey(key) {
		return nil, keyError(kind.String(), key)
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("%w: %s %q: no members", ErrInvalidValue, kind, key)
	}
	size := 0
	for _, m := range members {
		if !utf8.ValidString(m) {
			return nil, fmt.Errorf("%w: %s %q: member is not valid UTF-8", ErrInvalidValue, kind, key)
		}
		size += len(m) + 1
	}
	r := getRequest(kind)
	r.key, r.members, r.size = key, slices.Clone(members), size
	return r, nil
}

// Update patches the document (map) at key, creating it.
func (n *Node) Update(key string, p Patch) error {
	_, err := n.exec(newUpdate(key, p))
	return err
}

func newUpdate(key string, p Patch) (*request, error) {
	if !validKey(key) {
		return nil, keyError("update", key)
	}
	size := 0
	cp, err := convertPatch(&p, 0, &size)
	if err != nil {
		return nil, fmt.Errorf("update %q: %w", key, err)
	}
	r := getRequest(reqUpdate)
	r.key, r.patch, r.size = key, cp, size
	return r, nil
}

// checkSize enforces Options.MaxValueBytes on one operation.
func (n *Node) checkSize(r *request) error {
	if r.size > n.opts.MaxValueBytes {
		err := fmt.Errorf("%w: %s %q: %d bytes (max %d)", ErrTooLarge, r.kind, r.key, r.size, n.opts.MaxValueBytes)
		putRequest(r)
		return err
	}
	return nil
}

// convertPatch validates p and turns it into a crdt patch; size accumulates
// the bytes of its names and values.
func convertPatch(p *Patch, depth int, size *int) (*crdt.Patch, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w: patch nested deeper than %d", ErrInvalidValue, MaxDepth)
	}
	field := func(f string) error {
		if !validKey(f) {
			return fmt.Errorf("%w: field name %q: must be 1 to %d bytes of UTF-8", ErrInvalidKey, truncateKey(f), MaxKeyBytes)
		}
		*size += len(f) + 1
		return nil
	}
	members := func(f string, ms []string) error {
		if err := field(f); err != nil {
			return err
		}
		if len(ms) == 0 {
			return fmt.Errorf("%w: field %q: no members", ErrInvalidValue, f)
		}
		for _, m := range ms {
			if !utf8.ValidString(m) {
				return fmt.Errorf("%w: field %q: member is not valid UTF-8", ErrInvalidValue, f)
			}
			*size += len(m) + 1
		}
		return nil
	}
	out := &crdt.Patch{}
	empty := true
	if len(p.Set) > 0 {
		empty = false
		out.Set = make(map[string][]byte, len(p.Set))
		for f, v := range p.Set {
			if err := field(f); err != nil {
				return nil, err
			}
			b, err := encodeValue(v)
			if err != nil {
				return nil, fmt.Errorf("%w: field %q: %w", ErrInvalidValue, f, err)
			}
			*size += len(b)
			out.Set[f] = b
		}
	}
	for _, f := range p.Delete {
		empty = false
		if err := field(f); err != nil {
			return nil, err
		}
	}
	out.Delete = slices.Clone(p.Delete)
	if len(p.Incr) > 0 {
		empty = false
		out.Incr = make(map[string]int64, len(p.Incr))
		for f, by := range p.Incr {
			if err := field(f); err != nil {
				return nil, err
			}
			out.Incr[f] = by
		}
	}
	if len(p.Add) > 0 {
		empty = false
		out.Add = make(map[string][]string, len(p.Add))
		for f, ms := range p.Add {
			if err := members(f, ms); err != nil {
				return nil, err
			}
			out.Add[f] = slices.Clone(ms)
		}
	}
	if len(p.Remove) > 0 {
		empty = false
		out.Remove = make(map[string][]string, len(p.Remove))
		for f, ms := range p.Remove {
			if err := members(f, ms); err != nil {
				return nil, err
			}
			out.Remove[f] = slices.Clone(ms)
		}
	}
	for _, fs := range [][]string{p.Enable, p.Disable} {
		for _, f := range fs {
			empty = false
			if err := field(f); err != nil {
				return nil, err
			}
		}
	}
	out.Enable, out.Disable = slices.Clone(p.Enable), slices.Clone(p.Disable)
	if len(p.Nested) > 0 {
		empty = false
		out.Nested = make(map[string]*crdt.Patch, len(p.Nested))
		for f, np := range p.Nested {
			if err := field(f); err != nil {
				return nil, err
			}
			c, err := convertPatch(&np, depth+1, size)
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", f, err)
			}
			out.Nested[f] = c
		}
	}
	if empty {
		return nil, fmt.Errorf("%w: empty patch", ErrInvalidValue)
	}
	return out, nil
}
