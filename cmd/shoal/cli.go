package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/client"
	"github.com/shoaldb/shoal/node/httpapi"
)

// clientCommand is one subcommand of the CLI client: the client side of one
// HTTP API call.
type clientCommand struct {
	name    string
	args    string // synopsis of the positional arguments
	summary string
	detail  string
	minArgs int
	maxArgs int // -1 = any
	// flags adds the command's own flags; it may be nil.
	flags func(fs *flag.FlagSet, c *clientCmd)
	run   func(ctx context.Context, c *clientCmd, args []string) error
}

// clientCmd holds what every client command shares: the flags common to all
// of them and where to write.
type clientCmd struct {
	// api is the client of the node's HTTP API, using the command's
	// context; nil when no address was given (see client).
	api     *client.Client
	Output  string // "human" or "json"
	Stdin   io.Reader
	Stdout  io.Writer
	Timeout time.Duration

	addr, token, caFile string
	insecure            bool

	// the commands' own flags
	siblings   bool
	asString   bool
	by         int64
	limit      int
	from       int64
	count      int
	patchSet   listFlag
	patchDel   listFlag
	patchIncr  listFlag
	patchAdd   listFlag
	patchRem   listFlag
	patchOn    listFlag
	patchOff   listFlag
	waitUntil  time.Duration
	watchAfter string
	ttl        string // --ttl of put and patch: a Go duration; "" = none
	prefix     string // export --prefix
	batchSize  int    // import --batch
}

// ttlFlag adds --ttl to a write command.
func ttlFlag(fs *flag.FlagSet, c *clientCmd) {
	fs.StringVar(&c.ttl, "ttl", "", fmt.Sprintf("expire the key this long after the write, e.g. 30s or 1h30m (at most %v)", node.MaxTTL))
}

// writeOptions parses --ttl. A bad TTL is refused before anything is sent,
// with the node's error (naming the limit).
func (c *clientCmd) writeOptions() (node.WriteOptions, error) {
	if c.ttl == "" {
		return node.WriteOptions{}, nil
	}
	ttl, err := parseTTL(c.ttl)
	return node.WriteOptions{TTL: ttl}, err
}

// parseTTL reads a TTL argument as the HTTP API does.
func parseTTL(s string) (time.Duration, error) {
	ttl, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: ttl %q is not a duration such as 30s or 1h30m (positive, at most %v)", node.ErrInvalidValue, s, node.MaxTTL)
	}
	return ttl, node.CheckTTL(ttl)
}

