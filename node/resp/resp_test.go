package resp

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// step is one command and its expected reply as go-redis's Do returns it,
// printed with %v; an expected error starts with "ERR ", "WRONGTYPE " etc.
type step struct {
	args []any
	want string
}

func run(t *testing.T, c *redis.Client, steps []step) {
	t.Helper()
	for _, s := range steps {
		v, err := c.Do(ctx, s.args...).Result()
		got := fmt.Sprintf("%v", v)
		if errors.Is(err, redis.Nil) {
			got = "<nil>"
		} else if err != nil {
			got = err.Error()
		}
		if s.want != got && !(strings.HasSuffix(s.want, "...") && strings.HasPrefix(got, strings.TrimSuffix(s.want, "..."))) {
			t.Errorf("%v: got %q, want %q", s.args, got, s.want)
		}
	}
}

func TestRESPCommands(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := ts.client(t, 2, "")
	run(t, c, []step{
		// registers
		{[]any{"GET", "s"}, "<nil>"},
		{[]any{"SET", "s", "hello"}, "OK"},
		{[]any{"GET", "s"}, "hello"},
		{[]any{"SET", "s", "x", "NX"}, "<nil>"},
		{[]any{"SET", "s2", "x", "XX"}, "<nil>"},
		{[]any{"SET", "s", "world", "XX", "GET"}, "hello"},
		{[]any{"SET", "s2", "new", "NX", "GET"}, "<nil>"},
		{[]any{"GET", "s2"}, "new"},
		{[]any{"SET", "s", "v", "NX", "XX"}, "ERR syntax error"},
		{[]any{"SET", "s", "v", "BOGUS"}, "ERR syntax error"},
		{[]any{"MSET", "a", "1", "b", "2"}, "OK"},
		{[]any{"MSET", "a", "1", "b"}, "ERR wrong number of arguments for 'mset' command"},
		{[]any{"MGET", "a", "nope", "b"}, "[1 <nil> 2]"},
		{[]any{"GETDEL", "a"}, "1"},
		{[]any{"GETDEL", "a"}, "<nil>"},
		{[]any{"GET", "a"}, "<nil>"},
		{[]any{"GET"}, "ERR wrong number of arguments for 'get' command"},
		{[]any{"GET", "a", "b"}, "ERR wrong number of arguments for 'get' command"},
		// counters
		{[]any{"INCR", "n"}, "1"},
		{[]any{"INCRBY", "n", "10"}, "11"},
		{[]any{"DECR", "n"}, "10"},
		{[]any{"DECRBY", "n", "3"}, "7"},
		{[]any{"INCRBY", "n", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"DECRBY", "n", "-9223372036854775808"}, "ERR value is not an integer or out of range"},
		{[]any{"INCRBY", "n", "9223372036854775807"}, "ERR increment or decrement would overflow"},
		{[]any{"GET", "n"}, "7"},
		{[]any{"TYPE", "n"}, "string"},
		{[]any{"INCR", "s"}, "WRONGTYPE Operation against a key holding the wrong kind of value"},
		{[]any{"SET", "n", "now a string"}, "OK"}, // SET replaces another type
		{[]any{"GET", "n"}, "now a string"},
		{[]any{"INCR", "n"}, "WRONGTYPE Operation against a key holding the wrong kind of value"},
		// sets
		{[]any{"SADD", "set", "a", "b", "a"}, "2"},
		{[]any{"SADD", "set", "b", "c"}, "1"},
		{[]any{"SMEMBERS", "set"}, "[a b c]"},
		{[]any{"SISMEMBER", "set", "a"}, "1"},
		{[]any{"SISMEMBER", "set", "z"}, "0"},
		{[]any{"SCARD", "set"}, "3"},
		{[]any{"SREM", "set", "a", "z"}, "1"},
		{[]any{"SCARD", "set"}, "2"},
		{[]any{"SMEMBERS", "none"}, "[]"},
		{[]any{"SADD", "s", "x"}, "WRONGTYPE Operation against a key holding the wrong kind of value"},
		{[]any{"GET", "set"}, "WRONGTYPE Operation against a key holding the wrong kind of value"},
		{[]any{"SADD", "set"}, "ERR wrong number of arguments for 'sadd' command"},
		{[]any{"SREM", "set", "b", "c"}, "2"},
		{[]any{"EXISTS", "set"}, "0"}, // emptied: gone, as in Redis
		// hashes
		{[]any{"HSET", "h", "f1", "v1", "f2", "v2"}, "2"},
		{[]any{"HSET", "h", "f1", "v1b"}, "0"},
		{[]any{"HGET", "h", "f1"}, "v1b"},
		{[]any{"HGET", "h", "nope"}, "<nil>"},
		{[]any{"HLEN", "h"}, "2"},
		{[]any{"HEXISTS", "h", "f2"}, "1"},
		{[]any{"HEXISTS", "h", "f3"}, "0"},
		{[]any{"HINCRBY", "h", "n", "5"}, "5"},
		{[]any{"HINCRBY", "h", "n", "-2"}, "3"},
		{[]any{"HINCRBY", "h", "f1", "1"}, "ERR hash value is not an integer"},
		{[]any{"HINCRBY", "h", "n", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"HGETALL", "h"}, "[f1 v1b f2 v2 n 3]"},
		{[]any{"HDEL", "h", "f1", "zz"}, "1"},
		{[]any{"HGETALL", "h"}, "[f2 v2 n 3]"},
		{[]any{"HSET", "h", "n", "str"}, "0"}, // a string replaces a counter field
		{[]any{"HGET", "h", "n"}, "str"},
		{[]any{"HSET", "h", "f"}, "ERR wrong number of arguments for 'hset' command"},
		{[]any{"HSET", "h", "f", "v", "g"}, "ERR wrong number of arguments for 'hset' command"},
		{[]any{"HGET", "s", "f"}, "WRONGTYPE Operation against a key holding the wrong kind of value"},
		{[]any{"HGETALL", "none"}, "[]"},
		// keys
		{[]any{"TYPE", "s"}, "string"},
		{[]any{"TYPE", "h"}, "hash"},
		{[]any{"TYPE", "none"}, "none"},
		{[]any{"EXISTS", "s", "h", "none", "s"}, "3"},
		{[]any{"DEL", "s", "none"}, "1"},
		{[]any{"UNLINK", "h"}, "1"},
		{[]any{"EXISTS", "s", "h"}, "0"},
		{[]any{"KEYS", "*"}, "[b n s2]"},
		{[]any{"KEYS", "s?"}, "[s2]"},
		{[]any{"KEYS", "[ab]"}, "[b]"},
		{[]any{"DBSIZE"}, "3"},
		// connection and server
		{[]any{"PING"}, "PONG"},
		{[]any{"PING", "hi"}, "hi"},
		{[]any{"ECHO", "x y"}, "x y"},
		{[]any{"SELECT", "0"}, "OK"},
		{[]any{"SELECT", "1"}, "ERR DB index is out of range"},
		{[]any{"CLIENT", "GETNAME"}, "<nil>"},
		{[]any{"CLIENT", "SETNAME", "worker-1"}, "OK"},
		{[]any{"CLIENT", "GETNAME"}, "worker-1"},
		{[]any{"CLIENT", "SETNAME", "a b"}, "ERR Client names cannot contain spaces, newlines or special characters."},
		{[]any{"CLIENT", "BOGUS"}, "ERR unknown subcommand or wrong number of arguments for 'BOGUS'. Try CLIENT HELP."},
		{[]any{"COMMAND", "COUNT"}, fmt.Sprint(len(commands))},
		{[]any{"NOSUCH", "a", "b"}, "ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' "},
		{[]any{"AUTH", "pw"}, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
		{[]any{"WATCH", "k"}, "ERR WATCH is not supported..."},
		{[]any{"EXEC"}, "ERR EXEC without MULTI"},
		{[]any{"DISCARD"}, "ERR DISCARD without MULTI"},
		{[]any{"CONFIG", "GET", "save"}, "[save ]"},
		{[]any{"CONFIG", "GET", "append*"}, "[appendfsync no appendonly yes]"},
		{[]any{"CONFIG", "SET", "save", ""}, "ERR CONFIG SET is not supported by shoal"},
		{[]any{"HELLO", "4"}, "NOPROTO unsupported protocol version"},
		{[]any{"HELLO", "2"}, "[server shoal version dev proto 2 id ..."},
		{[]any{"HMSET", "hm", "a", "1"}, "OK"},
		{[]any{"CLIENT", "ID"}, "..."},
		{[]any{"CLIENT", "SETINFO", "LIB-NAME", "x"}, "OK"},
		{[]any{"COMMAND", "INFO", "get", "nosuch"}, "[[get 2 [readonly fast] 1 1 1 [] [] [] []] <nil>]"},
		{[]any{"COMMAND", "DOCS", "incr"}, "[incr [summary Increments a counter by one. since 1.0.0 group string]]"},
		{[]any{"COMMAND", "BOGUS"}, "ERR unknown subcommand 'BOGUS'. Try COMMAND HELP."},
		{[]any{"UNWATCH"}, "OK"},
		{[]any{"INFO", "keyspace"}, "# Keyspace\r\ndb0:keys=4,expires=0,avg_ttl=0\r\n"},
	})
	raw := dial(t, ts.addr)
	if got := raw.cmd("QUIT"); got != "+OK\r\n" {
		t.Fatalf("QUIT = %q", got)
	}
	if got := raw.read(); got != "<closed>" {
		t.Fatalf("after QUIT: %q", got)
	}
	info, err := c.Info(ctx, "server").Result()
	if err != nil || !strings.Contains(info, "shoal_digest:"+ts.n.Digest()) || !strings.Contains(info, "shoal_version:") {
		t.Fatalf("INFO server = %q, %v", info, err)
	}
	if runtime.GOOS != "windows" { // getrusage: INFO cpu, as Redis's, for tools that measure the server
		cpu := func() float64 {
			t.Helper()
			info, err := c.Info(ctx, "cpu").Result()
			var sys, user float64
			if _, serr := fmt.Sscanf(info, "# CPU\r\nused_cpu_sys:%f\r\nused_cpu_user:%f\r\n", &sys, &user); err != nil || serr != nil {
				t.Fatalf("INFO cpu = %q, %v, %v", info, err, serr)
			}
			return sys + user
		}
		before := cpu()
		for end := time.Now().Add(20 * time.Millisecond); time.Now().Before(end); {
		}
		if after := cpu(); after <= before {
			t.Fatalf("INFO cpu: %v s, then %v s after 20 ms of work", before, after)
		}
	}
	cmds, err := c.Command(ctx).Result()
	if err != nil || cmds["get"] == nil || cmds["get"].Arity != 2 || cmds["mset"].LastKeyPos != -1 {
		t.Fatalf("COMMAND = %v, %v", cmds["get"], err)
	}
}

// TestRESPStringBytes: a SET value comes back byte for byte, UTF-8 or
// not, and a register written through the node with another JSON value
// reads as its JSON.
func TestRESPStringBytes(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := ts.client(t, 3, "")
	long := strings.Repeat("a\\\"\n", 30000) // GET unquotes in a buffer the connection keeps while small
	for _, v := range []string{"", "plain", long, "quote\" back\\slash \n\u2028", long[:1000], "\xff\xfe\x00binary", `{"$bytes":"x"}`} {
		if err := c.Set(ctx, "k", v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Get(ctx, "k").Result(); err != nil || got != v {
			t.Fatalf("GET after SET %q = %q, %v", v, got, err)
		}
		if err := c.HSet(ctx, "h", "f", v).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := c.HGet(ctx, "h", "f").Result(); err != nil || got != v {
			t.Fatalf("HGET after HSET %q = %q, %v", v, got, err)
		}
	}
	if v, _ := ts.n.Get("k"); v.Data != `{"$bytes":"x"}` {
		t.Fatalf("a UTF-8 string is stored as a JSON string; got %#v", v.Data)
	}
	must(t, ts.n.Put("num", 42))
	must(t, ts.n.Put("doc", map[string]any{"a": []any{1, "x"}}))
	if got, _ := c.Get(ctx, "num").Result(); got != "42" {
		t.Fatalf("GET of a JSON number = %q", got)
	}
	if got, _ := c.Get(ctx, "doc").Result(); got != `{"a":[1,"x"]}` {
		t.Fatalf("GET of a JSON object = %q", got)
	}
	// Non-UTF-8 keys and members are refused, not mangled.
	if err := c.Set(ctx, "\xff", "v", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR invalid key") {
		t.Fatalf("SET of a non-UTF-8 key = %v", err)
	}
	if err := c.SAdd(ctx, "set", "\xff").Err(); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("SADD of a non-UTF-8 member = %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRESP3Replies(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := ts.client(t, 3, "")
	must(t, c.HSet(ctx, "h", "a", "1", "b", "2").Err())
	must(t, c.SAdd(ctx, "s", "x", "y").Err())
	run(t, c, []step{
		{[]any{"HGETALL", "h"}, "map[a:1 b:2]"},
		{[]any{"SMEMBERS", "s"}, "[x y]"},
		{[]any{"GET", "none"}, "<nil>"},
		{[]any{"HELLO", "3"}, "..."},
	})
	if m, err := c.HGetAll(ctx, "h").Result(); err != nil || m["a"] != "1" || len(m) != 2 {
		t.Fatalf("HGETALL = %v, %v", m, err)
	}
	hello, err := c.Do(ctx, "HELLO", "3").Result()
	m, ok := hello.(map[any]any)
	if err != nil || !ok || m["proto"] != int64(3) || m["server"] != "shoal" {
		t.Fatalf("HELLO 3 = %#v, %v", hello, err)
	}
}

// TestRESPScan walks the keys with a cursor across calls: every key once.
func TestRESPScan(t *testing.T) {
	ts := startServer(t, nil, nil)
	c := ts.client(t, 2, "")
	want := map[string]bool{}
	for i := range 95 {
		k := fmt.Sprintf("user:%03d", i)
		want[k] = true
		must(t, c.Set(ctx, k, "x", 0).Err())
		must(t, c.SAdd(ctx, fmt.Sprintf("other:%d", i), "m").Err())
	}
	seen := map[string]bool{}
	var cursor uint64
	calls := 0
	for {
		keys, next, err := c.Scan(ctx, cursor, "user:*", 10).Result()
		must(t, err)
		calls++
		for _, k := range keys {
			if seen[k] || !want[k] {
				t.Fatalf("SCAN returned %q twice or unasked", k)
			}
			seen[k] = true
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	if len(seen) != len(want) || calls < 10 {
		t.Fatalf("SCAN saw %d keys in %d calls", len(seen), calls)
	}
	// A cursor works on another connection (clients pool them).
	_, cur, err := c.Scan(ctx, 0, "user:*", 10).Result()
	must(t, err)
	other := ts.client(t, 2, "")
	if keys, _, err := other.Scan(ctx, cur, "user:*", 10).Result(); err != nil || len(keys) != 10 || keys[0] != "user:010" {
		t.Fatalf("SCAN on another connection = %v, %v", keys, err)
	}
	keys, _, err := c.ScanType(ctx, 0, "*", 1000, "set").Result()
	if err != nil || len(keys) != 95 {
		t.Fatalf("SCAN TYPE set = %d keys, %v", len(keys), err)
	}
	run(t, c, []step{
		{[]any{"SCAN", "12345"}, "ERR invalid cursor"},
		{[]any{"SCAN", "x"}, "ERR invalid cursor"},
		{[]any{"SCAN", "0", "COUNT", "0"}, "ERR syntax error"},
		{[]any{"SCAN", "0", "MATCH"}, "ERR syntax error"},
	})
	for _, tc := range []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true}, {"a*c", "abbc", true}, {"a*c", "abb", false}, {"a?c", "abc", true},
		{"[a-c]x", "bx", true}, {"[^a-c]x", "bx", false}, {`a\*`, "a*", true}, {`a\*`, "ab", false},
		{"user:*", "user:1", true}, {"h[ae]llo", "hallo", true}, {"h[ae]llo", "hillo", false},
	} {
		if got := globMatch([]byte(tc.pat), []byte(tc.s)); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.pat, tc.s, got)
		}
	}
}

func TestRESPAuth(t *testing.T) {
	ts := startServer(t, nil, &Options{Password: "sekrit"})
	// Without a password: everything but AUTH, HELLO and QUIT is refused.
	raw := dial(t, ts.addr)
	if got := raw.cmd("GET", "k"); got != "-NOAUTH Authentication required.\r\n" {
		t.Fatalf("GET before AUTH = %q", got)
	}
	if got := raw.cmd("PING"); got != "-NOAUTH Authentication required.\r\n" {
		t.Fatalf("PING before AUTH = %q", got)
	}
	if got := raw.cmd("HELLO", "3"); !strings.HasPrefix(got, "-NOAUTH HELLO must be called") {
		t.Fatalf("HELLO before AUTH = %q", got)
	}
	if got := raw.cmd("AUTH", "wrong"); got != "-WRONGPASS invalid username-password pair or user is disabled.\r\n" {
		t.Fatalf("AUTH wrong = %q", got)
	}
	if got := raw.cmd("AUTH", "default", "sekrit"); got != "+OK\r\n" {
		t.Fatalf("AUTH user pass = %q", got)
	}
	if got := raw.cmd("PING"); got != "+PONG\r\n" {
		t.Fatalf("PING after AUTH = %q", got)
	}
	// go-redis authenticates with HELLO 3 AUTH default <pass>.
	c := ts.client(t, 3, "sekrit")
	must(t, c.Set(ctx, "k", "v", 0).Err())
	bad := ts.client(t, 3, "nope")
	if err := bad.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("a wrong password = %v", err)
	}
	c2 := ts.client(t, 2, "sekrit")
	must(t, c2.Ping(ctx).Err())
	noPass := ts.client(t, 2, "")
	if err := noPass.Get(ctx, "k").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("no password = %v", err)
	}
}

// rawConn speaks RESP by hand, for what a client library would not send.
type rawConn struct {
	t  testing.TB
	nc net.Conn
}

func dial(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

func encode(args ...string) string {
	s := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		s += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	return s
}

// cmd sends one command and reads one reply's first chunk.
func (r *rawConn) cmd(args ...string) string {
	r.t.Helper()
	return r.send(encode(args...))
}

func (r *rawConn) send(s string) string {
	r.t.Helper()
	if _, err := r.nc.Write([]byte(s)); err != nil {
		r.t.Fatal(err)
	}
	return r.read()
}

// read returns what arrives until the server pauses or closes.
func (r *rawConn) read() string {
	r.t.Helper()
	buf := make([]byte, 1<<16)
	n, err := r.nc.Read(buf)
	if err != nil && n == 0 {
		return "<closed>"
	}
	return string(buf[:n])
}
