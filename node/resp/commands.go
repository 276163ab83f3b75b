package resp

import (
	"strings"
)

// command describes one command: its arity as Redis counts it (the name
// included; negative: at least), its key positions for COMMAND and for
// locking (first, last, step; last -1 = to the end), and how it runs.
type command struct {
	name              string
	arity             int
	flags             []string // as COMMAND lists them
	first, last, step int
	group             string // for COMMAND DOCS
	summary           string
	write             bool // changes data: runs under the key locks and commits
	tx                bool // may be queued in MULTI
	run               func(x *exec, a [][]byte)
	conn              func(c *conn, a [][]byte) // connection commands run on the conn
}

var commands = map[string]*command{}

func init() {
	for _, c := range commandList() {
		commands[c.name] = c
	}
}

func commandList() []*command {
	rd := []string{"readonly", "fast"}
	wr := []string{"write", "denyoom"}
	data := func(name string, arity int, flags []string, first, last, step int, group, summary string,
		write bool, run func(*exec, [][]byte)) *command {
		return &command{name: name, arity: arity, flags: flags, first: first, last: last, step: step,
			group: group, summary: summary, write: write, tx: true, run: run}
	}
	cn := func(name string, arity int, group, summary string, tx bool, run func(*conn, [][]byte)) *command {
		return &command{name: name, arity: arity, flags: []string{"fast"}, group: group, summary: summary, tx: tx, conn: run}
	}
	list := []*command{
		data("get", 2, rd, 1, 1, 1, "string", "Returns the string value of a key.", false, cmdGet),
		data("set", -3, wr, 1, 1, 1, "string", "Sets the string value of a key (NX, XX, GET).", true, cmdSet),
		data("mget", -2, rd, 1, -1, 1, "string", "Returns the string values of keys.", false, cmdMGet),
		data("mset", -3, wr, 1, -1, 2, "string", "Sets keys to values, as one atomic record.", true, cmdMSet),
		data("getdel", 2, wr, 1, 1, 1, "string", "Returns the string value of a key and deletes it.", true, cmdGetDel),
		data("incr", 2, wr, 1, 1, 1, "string", "Increments a counter by one.", true, cmdIncr),
		data("decr", 2, wr, 1, 1, 1, "string", "Decrements a counter by one.", true, cmdIncr),
		data("incrby", 3, wr, 1, 1, 1, "string", "Increments a counter.", true, cmdIncr),
		data("decrby", 3, wr, 1, 1, 1, "string", "Decrements a counter.", true, cmdIncr),
		data("sadd", -3, wr, 1, 1, 1, "set", "Adds members to a set.", true, cmdSAdd),
		data("srem", -3, wr, 1, 1, 1, "set", "Removes members from a set.", true, cmdSRem),
		data("smembers", 2, rd, 1, 1, 1, "set", "Returns the members of a set.", false, cmdSMembers),
		data("sismember", 3, rd, 1, 1, 1, "set", "Tells whether a member is in a set.", false, cmdSIsMember),
		data("scard", 2, rd, 1, 1, 1, "set", "Returns the number of members of a set.", false, cmdSCard),
		data("hset", -4, wr, 1, 1, 1, "hash", "Sets fields of a hash.", true, cmdHSet),
		data("hmset", -4, wr, 1, 1, 1, "hash", "Sets fields of a hash.", true, cmdHSet),
		data("hget", 3, rd, 1, 1, 1, "hash", "Returns the value of a field.", false, cmdHGet),
		data("hdel", -3, wr, 1, 1, 1, "hash", "Deletes fields of a hash.", true, cmdHDel),
		data("hgetall", 2, rd, 1, 1, 1, "hash", "Returns the fields and values of a hash.", false, cmdHGetAll),
		data("hincrby", 4, wr, 1, 1, 1, "hash", "Increments a counter field of a hash.", true, cmdHIncrBy),
		data("hlen", 2, rd, 1, 1, 1, "hash", "Returns the number of fields of a hash.", false, cmdHLen),
		data("hexists", 3, rd, 1, 1, 1, "hash", "Tells whether a field exists.", false, cmdHExists),
		data("del", -2, wr, 1, -1, 1, "generic", "Deletes keys.", true, cmdDel),
		data("unlink", -2, wr, 1, -1, 1, "generic", "Deletes keys.", true, cmdDel),
		data("exists", -2, rd, 1, -1, 1, "generic", "Counts the keys that exist.", false, cmdExists),
		data("type", 2, rd, 1, 1, 1, "generic", "Returns the type of a key.", false, cmdType),
		data("scan", -2, []string{"readonly"}, 0, 0, 0, "generic", "Iterates over the keys.", false, cmdScan),
		data("keys", 2, []string{"readonly"}, 0, 0, 0, "generic", "Returns the keys matching a pattern.", false, cmdKeys),
		data("dbsize", 1, rd, 0, 0, 0, "server", "Returns the number of keys.", false, cmdDBSize),

		cn("ping", -1, "connection", "Returns PONG, or the argument.", true, (*conn).ping),
		cn("echo", 2, "connection", "Returns the argument.", true, (*conn).echo),
		cn("select", 2, "connection", "Selects database 0 (the only one).", false, (*conn).selectDB),
		cn("auth", -2, "connection", "Authenticates the connection.", false, (*conn).auth),
		cn("hello", -1, "connection", "Handshakes: protocol version, authentication, name.", false, (*conn).hello),
		cn("quit", -1, "connection", "Closes the connection.", false, (*conn).quitCmd),
		cn("client", -2, "connection", "CLIENT SETNAME, GETNAME, ID, SETINFO.", false, (*conn).client),
		cn("info", -1, "server", "Returns information about the server.", false, (*conn).info),
		cn("command", -1, "server", "Returns information about the commands.", false, (*conn).commandCmd),
		cn("config", -2, "server", "CONFIG GET answers an empty list (nothing is configurable here).", false, (*conn).config),
		cn("multi", 1, "transactions", "Starts a transaction.", false, (*conn).multiCmd),
		cn("exec", 1, "transactions", "Commits the queued commands as one atomic record.", false, (*conn).execCmd),
		cn("discard", 1, "transactions", "Discards the queued commands.", false, (*conn).discard),
		cn("subscribe", -2, "pubsub", "Follows the changes of the keys under prefixes (the node's change feed).", false, (*conn).subscribe),
		cn("unsubscribe", -1, "pubsub", "Stops following prefixes.", false, (*conn).unsubscribe),
		cn("watch", -2, "transactions", "Not supported: leaderless, there is no global version to compare.", false, (*conn).watch),
		cn("unwatch", 1, "transactions", "Does nothing (WATCH is not supported).", false, (*conn).unwatch),
	}
	list = append(list,
		data("expire", -3, wr, 1, 1, 1, "generic", "Makes a key expire in seconds (NX, XX, GT, LT).", true, cmdExpire),
		data("pexpire", -3, wr, 1, 1, 1, "generic", "Makes a key expire in milliseconds.", true, cmdExpire),
		data("expireat", -3, wr, 1, 1, 1, "generic", "Makes a key expire at a Unix time.", true, cmdExpire),
		data("pexpireat", -3, wr, 1, 1, 1, "generic", "Makes a key expire at a Unix time in milliseconds.", true, cmdExpire),
		data("ttl", 2, rd, 1, 1, 1, "generic", "Returns a key's time to live in seconds.", false, cmdTTL),
		data("pttl", 2, rd, 1, 1, 1, "generic", "Returns a key's time to live in milliseconds.", false, cmdTTL),
		data("expiretime", 2, rd, 1, 1, 1, "generic", "Returns a key's expiry as a Unix time.", false, cmdTTL),
		data("pexpiretime", 2, rd, 1, 1, 1, "generic", "Returns a key's expiry as a Unix time in milliseconds.", false, cmdTTL),
		data("persist", 2, wr, 1, 1, 1, "generic", "Removes a key's expiry.", true, cmdPersist),
		data("setex", 4, wr, 1, 1, 1, "string", "Sets a string that expires in seconds.", true, cmdSetEx),
		data("psetex", 4, wr, 1, 1, 1, "string", "Sets a string that expires in milliseconds.", true, cmdSetEx),
		data("getex", -2, wr, 1, 1, 1, "string", "Returns a string and sets or removes its expiry.", true, cmdGetEx),
	)
	return list
}

// keys returns the key arguments of a call, per the command's key spec.
func (c *command) keys(a [][]byte) []string {
	if c.first <= 0 || c.first >= len(a) {
		return nil
	}
	last := c.last
	if last < 0 {
		last = len(a) + last
	}
	var out []string
	for i := c.first; i <= last && i < len(a); i += c.step {
		out = append(out, string(a[i]))
	}
	return out
}

// arityOK checks a call's argument count (Redis's rule).
func (c *command) arityOK(n int) bool {
	if c.arity >= 0 {
		return n == c.arity
	}
	return n >= -c.arity
}

// lookup finds a command by name, case-insensitively.
func lookup(name []byte) *command {
	var buf [16]byte
	if len(name) <= len(buf) {
		b := buf[:len(name)]
		for i, ch := range name {
			if 'A' <= ch && ch <= 'Z' {
				ch += 'a' - 'A'
			}
			b[i] = ch
		}
		return commands[string(b)] // no allocation for the lookup
	}
	return commands[strings.ToLower(string(name))]
}
