package crdt

// Tx builds deltas.
type Tx struct {
	ks      *Keyspace
	replica ReplicaID
	seq     uint64
}

// Begin starts a transaction.
func (k *Keyspace) Begin(replica ReplicaID, lastSeq uint64) *Tx {
	return &Tx{ks: k, replica: replica, seq: lastSeq}
}

// Put writes a register.
func (t *Tx) Put(key string, value []byte, ts Timestamp) (*Delta, error) { return nil, ErrInvalid }

// Incr increments a counter.
func (t *Tx) Incr(key string, by int64) (*Delta, error) { return nil, ErrInvalid }

// SetAdd adds members to a set.
func (t *Tx) SetAdd(key string, members ...string) (*Delta, error) { return nil, ErrInvalid }

// SetRemove removes members from a set.
func (t *Tx) SetRemove(key string, members ...string) (*Delta, error) { return nil, ErrInvalid }

// Delete removes a key.
func (t *Tx) Delete(key string) (*Delta, error) { return nil, ErrInvalid }

// Update updates a map.
func (t *Tx) Update(key string, p *Patch, ts Timestamp) (*Delta, error) { return nil, ErrInvalid }

// Checkpoint marks a point to roll back to.
func (t *Tx) Checkpoint() int { return 0 }

// Rollback undoes the ops after cp.
func (t *Tx) Rollback(cp int) {}

// LastSeq returns the last seq handed out.
func (t *Tx) LastSeq() uint64 { return t.seq }
