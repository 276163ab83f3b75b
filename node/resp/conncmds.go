package resp

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

func (c *conn) ping(a [][]byte) {
	if len(a) > 2 {
		c.o.err(errArity("ping"))
		return
	}
	if len(a) == 2 {
		c.o.bulk(a[1])
		return
	}
	c.o.status("PONG")
}

func (c *conn) echo(a [][]byte) { c.o.bulk(a[1]) }

func (c *conn) selectDB(a [][]byte) {
	if string(a[1]) != "0" {
		c.o.err(errDBIndex) // one keyspace per node
		return
	}
	c.o.ok()
}

func (c *conn) auth(a [][]byte) {
	if len(a) > 3 {
		c.o.err(errSyntax)
		return
	}
	if c.s.opts.Password == "" {
		c.o.err(errNoPassword)
		return
	}
	if !c.s.checkPassword(a[len(a)-1]) {
		c.o.err(errWrongPass)
		return
	}
	c.authed = true
	c.o.ok()
}

// hello is HELLO [protover [AUTH user pass] [SETNAME name]].
func (c *conn) hello(a [][]byte) {
	proto := c.o.proto
	if len(a) > 1 {
		v, err := strconv.Atoi(string(a[1]))
		if err != nil {
			c.o.err("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 && v != 3 {
			c.o.err("NOPROTO unsupported protocol version")
			return
		}
		proto = v
	}
	var pass []byte
	var authGiven bool
	name := c.name
	for i := 2; i < len(a); i++ {
		switch strings.ToUpper(string(a[i])) {
		case "AUTH":
			if i+2 >= len(a) {
				c.o.err(errSyntax)
				return
			}
			pass, authGiven = a[i+2], true
			i += 2
		case "SETNAME":
			if i+1 >= len(a) || !validName(a[i+1]) {
				c.o.err(errSyntax)
				return
			}
			name = string(a[i+1])
			i++
		default:
			c.o.err(errSyntax)
			return
		}
	}
	if authGiven {
		if c.s.opts.Password == "" {
			c.o.err(errNoPassword)
			return
		}
		if !c.s.checkPassword(pass) {
			c.o.err(errWrongPass)
			return
		}
		c.authed = true
	}
	if !c.authed {
		c.o.err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	c.name = name
	c.o.proto, c.temp.proto = proto, proto
	c.o.mapHeader(7)
	c.o.bulkString("server")
	c.o.bulkString("shoal")
	c.o.bulkString("version")
	c.o.bulkString(c.s.opts.Version)
	c.o.bulkString("proto")
	c.o.int(int64(proto))
	c.o.bulkString("id")
	c.o.int(c.id)
	c.o.bulkString("mode")
	c.o.bulkString("standalone")
	c.o.bulkString("role")
	c.o.bulkString("master")
	c.o.bulkString("modules")
	c.o.array(0)
}

func (c *conn) quitCmd(a [][]byte) {
	c.o.ok()
	c.quit = true
}

func validName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

func (c *conn) client(a [][]byte) {
	sub := strings.ToUpper(string(a[1]))
	switch {
	case sub == "SETNAME" && len(a) == 3:
		if !validName(a[2]) {
			c.o.err("ERR Client names cannot contain spaces, newlines or special characters.")
			return
		}
		c.name = string(a[2])
		c.o.ok()
	case sub == "GETNAME" && len(a) == 2:
		if c.name == "" {
			c.o.null()
			return
		}
		c.o.bulkString(c.name)
	case sub == "ID" && len(a) == 2:
		c.o.int(c.id)
	case sub == "SETINFO" && len(a) == 4:
		c.o.ok() // library name and version: accepted, not kept
	case sub == "INFO" && len(a) == 2:
		c.o.bulkString(fmt.Sprintf("id=%d addr=%s name=%s db=0 multi=%d resp=%d\n",
			c.id, c.nc.RemoteAddr(), c.name, len(c.queued), c.o.proto))
	default:
		c.o.err("ERR unknown subcommand or wrong number of arguments for '" + printable(a[1]) + "'. Try CLIENT HELP.")
	}
}

// info answers the sections Redis tools read: server (with shoal's
// version, replica and state digest), clients, persistence, stats (the
// shared batches of plain writes, combine.go), cpu (the process's CPU
// time, as Redis reports its own) and keyspace.
func (c *conn) info(a [][]byte) {
	st := c.s.n.Status()
	var b strings.Builder
	want := func(section string) bool {
		if len(a) == 1 {
			return true
		}
		for _, s := range a[1:] {
			s := strings.ToLower(string(s))
			if s == section || s == "all" || s == "everything" || s == "default" {
				return true
			}
		}
		return false
	}
	if want("server") {
		fmt.Fprintf(&b, "# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\nshoal_version:%s\r\n"+
			"shoal_replica:%s\r\nshoal_digest:%s\r\nshoal_sync:%s\r\nprocess_id:%d\r\ntcp_port:%s\r\n\r\n",
			c.s.opts.Version, st.Replica, c.s.n.Digest(), st.Sync, os.Getpid(), port(c.nc.LocalAddr().String()))
	}
	if want("clients") {
		fmt.Fprintf(&b, "# Clients\r\nconnected_clients:%d\r\nmaxclients:%d\r\n\r\n", c.s.Conns(), c.s.opts.MaxConnections)
	}
	if want("persistence") {
		ro := 0
		if st.ReadOnly {
			ro = 1
		}
		fmt.Fprintf(&b, "# Persistence\r\nloading:0\r\nshoal_read_only:%d\r\nshoal_wal_bytes:%d\r\n\r\n", ro, st.WALBytes)
	}
	if want("stats") {
		batches, rounds, failed := c.s.comb.stats()
		fmt.Fprintf(&b, "# Stats\r\nshoal_shared_batches:%d\r\nshoal_shared_batch_rounds:%d\r\n"+
			"shoal_shared_batches_refused:%d\r\n\r\n", batches, rounds, failed)
	}
	if want("cpu") {
		if sys, user, ok := processCPU(); ok {
			fmt.Fprintf(&b, "# CPU\r\nused_cpu_sys:%.6f\r\nused_cpu_user:%.6f\r\n\r\n", sys, user)
		}
	}
	if want("keyspace") {
		b.WriteString("# Keyspace\r\n")
		if st.Keys > 0 {
			fmt.Fprintf(&b, "db0:keys=%d,expires=0,avg_ttl=0\r\n", st.Keys)
		}
	}
	c.o.bulkString(b.String())
}

func port(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

// config answers CONFIG GET for the few settings tools read
// (redis-benchmark asks for save and appendonly), mapped from the node:
// no RDB snapshots, always an append-only log, and its sync policy as
// appendfsync. Nothing can be set.
func (c *conn) config(a [][]byte) {
	if !strings.EqualFold(string(a[1]), "GET") || len(a) < 3 {
		c.o.err("ERR CONFIG " + strings.ToUpper(printable(a[1])) + " is not supported by shoal")
		return
	}
	fsync := map[string]string{"always": "always", "interval": "everysec", "never": "no"}[c.s.n.Status().Sync]
	params := [][2]string{{"appendfsync", fsync}, {"appendonly", "yes"}, {"databases", "1"},
		{"maxclients", strconv.Itoa(c.s.opts.MaxConnections)}, {"save", ""}}
	var match [][2]string
	for _, p := range params {
		for _, pat := range a[2:] {
			if globMatch([]byte(strings.ToLower(string(pat))), []byte(p[0])) {
				match = append(match, p)
				break
			}
		}
	}
	c.o.mapHeader(len(match))
	for _, p := range match {
		c.o.bulkString(p[0])
		c.o.bulkString(p[1])
	}
}

// commandCmd is COMMAND, COMMAND COUNT, COMMAND INFO and COMMAND DOCS:
// what redis-cli and client libraries read at start.
func (c *conn) commandCmd(a [][]byte) {
	sorted := func() []*command {
		list := make([]*command, 0, len(commands))
		for _, cmd := range commands {
			list = append(list, cmd)
		}
		slices.SortFunc(list, func(x, y *command) int { return strings.Compare(x.name, y.name) })
		return list
	}
	if len(a) == 1 {
		list := sorted()
		c.o.array(len(list))
		for _, cmd := range list {
			c.commandInfo(cmd)
		}
		return
	}
	switch strings.ToUpper(string(a[1])) {
	case "COUNT":
		c.o.int(int64(len(commands)))
	case "INFO":
		c.o.array(len(a) - 2)
		for _, name := range a[2:] {
			if cmd := lookup(name); cmd != nil {
				c.commandInfo(cmd)
			} else {
				c.o.nullArray()
			}
		}
	case "DOCS":
		var list []*command
		if len(a) == 2 {
			list = sorted()
		}
		for _, name := range a[2:] {
			if cmd := lookup(name); cmd != nil {
				list = append(list, cmd)
			}
		}
		c.o.mapHeader(len(list))
		for _, cmd := range list {
			c.o.bulkString(cmd.name)
			c.o.mapHeader(3)
			c.o.bulkString("summary")
			c.o.bulkString(cmd.summary)
			c.o.bulkString("since")
			c.o.bulkString("1.0.0")
			c.o.bulkString("group")
			c.o.bulkString(cmd.group)
		}
	default:
		c.o.err("ERR unknown subcommand '" + printable(a[1]) + "'. Try COMMAND HELP.")
	}
}

// commandInfo writes one entry of COMMAND as Redis 7 does (ten fields).
func (c *conn) commandInfo(cmd *command) {
	c.o.array(10)
	c.o.bulkString(cmd.name)
	c.o.int(int64(cmd.arity))
	c.o.setHeader(len(cmd.flags))
	for _, f := range cmd.flags {
		c.o.status(f)
	}
	c.o.int(int64(cmd.first))
	c.o.int(int64(cmd.last))
	c.o.int(int64(cmd.step))
	for range 4 { // ACL categories, tips, key specs, subcommands
		c.o.array(0)
	}
}
