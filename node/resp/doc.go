// Package resp serves the Redis protocol (RESP2, and RESP3 after HELLO 3)
// for a node, so that any Redis client can use a shoal replica. It is
// built on node's exported API only, like package httpapi, with
// github.com/tidwall/redcon's command parser and reply writer. Commands
// are parsed in place from each connection's read buffer, which is reused
// once every command read has been answered.
//
// # Types
//
// Each Redis type maps onto one shoal CRDT:
//
//	Redis string  register (SET, GET, MSET, GETDEL)
//	              counter  (INCR, INCRBY, DECR, DECRBY)
//	Redis set     set      (SADD, SREM, SMEMBERS, SISMEMBER, SCARD)
//	Redis hash    map      (HSET, HGET, HDEL, HGETALL, HINCRBY, HLEN, HEXISTS)
//
// A string is stored as a JSON string when it is UTF-8 (the HTTP API
// shows it as it is), else as {"$bytes": "<base64>"}; GET returns the
// same bytes either way. A register written over HTTP with another JSON
// value (a number, an object) reads as its JSON text.
//
// A counter is a PN-counter, a type of its own: concurrent INCRs on two
// replicas add up, which a string holding a number cannot do. So INCR
// works on a counter or a missing key, and answers WRONGTYPE on a string
// made by SET, even one holding digits (converting it would make two
// replicas that convert at once count the base twice). GET on a counter
// answers its decimal value and TYPE says "string", so INCR-then-GET code
// works unchanged. HINCRBY makes a counter field the same way. As in
// Redis, SET replaces a value of any type: the old value is deleted in the
// same record (an observed remove: a concurrent write of the old type on
// another replica survives, and then that type shows, by the type
// precedence map > set > counter > register). Concurrent first writes of
// different types on two replicas converge by the same rule; a command
// of another type then answers WRONGTYPE.
//
// Expiry is the node's (see expiry.go), with one difference from Redis: a
// write keeps the key's expiry (Redis's SET discards it unless KEEPTTL).
//
// Keys, set members and hash fields must be UTF-8 (keys at most 1 KiB):
// others are refused with an error.
//
// # Durability and pipelining
//
// A write is answered once the node acknowledged it: under SyncAlways,
// once it is on disk. The writes that need no read (plain SET, MSET, INCR
// and its family) of one round of pipelined commands are collected, each
// key written once: its last value, or the sum of its increments (see
// pipeline.go). While a batch commits, the rounds of all connections
// gather into the next one, submitted without waiting (node.Submit) when
// the one before is answered (see combine.go): one atomic record, one WAL
// append and one fsync for what many clients wrote, and the node's
// per-record work (build, encode, apply) paid once. The replies follow in
// order once durable; an INCR answers the value its own increment made.
// Any other command first waits for the connection's submitted writes, so
// it reads them.
//
// Commands that read before they write (SET NX/XX/GET, GETDEL, SADD, SREM,
// HSET, HDEL, HINCRBY, DEL, EXEC) hold a lock on their keys meanwhile, so
// two RESP clients of one node do not both see the old value. Writes from
// the HTTP API and from other replicas are not covered by that lock, and
// nothing can be across replicas: see the README's RESP section for the
// Redis promises that leaderless replication cannot keep.
//
// MULTI/EXEC commits the transaction's writes as one atomic record (see
// tx.go); there is no WATCH. SUBSCRIBE follows key prefixes through the
// node's change feed (see subscribe.go).
//
// # Limits
//
// Options bound the connections, one argument, the arguments of one
// command, one command's bytes and the commands of one transaction. A
// request beyond a limit, or one that breaks the protocol, is answered
// with a protocol error and that connection alone is closed.
package resp
