package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/shoaldb/shoal/node"
)

// statusAnswer is the answer of GET /v1/status.
type statusAnswer struct {
	Node        string `json:"node"`
	Replica     string `json:"replica"`
	Members     int    `json:"members"`
	Keys        int    `json:"keys"`
	Digest      string `json:"digest"`
	Incarnation uint64 `json:"incarnation"`
	Sync        string `json:"sync"`
	ReadOnly    bool   `json:"read_only"`
	Error       string `json:"error"`
	FirstOffset uint64 `json:"wal_first_offset"`
	NextOffset  uint64 `json:"wal_next_offset"`
	WALBytes    int64  `json:"wal_bytes"`
}

func (c *Client) status() (statusAnswer, error) {
	var a statusAnswer
	err := c.Do(http.MethodGet, "/v1/status", nil, nil, &a)
	return a, err
}

// Status returns the server's node's identity and counters. Closed is
// always false: a closed node answers with an error wrapping
// node.ErrClosed. The answer's other fields (the node's name, its alive
// member count, the state digest) are in Digest, Members, or Do's raw
// answer.
func (c *Client) Status() (node.Status, error) {
	a, err := c.status()
	if err != nil {
		return node.Status{}, err
	}
	return node.Status{
		Replica: a.Replica, Incarnation: a.Incarnation, Keys: a.Keys, ReadOnly: a.ReadOnly, Error: a.Error,
		Sync: a.Sync, FirstOffset: a.FirstOffset, NextOffset: a.NextOffset, WALBytes: a.WALBytes,
	}, nil
}

// Digest returns the hash of the server's node's state: equal on two nodes
// exactly when their states are.
func (c *Client) Digest() (string, error) {
	a, err := c.status()
	return a.Digest, err
}

// Members lists the cluster members as the server's node sees them, itself
// first. An offline node lists itself under the HTTP API's name for it.
func (c *Client) Members() ([]node.Member, error) {
	var a struct {
		Members []struct {
			Name      string `json:"name"`
			Addr      string `json:"addr"`
			State     string `json:"state"`
			Replica   string `json:"replica"`
			Self      bool   `json:"self"`
			Connected bool   `json:"connected"`
			Acked     uint64 `json:"acked"`
		} `json:"members"`
	}
	if err := c.Do(http.MethodGet, "/v1/members", nil, nil, &a); err != nil {
		return nil, err
	}
	out := make([]node.Member, len(a.Members))
	for i, m := range a.Members {
		out[i] = node.Member{Name: m.Name, Addr: m.Addr, State: m.State, Self: m.Self,
			Connected: m.Connected, Replica: m.Replica, Acked: m.Acked}
	}
	return out, nil
}

// SyncStatus reports, for every member, how many of the server's node's
// writes it holds; node.ErrOffline when that node has no gossip.
// PeerSync.Updated is in the local time zone, to the API's precision.
func (c *Client) SyncStatus() (node.SyncStatus, error) {
	var a struct {
		Replica string `json:"replica"`
		Local   uint64 `json:"local"`
		Offline bool   `json:"offline"`
		Peers   []struct {
			Name    string `json:"name"`
			Replica string `json:"replica"`
			State   string `json:"state"`
			Acked   uint64 `json:"acked"`
			Synced  bool   `json:"synced"`
			Updated string `json:"updated"`
		} `json:"peers"`
	}
	if err := c.Do(http.MethodGet, "/v1/sync", nil, nil, &a); err != nil {
		return node.SyncStatus{}, err
	}
	if a.Offline {
		return node.SyncStatus{}, node.ErrOffline
	}
	st := node.SyncStatus{Replica: a.Replica, Local: a.Local}
	for _, p := range a.Peers {
		ps := node.PeerSync{Name: p.Name, Replica: p.Replica, State: p.State, Acked: p.Acked, Synced: p.Synced}
		if p.Updated != "" {
			t, err := time.Parse(time.RFC3339Nano, p.Updated)
			if err != nil {
				return node.SyncStatus{}, fmt.Errorf("client: sync status: peer %s: time %q: %w", p.Name, p.Updated, err)
			}
			ps.Updated = t.Local()
		}
		st.Peers = append(st.Peers, ps)
	}
	return st, nil
}

// waitSyncedGrace is how long after ctx's deadline WaitSynced waits for
// the server's own timeout answer (sent at that deadline) before it gives
// up on the server.
const waitSyncedGrace = 5 * time.Second

// maxWaitRound is the longest wait one request asks of the server (its
// bound, httpapi.MaxWaitSyncedTimeout).
const maxWaitRound = 10 * time.Minute

// WaitSynced returns once the named peers (default: every member alive at
// the call) hold every write the server's node made before the call, or
// when ctx is done: with an error wrapping ctx's (context.DeadlineExceeded
// when the server's wait timed out at ctx's deadline). node.ErrOffline
// when that node has no gossip. Options.Timeout does not bound it; the
// client's context (WithContext) does.
func (c *Client) WaitSynced(ctx context.Context, peers ...string) error {
	// The server bounds one wait (maxWaitRound): a longer
	// or unbounded ctx waits in rounds until synced or ctx ends.
	for {
		err := c.waitSyncedOnce(ctx, peers)
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= 0 {
			return err
		}
	}
}

func (c *Client) waitSyncedOnce(ctx context.Context, peers []string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("client: wait synced: %w", err)
	}
	round := maxWaitRound
	body := struct {
		Peers   []string `json:"peers,omitempty"`
		Timeout string   `json:"timeout"`
	}{Peers: peers, Timeout: round.String()}
	// The server waits until the deadline (ctx's, or the end of a round)
	// and answers 504 then, so that its message reaches the caller; the
	// request itself lives a little longer, and ends at once if ctx is
	// cancelled.
	reqCtx, cancel := context.WithCancel(c.context())
	defer cancel()
	deadline := time.Now().Add(round)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	body.Timeout = max(time.Until(deadline), time.Millisecond).String()
	reqCtx, cancelDeadline := context.WithDeadline(reqCtx, deadline.Add(waitSyncedGrace))
	defer cancelDeadline()
	stop := context.AfterFunc(ctx, func() {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			cancel()
		}
	})
	defer stop()
	return c.do(reqCtx, http.MethodPost, "/v1/sync/wait", nil, body, nil)
}