var clientCommands = []*clientCommand{
	{
		name: "get", args: "KEY", summary: "read a key",
		detail: `Prints the value of KEY. A register holding a string prints the string, other
values print as JSON; a set prints one member per line. --siblings also shows
the concurrent values of a register that a plain read hides.`,
		minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet, c *clientCmd) {
			fs.BoolVar(&c.siblings, "siblings", false, "show the concurrent values (siblings) of a register")
		},
		run: runGet,
	},
	{
		name: "put", args: "KEY [VALUE|-]", summary: "write a register",
		detail: `Writes VALUE to the register KEY. VALUE is read as JSON when it parses as JSON
(42, true, {"a":1}, "quoted"), else as a string; --string always stores a
string. "-" or no VALUE reads the value from standard input.`,
		minArgs: 1, maxArgs: 2,
		flags: func(fs *flag.FlagSet, c *clientCmd) {
			fs.BoolVar(&c.asString, "string", false, "store VALUE as a JSON string even if it parses as JSON")
			ttlFlag(fs, c)
		},
		run: runPut,
	},
	{
		name: "expire", args: "KEY TTL", summary: "make a key expire",
		detail: fmt.Sprintf(`Makes KEY (of any type) expire TTL from now, e.g. 30s or 1h30m (at most %v),
replacing the expiry it had. Once expired, the key is gone on every node;
a write without --ttl keeps a key's expiry, persist removes it.`, node.MaxTTL),
		minArgs: 2, maxArgs: 2, run: runExpire,
	},
	{
		name: "persist", args: "KEY", summary: "remove a key's expiry",
		detail:  `Removes the expiry of KEY: it no longer expires.`,
		minArgs: 1, maxArgs: 1, run: runExpire,
	},
	{
		name: "del", args: "KEY", summary: "delete a key (observed remove)",
		detail: `Deletes KEY: removes what this node has seen of it. A write made concurrently
on another node survives.`,
		minArgs: 1, maxArgs: 1, run: runDel,
	},
	{
		name: "incr", args: "KEY [BY]", summary: "add to a counter",
		detail:  `Adds BY (default 1, may be negative) to the counter KEY and prints its new local value.`,
		minArgs: 1, maxArgs: 2,
		flags: func(fs *flag.FlagSet, c *clientCmd) {
			fs.Int64Var(&c.by, "by", 1, "amount to add (the BY argument wins)")
		},
		run: runIncr,
	},
	{
		name: "add", args: "KEY MEMBER...", summary: "add members to a set",
		detail:  `Adds the members to the set KEY (add wins over a concurrent remove).`,
		minArgs: 2, maxArgs: -1, run: runSetOp("add"),
	},
	{
		name: "remove", args: "KEY MEMBER...", summary: "remove members from a set",
		detail:  `Removes the members from the set KEY (the adds this node has seen).`,
		minArgs: 2, maxArgs: -1, run: runSetOp("remove"),
	},
	{
		name: "patch", args: "KEY [JSON]", summary: "update fields of a document (map)",
		detail: `Updates the document KEY. Either give the patch as JSON, e.g.
  {"set": {"title": "x"}, "delete": ["draft"], "incr": {"views": 1}}
(also "add"/"remove": {field: [members]}, "enable"/"disable": [flag fields],
"nested": {field: patch}), or build it with the flags, e.g.
  shoal patch doc1 --set title='"x"' --delete draft --incr views=1`,
		minArgs: 1, maxArgs: 2,
		flags: func(fs *flag.FlagSet, c *clientCmd) {
			fs.Var(&c.patchSet, "set", "field=JSON to set (repeatable; a value that is not JSON is a string)")
			fs.Var(&c.patchDel, "delete", "field to delete (repeatable, comma list)")
			fs.Var(&c.patchIncr, "incr", "field=N to add to a counter field (repeatable)")
			fs.Var(&c.patchAdd, "add", "field=MEMBER to add to a set field (repeatable)")
			fs.Var(&c.patchRem, "remove", "field=MEMBER to remove from a set field (repeatable)")
			fs.Var(&c.patchOn, "enable", "flag field to enable (repeatable, comma list)")
			fs.Var(&c.patchOff, "disable", "flag field to disable (repeatable, comma list)")
			ttlFlag(fs, c)
		},
		run: runPatch,
	},
	{
		name: "keys", args: "[PREFIX]", summary: "list keys, sorted",
		detail:  `Lists the keys starting with PREFIX (all keys without it) and their types.`,
		minArgs: 0, maxArgs: 1,
		flags: func(fs *flag.FlagSet, c *clientCmd) {
			fs.IntVar(&c.limit, "limit", 0, "list at most this many keys (0 = all)")
		},
		run: runKeys,
	},
	{
		name: "watch", args: "[PREFIX]", summary: "stream changes as they happen",
		detail: `Prints every change to keys under PREFIX, local or replicated, as it happens.
Each change carries the WAL offset it got on this node: --from OFFSET replays
the changes the log still holds from that offset first, --after ID resumes
after an event id (what a reconnecting client sends as Last-Event-ID).`,
		minArgs: 0, maxArgs: 1,
		flags: func(fs *flag.FlagSet, c *clientCmd) {
			fs.Int64Var(&c.from, "from", -1, "replay from this WAL offset (inclusive); -1 = only new changes")
			fs.StringVar(&c.watchAfter, "after", "", "resume after this event id (Last-Event-ID)")
			fs.IntVar(&c.count, "count", 0, "exit after this many events (0 = run until interrupted)")
		},
		run: runWatch,
	},
	{
		name: "status", summary: "show the node's status and state digest",
		detail: `Shows the node's name, replica ID, member count, key count and the digest of
its state: two replicas have equal digests exactly when their states are equal.`,
		run: runStatus,
	},
	{
		name: "members", summary: "list the cluster members",
		detail: `Lists the members this node knows, with their address and state.`,
		run:    runMembers,
	},
	{
		name: "sync", summary: "show how far each peer has received this node's writes",
		detail: `Shows, per peer, how many of this node's writes it has acknowledged.`,
		run:    runSync,
	},
	{
		name: "wait-synced", args: "[PEER...]", summary: "wait until peers hold this node's writes",
		detail: `Waits until the given peers (all current members when none are given) hold
every write this node made before the call. Exits non-zero on --timeout.`,
		minArgs: 0, maxArgs: -1,
		flags: func(fs *flag.FlagSet, c *clientCmd) {
			fs.DurationVar(&c.waitUntil, "wait", 30*time.Second, "give up after this long")
		},
		run: runWaitSynced,
	},
}

