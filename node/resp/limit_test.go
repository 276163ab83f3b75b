package resp

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRESPProtocolErrors: a malformed or oversized request is answered
// with a protocol error and closes that connection only; what came
// before it in the same pipeline is served.
func TestRESPProtocolErrors(t *testing.T) {
	ts := startServer(t, nil, &Options{MaxBulkBytes: 100, MaxArgs: 4, MaxCommandBytes: 300})
	other := dial(t, ts.addr)
	for _, tc := range []struct{ name, req, want string }{
		{"bad multibulk", "*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"bad bulk", "*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"no dollar", "*1\r\n+PING\r\n", "-ERR Protocol error: expected '$', got '+'\r\n"},
		{"bulk over the limit", "*2\r\n$3\r\nGET\r\n$101\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"huge bulk", "*2\r\n$3\r\nGET\r\n$99999999999999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"too many args", "*5\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"signed count", "*+1\r\n$+999999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"signed bulk", "*1\r\n$+999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"negative count", "*-1\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"command too large", encode("MSET", strings.Repeat("k", 100), strings.Repeat("v", 100), strings.Repeat("w", 100)),
			"-ERR Protocol error: command too large\r\n"},
		{"served before the bad one", encode("PING") + "*9\r\n", "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"},
		{"inline too long", strings.Repeat("a", maxInlineBytes+1), "-ERR Protocol error: too big inline request\r\n"},
	} {
		c := dial(t, ts.addr)
		got := c.send(tc.req)
		for got != "<closed>" && !strings.HasSuffix(got, "\r\n-ERR Protocol error: "+strings.TrimPrefix(tc.want, "-ERR Protocol error: ")) && got != tc.want {
			more := c.read()
			if more == "<closed>" {
				break
			}
			got += more
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
		if after := c.read(); after != "<closed>" {
			t.Errorf("%s: the connection stayed open (%q)", tc.name, after)
		}
		if got := other.cmd("PING"); got != "+PONG\r\n" {
			t.Fatalf("%s: another connection broke: %q", tc.name, got)
		}
	}
	// Inline commands (telnet) work.
	c := dial(t, ts.addr)
	if got := c.send("SET k \"a b\"\r\n"); got != "+OK\r\n" {
		t.Fatalf("inline SET = %q", got)
	}
	if got := c.send("GET k\r\n"); got != "$3\r\na b\r\n" {
		t.Fatalf("inline GET = %q", got)
	}
	// A large pipeline of small commands is not "too large": the limit
	// is per command.
	var b strings.Builder
	for i := range 1000 {
		b.WriteString(encode("SET", fmt.Sprint("p", i), "v"))
	}
	got := c.send(b.String())
	for strings.Count(got, "+OK\r\n") < 1000 {
		more := c.read()
		if more == "<closed>" {
			t.Fatalf("closed after %d replies", strings.Count(got, "+OK\r\n"))
		}
		got += more
	}
}

func TestRESPMaxConnections(t *testing.T) {
	ts := startServer(t, nil, &Options{MaxConnections: 2})
	a, b := dial(t, ts.addr), dial(t, ts.addr)
	a.cmd("PING")
	b.cmd("PING")
	c := dial(t, ts.addr)
	if got := c.read(); got != "-ERR max number of clients reached\r\n" {
		t.Fatalf("third connection: %q", got)
	}
	b.nc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for ts.s.Conns() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the closed connection was not released")
		}
		time.Sleep(time.Millisecond)
	}
	d := dial(t, ts.addr)
	if got := d.cmd("PING"); got != "+PONG\r\n" {
		t.Fatalf("after one closed: %q", got)
	}
}

// FuzzLimitReader: whatever the bytes, the server answers or closes the
// connection, and never panics (a panic in a connection's goroutine ends
// the test binary).
func FuzzLimitReader(f *testing.F) {
	f.Add([]byte(encode("SET", "k", "v")))
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$99\r\n"))
	f.Add([]byte("PING\r\n*1\r\n$4\r\nPING\r\n"))
	f.Add([]byte("*-1\r\n*0\r\n$-1\r\n"))
	ts := startServer(f, nil, &Options{MaxBulkBytes: 64, MaxArgs: 8, MaxCommandBytes: 256})
	f.Fuzz(func(t *testing.T, req []byte) {
		c := dial(t, ts.addr)
		_ = c.nc.SetDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.nc.Write(req); err != nil {
			return
		}
		buf := make([]byte, 4096)
		for {
			if _, err := c.nc.Read(buf); err != nil {
				break
			}
		}
		c.nc.Close()
	})
}

