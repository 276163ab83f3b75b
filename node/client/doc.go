// Package client is the Go client of a shoal node's HTTP API. A *Client
// has the methods of an embedded *node.Node, with the same names,
// arguments, value types and sentinel errors, so code written against
// node.Store runs in process or against a remote node unchanged:
//
//	c, err := client.New("http://127.0.0.1:7070", &client.Options{Token: token})
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	err = c.Put("todo/1", map[string]any{"title": "buy milk", "done": false})
//	v, err := c.Get("todo/1")             // v.Data: map[string]any{"done": false, "title": "buy milk"}
//	n, err := c.Incr("visits", 1)         // int64
//	sub, err := c.Subscribe(ctx, "todo/") // changes, resumed across dropped connections
//
// # Values
//
// Values read through the client are the Go values an embedded node
// returns (node.Value.Data): a register's JSON as nil, bool, int64 for
// integral numbers within range, float64, string, []any and map[string]any;
// a counter as int64; a set as a sorted []string; a map with its fields
// converted the same way (set fields as []string, flags as bool). Writes
// are validated and encoded by the node package before they are sent, so
// a value a node would refuse is refused with the node's error without a
// round trip.
//
// # Calls and contexts
//
// Like *node.Node's, the methods take no context. WithContext returns a
// copy of the client whose calls use a context (as
// http.Request.WithContext), and Options.Timeout bounds each call.
// WaitSynced, Subscribe and SubscribeFrom take a context as the node's do;
// Options.Timeout bounds neither WaitSynced nor an open subscription.
//
// # Errors
//
// An error answer is an *APIError (Status, Code, Message) whose Error is
// the server's message and which unwraps to the sentinel its code stands
// for, so errors.Is works as with an embedded node:
//
//	code                  sentinel                   status
//	not_found             node.ErrNotFound           404
//	wrong_type            node.ErrWrongType          409
//	offline               node.ErrOffline            409
//	overflow              node.ErrOverflow           409
//	invalid_key           node.ErrInvalidKey         400
//	invalid_value         node.ErrInvalidValue       400
//	too_large             node.ErrTooLarge           413
//	offset_unavailable    node.ErrOffsetUnavailable  410
//	closed, shutting_down node.ErrClosed             503
//	read_only             node.ErrReadOnly           503
//	slow_subscriber       node.ErrSlowSubscriber     503 (or an error event)
//	unauthorized          ErrUnauthorized            401
//	timeout               context.DeadlineExceeded   504 (WaitSynced)
//
// The codes bad_request, no_endpoint, method_not_allowed and internal are
// an *APIError only. An answer without a code (a server that predates
// them) maps by its status: 401, 404, 409, 410, 413 and 504 as in the
// table's first row for each. Errors of the transport (the server
// unreachable, a certificate refused, a context done) are net/http's.
//
// # What the API does not carry
//
// node.Status.Closed is always false (a closed node answers with
// node.ErrClosed instead); a node's name, member count and state digest
// are in Digest, Members and the raw answer of Do. An offline node's own
// node.Member carries the name the HTTP API gives it. Times
// (node.Sibling.Time, node.PeerSync.Updated) have the API's precision and
// the local time zone.
//
// # Subscriptions
//
// A Subscription reads the node's Server-Sent Events stream (GET
// /v1/watch), parsed as the HTML standard specifies, and survives dropped
// connections: it reconnects with a bounded backoff and resumes after the
// last WAL record it received whole (the SSE id, sent on the last event of
// each record), and hands out a record's events only once all of them
// arrived, so a resumed subscription misses nothing and repeats nothing.
// It ends on an error event from the server (a slow reader dropped, the
// server shutting down), an error answer (4xx), its context, or Close.
package client