func findClientCommand(name string) *clientCommand {
	for _, c := range clientCommands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// runClientCommand parses the flags of a client command and runs it.
func (m *Main) runClientCommand(ctx context.Context, cc *clientCommand, args []string) error {
	c := &clientCmd{Stdin: m.Stdin, Stdout: m.Stdout}
	synopsis := "shoal " + cc.name
	if cc.args != "" {
		synopsis += " " + cc.args
	}
	fs := newFlagSet(cc.name, m.Stderr, fmt.Sprintf("Usage: %s [flags]\n\n%s\n\n%s\n", synopsis, cc.summary, cc.detail))
	fs.StringVar(&c.addr, "addr", "http://127.0.0.1:7070", "URL of the node's HTTP API")
	fs.StringVar(&c.token, "token", "", "bearer token, if the node requires one")
	fs.StringVar(&c.Output, "output", "human", "output format: human or json")
	fs.StringVar(&c.Output, "o", "human", "shorthand for --output")
	fs.DurationVar(&c.Timeout, "timeout", 0, "give up on the request after this long (0 = none)")
	fs.StringVar(&c.caFile, "cacert", "", "PEM file of the CA that signed the node's TLS certificate")
	fs.BoolVar(&c.insecure, "insecure", false, "skip TLS certificate verification")
	if cc.flags != nil {
		cc.flags(fs, c)
	}
	args, err := parseArgs(fs, args, m.Getenv)
	if err != nil {
		return err
	}
	if len(args) < cc.minArgs || (cc.maxArgs >= 0 && len(args) > cc.maxArgs) {
		return usageError("%s: wrong number of arguments (usage: %s)", cc.name, synopsis)
	}
	if c.Output != "human" && c.Output != "json" {
		return usageError("-o: want human or json, got %q", c.Output)
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	if strings.TrimRight(c.addr, "/") != "" {
		// The CLI's watch ends when its stream does (a script restarts it
		// with --after), so subscriptions do not reconnect.
		api, err := client.New(c.addr, &client.Options{Token: c.token, CAFile: c.caFile,
			InsecureSkipVerify: c.insecure, MaxReconnects: -1})
		if err != nil {
			return err
		}
		defer api.Close()
		c.api = api.WithContext(ctx)
	}
	return cc.run(ctx, c, args)
}

// client returns the client of the node's HTTP API. Without an address the
// error comes when the command first needs the node, after its own
// argument checks.
func (c *clientCmd) client() (*client.Client, error) {
	if c.api == nil {
		return nil, errors.New("no server address (--addr or SHOAL_ADDR)")
	}
	return c.api, nil
}

// valueJSON is what -o json prints for a key: the API's answer to the key
// endpoints ({"key","type","value"}, with the siblings when asked).
type valueJSON struct {
	Key      string          `json:"key"`
	Type     string          `json:"type"`
	Value    json.RawMessage `json:"value,omitempty"`
	Expires  string          `json:"expires,omitempty"` // RFC 3339, UTC
	Siblings []siblingJSON   `json:"siblings,omitempty"`
}

// expiresText formats Value.Expires as the API does ("" for none).
func expiresText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

type siblingJSON struct {
	Value  json.RawMessage `json:"value"`
	Origin string          `json:"origin"`
	Time   string          `json:"time"`
}

// dataJSON is the JSON of a value read through the client, encoded as the
// node stores it (what the API sent: no HTML escaping, no number rounded).
func dataJSON(data any) json.RawMessage {
	b, err := node.EncodeValue(data)
	if err != nil {
		return nil
	}
	return b
}

// kvPath is the API path of a key and an action; the key travels escaped
// as one path segment.
func kvPath(key string, action ...string) string {
	p := "/v1/kv/" + url.PathEscape(key)
	for _, a := range action {
		p += "/" + a
	}
	return p
}

// printJSON writes v (or raw JSON bytes) compactly on one line.
func (c *clientCmd) printJSON(v any) error {
	var b []byte
	switch t := v.(type) {
	case json.RawMessage:
		var buf bytes.Buffer
		if err := json.Compact(&buf, t); err != nil {
			b = t
		} else {
			b = buf.Bytes()
		}
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // as the API answers
		if err := enc.Encode(v); err != nil {
			return err
		}
		b = bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
	}
	_, err := fmt.Fprintf(c.Stdout, "%s\n", b)
	return err
}

// humanValue renders a value for people: a JSON string as its text, a set
// as one member per line, a document indented, anything else as JSON.
func humanValue(typ string, v json.RawMessage) string {
	if len(v) == 0 {
		return ""
	}
	switch typ {
	case "set":
		var members []string
		if json.Unmarshal(v, &members) == nil {
			return strings.Join(members, "\n")
		}
	case "map":
		var buf bytes.Buffer
		if json.Indent(&buf, v, "", "  ") == nil {
			return buf.String()
		}
	default:
		var s string
		if v[0] == '"' && json.Unmarshal(v, &s) == nil {
			return s
		}
	}
	var buf bytes.Buffer
	if json.Compact(&buf, v) == nil {
		return buf.String()
	}
	return string(v)
}

func (c *clientCmd) printValue(a *valueJSON) error {
	if c.Output == "json" {
		return c.printJSON(a)
	}
	s := humanValue(a.Type, a.Value)
	if s != "" {
		if _, err := fmt.Fprintln(c.Stdout, s); err != nil {
			return err
		}
	}
	if a.Expires != "" {
		// After the value: a script reading a value that does not
		// expire sees no change.
		_, err := fmt.Fprintf(c.Stdout, "(expires %s)\n", a.Expires)
		return err
	}
	return nil
}

func (c *clientCmd) printOK(a *valueJSON) error {
	if c.Output == "json" {
		return c.printJSON(a)
	}
	_, err := fmt.Fprintln(c.Stdout, "OK")
	return err
}

func runGet(ctx context.Context, c *clientCmd, args []string) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	if !c.siblings {
		v, err := api.Get(args[0])
		if err != nil {
			return err
		}
		return c.printValue(&valueJSON{Key: v.Key, Type: string(v.Type), Value: dataJSON(v.Data), Expires: expiresText(v.Expires)})
	}
	sibs, err := api.Siblings(args[0])
	if err != nil {
		return err
	}
	a := &valueJSON{Key: args[0], Type: string(node.TypeRegister)}
	for i, s := range sibs {
		if i == 0 {
			a.Value = dataJSON(s.Data) // the winner: what a plain read returns
		}
		a.Siblings = append(a.Siblings, siblingJSON{Value: dataJSON(s.Data), Origin: s.Origin,
			Time: s.Time.UTC().Format(time.RFC3339Nano)})
	}
	if c.Output == "json" {
		return c.printValue(a)
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VALUE\tORIGIN\tTIME")
	for _, s := range a.Siblings {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", humanValue("register", s.Value), s.Origin, s.Time)
	}
	if len(a.Siblings) == 0 {
		fmt.Fprintf(tw, "%s\t\t\n", humanValue(a.Type, a.Value))
	}
	return tw.Flush()
}

// parseValue reads a command-line value as JSON, or as a string when it is
// not JSON (or when asString is set).
func parseValue(s string, asString bool) json.RawMessage {
	if !asString && json.Valid([]byte(s)) {
		return json.RawMessage(strings.TrimSpace(s))
	}
	b, _ := json.Marshal(s)
	return b
}

func runPut(ctx context.Context, c *clientCmd, args []string) error {
	var text string
	if len(args) == 1 || args[1] == "-" {
		b, err := io.ReadAll(c.Stdin)
		if err != nil {
			return fmt.Errorf("reading the value from standard input: %w", err)
		}
		text = strings.TrimRight(string(b), "\r\n")
	} else {
		text = args[1]
	}
	opts, err := c.writeOptions()
	if err != nil {
		return err
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	value := parseValue(text, c.asString)
	if err := api.PutWith(args[0], value, opts); err != nil {
		return err
	}
	// The value as stored (canonical), as the API answers a PUT.
	stored, err := node.EncodeValue(value)
	if err != nil {
		return err
	}
	return c.printOK(&valueJSON{Key: args[0], Type: string(node.TypeRegister), Value: stored})
}

func runDel(ctx context.Context, c *clientCmd, args []string) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	if err := api.Delete(args[0]); err != nil {
		return err
	}
	if c.Output == "json" {
		return c.printJSON(map[string]any{"key": args[0], "deleted": true})
	}
	_, err = fmt.Fprintln(c.Stdout, "OK")
	return err
}

func runIncr(ctx context.Context, c *clientCmd, args []string) error {
	by := c.by
	if len(args) == 2 {
		n, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return usageError("incr: BY must be an integer, got %q", args[1])
		}
		by = n
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	n, err := api.Incr(args[0], by)
	if err != nil {
		return err
	}
	return c.printValue(&valueJSON{Key: args[0], Type: string(node.TypeCounter), Value: dataJSON(n)})
}

// runSetOp and runPatch print the API's answer (the key's value after the
// write), which the client's methods, like the node's, do not return: they
// send their requests with Do.
func runSetOp(op string) func(context.Context, *clientCmd, []string) error {
	return func(ctx context.Context, c *clientCmd, args []string) error {
		api, err := c.client()
		if err != nil {
			return err
		}
		var a valueJSON
		if err := api.Do(http.MethodPost, kvPath(args[0], op), nil, map[string][]string{"members": args[1:]}, &a); err != nil {
			return err
		}
		return c.printOK(&a)
	}
}

// buildPatch turns the patch flags into the JSON body of PATCH /v1/kv/{key}.
func (c *clientCmd) buildPatch() (json.RawMessage, error) {
	p := map[string]any{}
	if len(c.patchSet) > 0 {
		set := map[string]json.RawMessage{}
		for _, kv := range c.patchSet {
			f, v, ok := strings.Cut(kv, "=")
			if !ok || f == "" {
				return nil, usageError("--set: want field=JSON, got %q", kv)
			}
			set[f] = parseValue(v, false)
		}
		p["set"] = set
	}
	if len(c.patchDel) > 0 {
		p["delete"] = []string(c.patchDel)
	}
	if len(c.patchIncr) > 0 {
		incr := map[string]int64{}
		for _, kv := range c.patchIncr {
			f, v, ok := strings.Cut(kv, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			if !ok || f == "" || err != nil {
				return nil, usageError("--incr: want field=INTEGER, got %q", kv)
			}
			incr[f] += n
		}
		p["incr"] = incr
	}
	for name, list := range map[string]listFlag{"add": c.patchAdd, "remove": c.patchRem} {
		if len(list) == 0 {
			continue
		}
		m := map[string][]string{}
		for _, kv := range list {
			f, v, ok := strings.Cut(kv, "=")
			if !ok || f == "" {
				return nil, usageError("--%s: want field=MEMBER, got %q", name, kv)
			}
			m[f] = append(m[f], v)
		}
		p[name] = m
	}
	if len(c.patchOn) > 0 {
		p["enable"] = []string(c.patchOn)
	}
	if len(c.patchOff) > 0 {
		p["disable"] = []string(c.patchOff)
	}
	if len(p) == 0 {
		return nil, usageError("patch: give the patch as JSON or with --set/--delete/--incr/--add/--remove/--enable/--disable")
	}
	return json.Marshal(p)
}

func runPatch(ctx context.Context, c *clientCmd, args []string) error {
	var body json.RawMessage
	if len(args) == 2 {
		if !json.Valid([]byte(args[1])) {
			return usageError("patch: the patch is not valid JSON")
		}
		body = json.RawMessage(args[1])
	} else {
		var err error
		if body, err = c.buildPatch(); err != nil {
			return err
		}
	}
	opts, err := c.writeOptions()
	if err != nil {
		return err
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	var q url.Values
	if opts.TTL > 0 {
		q = url.Values{"ttl": {opts.TTL.String()}}
	}
	var a valueJSON
	if err := api.Do(http.MethodPatch, kvPath(args[0]), q, body, &a); err != nil {
		return err
	}
	return c.printOK(&a)
}

// runExpire runs expire KEY TTL and persist KEY.
func runExpire(ctx context.Context, c *clientCmd, args []string) error {
	body := map[string]any{"persist": true}
	if len(args) == 2 {
		ttl, err := parseTTL(args[1])
		if err != nil {
			return err
		}
		body = map[string]any{"ttl": ttl.String()}
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	var a valueJSON
	if err := api.Do(http.MethodPost, kvPath(args[0], "expire"), nil, body, &a); err != nil {
		return err
	}
	return c.printOK(&a)
}

func runKeys(ctx context.Context, c *clientCmd, args []string) error {
	prefix := ""
	if len(args) == 1 {
		prefix = args[0]
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	keys, err := api.Keys(prefix, c.limit)
	if err != nil {
		return err
	}
	if c.Output == "json" {
		type keyJSON struct {
			Key  string `json:"key"`
			Type string `json:"type"`
		}
		out := make([]keyJSON, len(keys))
		for i, k := range keys {
			out[i] = keyJSON{k.Key, string(k.Type)}
		}
		return c.printJSON(map[string]any{"keys": out})
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\n", printable(k.Key), k.Type)
	}
	return tw.Flush()
}

// eventJSON is what watch -o json prints for an event: the data of the
// API's change event.
type eventJSON struct {
	Kind    string          `json:"kind,omitempty"`
	Key     string          `json:"key"`
	Type    string          `json:"type,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
	Deleted bool            `json:"deleted,omitempty"`
	Origin  string          `json:"origin"`
	Offset  uint64          `json:"offset"`
}

func runWatch(ctx context.Context, c *clientCmd, args []string) error {
	prefix := ""
	if len(args) == 1 {
		prefix = args[0]
	}
	// Interrupted (not timed out): the watch just stops.
	stopped := func(err error) error {
		if ctx.Err() != nil && c.Timeout == 0 {
			return nil
		}
		return err
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	var sub *client.Subscription
	switch {
	case c.watchAfter != "":
		// The event id is the WAL offset of the record it ends.
		id := strings.TrimSpace(c.watchAfter)
		after, perr := strconv.ParseUint(id, 10, 64)
		if perr != nil {
			return fmt.Errorf("bad request: Last-Event-ID %q is not a WAL offset", id)
		}
		sub, err = api.SubscribeFrom(ctx, prefix, after+1)
	case c.from >= 0:
		sub, err = api.SubscribeFrom(ctx, prefix, uint64(c.from))
	default:
		sub, err = api.Subscribe(ctx, prefix)
	}
	if err != nil {
		return stopped(err)
	}
	defer sub.Close()
	for n := 0; c.count <= 0 || n < c.count; n++ {
		ev, err := sub.Next(ctx)
		if err != nil {
			return stopped(err)
		}
		if err := c.printEvent(ev); err != nil {
			return stopped(err)
		}
	}
	return nil
}

// printable is key as it is when every character of it prints, else
// quoted (Go syntax): a key holding ESC, CR or LF must not drive the
// terminal or forge output lines.
func printable(key string) string {
	for _, r := range key {
		if !unicode.IsPrint(r) || r == '\t' {
			return strconv.Quote(key)
		}
	}
	if strings.HasPrefix(key, `"`) {
		return strconv.Quote(key) // so that a quoted key is never ambiguous
	}
	return key
}

// printEvent prints a change: as the API's JSON, or as one line for
// people (offset, type or del, key, value).
func (c *clientCmd) printEvent(ev node.Event) error {
	var value json.RawMessage
	if ev.Data != nil {
		value = dataJSON(ev.Data)
	}
	if c.Output == "json" {
		return c.printJSON(eventJSON{Kind: string(ev.Kind), Key: ev.Key, Type: string(ev.Type), Value: value, Deleted: ev.Deleted,
			Origin: ev.Origin, Offset: ev.Offset})
	}
	var line string
	switch {
	case ev.Kind == node.EventReset:
		line = fmt.Sprintf("-\treset\t%s", printable(ev.Key))
	case ev.Kind == node.EventSynced:
		line = fmt.Sprintf("%d\tsynced", ev.Offset)
	case ev.Kind == node.EventExpired:
		line = fmt.Sprintf("-\texpired\t%s", printable(ev.Key)) // no record of its own
	case ev.Deleted:
		line = fmt.Sprintf("%d\tdel\t%s", ev.Offset, printable(ev.Key))
	default:
		v := strings.ReplaceAll(humanValue(string(ev.Type), value), "\n", " ")
		if ev.Type == node.TypeMap {
			var buf bytes.Buffer
			if json.Compact(&buf, value) == nil {
				v = buf.String()
			}
		}
		off := strconv.FormatUint(ev.Offset, 10)
		if ev.Kind == node.EventState {
			off = "-" // part of a full resend: no record of its own
		}
		line = fmt.Sprintf("%s\t%s\t%s\t%s", off, ev.Type, printable(ev.Key), v)
	}
	_, err := fmt.Fprintln(c.Stdout, line)
	return err
}

// printFields prints a JSON object as sorted "name: value" lines.
func (c *clientCmd) printFields(m map[string]any) error {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 1, ' ', 0)
	for _, k := range names {
		v := m[k]
		var s string
		switch t := v.(type) {
		case string:
			s = t
		default:
			b, _ := json.Marshal(t)
			s = string(b)
		}
		fmt.Fprintf(tw, "%s:\t%s\n", k, s)
	}
	return tw.Flush()
}

func runStatus(ctx context.Context, c *clientCmd, _ []string) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := api.Do(http.MethodGet, "/v1/status", nil, nil, &raw); err != nil {
		return err
	}
	if c.Output == "json" {
		return c.printJSON(raw)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	return c.printFields(m)
}

// printTable prints a list of JSON objects as a table with the given
// columns first and any other fields after them.
func (c *clientCmd) printTable(rows []map[string]any, first ...string) error {
	cols := append([]string(nil), first...)
	seen := map[string]bool{}
	for _, f := range first {
		seen[f] = true
	}
	var extra []string
	for _, r := range rows {
		for k := range r {
			if !seen[k] {
				seen[k] = true
				extra = append(extra, k)
			}
		}
	}
	sort.Strings(extra)
	cols = append(cols, extra...)
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	for i, col := range cols {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, strings.ToUpper(col))
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		for i, col := range cols {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			switch v := r[col].(type) {
			case nil:
			case string:
				fmt.Fprint(tw, v)
			default:
				b, _ := json.Marshal(v)
				fmt.Fprint(tw, string(b))
			}
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func runMembers(ctx context.Context, c *clientCmd, _ []string) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := api.Do(http.MethodGet, "/v1/members", nil, nil, &raw); err != nil {
		return err
	}
	if c.Output == "json" {
		return c.printJSON(raw)
	}
	var a struct {
		Members []map[string]any `json:"members"`
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	return c.printTable(a.Members, "name", "addr", "state")
}

func runSync(ctx context.Context, c *clientCmd, _ []string) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := api.Do(http.MethodGet, "/v1/sync", nil, nil, &raw); err != nil {
		return err
	}
	if c.Output == "json" {
		return c.printJSON(raw)
	}
	var a struct {
		Peers []map[string]any `json:"peers"`
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	return c.printTable(a.Peers, "name", "synced")
}

func runWaitSynced(ctx context.Context, c *clientCmd, args []string) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	wait := c.waitUntil
	if wait <= 0 {
		wait = httpapi.DefaultWaitSyncedTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := api.WaitSynced(wctx, args...); err != nil {
		return err
	}
	if c.Output == "json" {
		return c.printJSON(map[string]any{"synced": true})
	}
	_, err = fmt.Fprintln(c.Stdout, "synced")
	return err
}