// chunky returns its data a few bytes at a time, into buffers larger than
// what it returns.
type chunky struct {
	data []byte
	rnd  *rand.Rand
}

func (c *chunky) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rnd.IntN(300))
	copy(p, c.data[:n])
	for i := n; i < min(len(p), n+64); i++ {
		p[i] = '*' // garbage beyond what was read must not count
	}
	c.data = c.data[n:]
	return n, nil
}

// TestLimitReaderFraming: valid streams cut at any byte pass through the
// limiter in step (no false protocol error) and the reader returns every
// command with its arguments, whatever the chunks.
func TestLimitReaderFraming(t *testing.T) {
	for seed := range uint64(20) {
		rnd := rand.New(rand.NewPCG(seed, 1))
		var b strings.Builder
		var want [][]string
		for range 100 {
			if rnd.IntN(5) == 0 {
				b.WriteString("PING inline\r\n")
				want = append(want, []string{"PING", "inline"})
			} else {
				// Some values longer than an inline line may be: a limiter
				// out of step would read one as an inline command too long.
				size := rnd.IntN(3000)
				if rnd.IntN(10) == 0 {
					size = maxInlineBytes + rnd.IntN(1000)
				}
				cmd := []string{"SET", fmt.Sprint("k", rnd.IntN(100)), strings.Repeat(string(rune('a'+rnd.IntN(26))), size)}
				b.WriteString(encode(cmd...))
				want = append(want, cmd)
			}
		}
		lr := &limitReader{r: &chunky{data: []byte(b.String()), rnd: rnd}, maxArgs: 3, maxBulk: 2 * maxInlineBytes, maxTotal: 3 * maxInlineBytes}
		rd := newReader(lr)
		got := 0
	read:
		for {
			if err := rd.fill(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("seed %d: after %d commands: %v", seed, got, err)
			}
			for {
				a, err := rd.next()
				if err != nil {
					t.Fatalf("seed %d: after %d commands: %v", seed, got, err)
				}
				if a == nil {
					continue read
				}
				if got >= len(want) || !slices.Equal(strs(a), want[got]) {
					t.Fatalf("seed %d: command %d reads as %.40q", seed, got, strs(a))
				}
				got++
			}
		}
		if got != len(want) {
			t.Fatalf("seed %d: %d commands, want %d", seed, got, len(want))
		}
		if len(rd.buf) > readBufferKeepMax {
			t.Fatalf("seed %d: the read buffer stayed at %d bytes", seed, len(rd.buf))
		}
	}
}

func strs(a [][]byte) []string {
	out := make([]string, len(a))
	for i, b := range a {
		out[i] = string(b)
	}
	return out
}

// FuzzReader: whatever the bytes and however they are cut, the reader
// returns commands or an error, never panics, and its buffer stays within
// what the limits allow.
func FuzzReader(f *testing.F) {
	f.Add([]byte(encode("SET", "k", "v")+"PING\r\n\r\n*0\r\n"), uint64(1))
	f.Add([]byte("$3 foo\r\n"), uint64(2))
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$9\r\nabc"), uint64(3))
	f.Add([]byte("SET \"a b\" 'c'\r\n"), uint64(4))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		const maxTotal = 256
		lr := &limitReader{r: &chunky{data: data, rnd: rand.New(rand.NewPCG(seed, 2))}, maxArgs: 8, maxBulk: 64, maxTotal: maxTotal}
		rd := newReader(lr)
		for rd.fill() == nil {
			for {
				a, err := rd.next()
				if err != nil || a == nil {
					break
				}
				if len(a) == 0 {
					t.Fatal("an empty command")
				}
			}
			if len(rd.buf) > readBufferSize+2*max(maxTotal, maxInlineBytes) {
				t.Fatalf("the read buffer grew to %d bytes", len(rd.buf))
			}
		}
	})
}

// TestReaderShrinksAfterALargeCommand: the buffer a large command grew is
// given back once it is served, even while small commands keep coming,
// and no fill brings more than a bounded number of commands.
func TestReaderShrinksAfterALargeCommand(t *testing.T) {
	var b strings.Builder
	b.WriteString(encode("SET", "big", strings.Repeat("v", 1<<20)))
	for range 50_000 {
		b.WriteString("PING\r\n")
	}
	lr := &limitReader{r: strings.NewReader(b.String()), maxArgs: 3, maxBulk: 2 << 20, maxTotal: 4 << 20}
	rd := newReader(lr)
	got, most, grew := 0, 0, false
	for rd.fill() == nil {
		for {
			a, err := rd.next()
			if err != nil {
				t.Fatal(err)
			}
			if a == nil {
				break
			}
			got++
		}
		most = max(most, cap(rd.args))
		grew = grew || len(rd.buf) > readBufferKeepMax
	}
	if got != 50_001 {
		t.Fatalf("%d commands, want 50001", got)
	}
	if !grew || len(rd.buf) > readBufferKeepMax {
		t.Fatalf("the buffer grew: %v, ends at %d bytes", grew, len(rd.buf))
	}
	if most > 2*maxReadChunk/len("PING\r\n") {
		t.Fatalf("one fill held %d argument slices", most)
	}
}

// FuzzLimitReaderFastPath: Read's inline handling of a count's digits
// accepts and refuses exactly what scan does byte by byte (read without
// it, Read as it was before), at the same byte, whatever the input, the
// limits and the chunks.
func FuzzLimitReaderFastPath(f *testing.F) {
	f.Add([]byte(encode("SET", "k", "v")+"*2\r\n$3\r\nGET\r\n$101\r\n"), uint64(1), uint16(100))
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$99999999999999999999\r\n"), uint64(2), uint16(1000))
	f.Add([]byte("*+1\r\n$+9\r\nPING inline\r\n*0\r\n"), uint64(3), uint16(20))
	f.Add([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0123\r\n"), uint64(4), uint16(30))
	f.Add([]byte("*12345678901234567\r\n*1\r\n$123456789012345678\r\n"), uint64(5), uint16(511))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, limit uint16) {
		newLR := func() *limitReader {
			return &limitReader{r: &chunky{data: data, rnd: rand.New(rand.NewPCG(seed, 3))},
				maxArgs: 8, maxBulk: 64, maxTotal: int(limit%512) + 1}
		}
		fast, ref := newLR(), newLR()
		for {
			b1, b2 := make([]byte, 512), make([]byte, 512)
			n1, err1 := fast.Read(b1)
			n2, err2 := ref.read(b2, false)
			if n1 != n2 || (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) ||
				(fast.pending == nil) != (ref.pending == nil) {
				t.Fatalf("Read: %d, %v (pending %v); byte by byte: %d, %v (pending %v)", n1, err1, fast.pending, n2, err2, ref.pending)
			}
			if err1 != nil {
				return
			}
		}
	})
}

// BenchmarkLimitReader: the limiter's pass over a pipelined round of 16
// commands (the bytes are already in memory; the read costs a copy).
func BenchmarkLimitReader(b *testing.B) {
	for _, tc := range []struct{ name, cmd string }{
		{"incr", encode("INCR", "counter:__rand_int__")},
		{"set256", encode("SET", "key:__rand_int__", strings.Repeat("x", 256))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			round := []byte(strings.Repeat(tc.cmd, 16))
			lr := &limitReader{r: repeatReader(round), maxArgs: DefaultMaxArgs, maxBulk: DefaultMaxBulkBytes, maxTotal: DefaultMaxCommandBytes}
			buf := make([]byte, len(round))
			b.SetBytes(int64(len(round)))
			for b.Loop() {
				if _, err := lr.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// repeatReader returns the same bytes on every read.
type repeatReader []byte

func (r repeatReader) Read(p []byte) (int, error) { return copy(p, r), nil }
