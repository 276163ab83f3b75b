package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/shoaldb/shoal/node"
)

// exportLine is one key of an export: the API's answer to GET /v1/kv/KEY
// ({"key","type","value"}, the set paths of a map, the expiry).
type exportLine struct {
	Key     string          `json:"key"`
	Type    string          `json:"type"`
	Value   json.RawMessage `json:"value"`
	Sets    [][]string      `json:"sets,omitempty"`
	Expires string          `json:"expires,omitempty"`
}

func init() {
	clientCommands = append(clientCommands,
		&clientCommand{
			name: "export", args: "[FILE]", summary: "write every key as JSON lines (key, type, value)",
			detail: `Writes one JSON object per key, sorted by key, to FILE (default: standard
output): {"key","type","value"} as GET /v1/kv/KEY answers, with "sets" (the
paths of a map's set fields) and "expires" when the key has them. For
moving data to other systems; a backup (shoal backup) is the way to copy a
node. Keys written during the export may or may not be in it.`,
			minArgs: 0, maxArgs: 1,
			flags: func(fs *flag.FlagSet, c *clientCmd) {
				fs.StringVar(&c.prefix, "prefix", "", "only keys starting with this")
			},
			run: runExport,
		},
		&clientCommand{
			name: "import", args: "[FILE]", summary: "write the keys of JSON lines (as export writes them)",
			detail: `Reads JSON lines as "shoal export" writes them from FILE (default: standard
input) and writes each key, in atomic batches of --batch keys: a register
is put, a counter incremented by its value (an absent counter ends with
it), a set's members added, a map's fields patched (set fields from
"sets", nested maps, every other field as a register: a map's counter or
flag fields arrive as registers holding their value). A key with
"expires" gets the time left as a TTL; one already expired is skipped.
A malformed line stops the import, naming its line number, after the
batches before it were written.`,
			minArgs: 0, maxArgs: 1,
			flags: func(fs *flag.FlagSet, c *clientCmd) {
				fs.IntVar(&c.batchSize, "batch", 500, "keys per atomic batch")
			},
			run: runImport,
		},
	)
}

func runExport(ctx context.Context, c *clientCmd, args []string) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	out := c.Stdout
	var f *os.File
	if len(args) == 1 {
		if f, err = os.Create(args[0]); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer f.Close()
		out = f
	}
	keys, err := api.Keys(c.prefix, 0)
	if err != nil {
		return fmt.Errorf("export: list keys: %w", err)
	}
	bw := bufio.NewWriter(out)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	n := 0
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		var line exportLine
		if err := api.Do(http.MethodGet, kvPath(k.Key), nil, nil, &line); err != nil {
			if errors.Is(err, node.ErrNotFound) {
				continue // deleted or expired since the listing
			}
			return fmt.Errorf("export: %s: %w", k.Key, err)
		}
		line.Key = k.Key
		if err := enc.Encode(&line); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		n++
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		fmt.Fprintf(c.Stdout, "exported %d keys to %s\n", n, args[0])
	}
	return nil
}

func runImport(ctx context.Context, c *clientCmd, args []string) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	if c.batchSize <= 0 {
		return usageError("import: --batch must be positive")
	}
	in := c.Stdin
	if len(args) == 1 {
		f, err := os.Open(args[0])
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		in = f
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var b node.Batch
	written, skipped, lineNo := 0, 0, 0
	flush := func() error {
		if b.Len() == 0 {
			return nil
		}
		if err := api.Commit(&b); err != nil {
			return fmt.Errorf("import: batch ending at line %d: %w", lineNo, err)
		}
		b.Reset()
		return nil
	}
	for sc.Scan() {
		lineNo++
		if err := ctx.Err(); err != nil {
			return err
		}
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var l exportLine
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&l); err != nil {
			return fmt.Errorf("import: line %d: %w (%d keys written before it)", lineNo, err, written)
		}
		ok, err := addImport(&b, &l)
		if err != nil {
			return fmt.Errorf("import: line %d: key %q: %w (%d keys written before it)", lineNo, l.Key, err, written)
		}
		if !ok {
			skipped++
			continue
		}
		if err := b.Err(); err != nil {
			return fmt.Errorf("import: line %d: key %q: %w (%d keys written before it)", lineNo, l.Key, err, written)
		}
		if b.Len() >= c.batchSize {
			if err := flush(); err != nil {
				return err
			}
		}
		written++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("import: after line %d: %w", lineNo, err)
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "imported %d keys", written)
	if skipped > 0 {
		fmt.Fprintf(c.Stdout, " (%d already expired, skipped)", skipped)
	}
	fmt.Fprintln(c.Stdout)
	return nil
}

// addImport adds the writes of one exported key to b; false when the key
// had expired.
func addImport(b *node.Batch, l *exportLine) (bool, error) {
	if l.Key == "" {
		return false, errors.New(`no "key"`)
	}
	if len(l.Value) == 0 {
		return false, errors.New(`no "value"`)
	}
	var ttl time.Duration
	if l.Expires != "" {
		t, err := time.Parse(time.RFC3339Nano, l.Expires)
		if err != nil {
			return false, fmt.Errorf("expires %q is not an RFC 3339 time", l.Expires)
		}
		if ttl = time.Until(t); ttl <= 0 {
			return false, nil
		}
	}
	switch node.Type(l.Type) {
	case node.TypeRegister:
		b.PutWith(l.Key, l.Value, node.WriteOptions{TTL: ttl})
		return true, nil
	case node.TypeCounter:
		var v int64
		if err := json.Unmarshal(l.Value, &v); err != nil {
			return false, fmt.Errorf("a counter's value must be an integer: %w", err)
		}
		b.Incr(l.Key, v)
	case node.TypeSet:
		var members []string
		if err := json.Unmarshal(l.Value, &members); err != nil {
			return false, fmt.Errorf("a set's value must be an array of strings: %w", err)
		}
		b.SetAdd(l.Key, members...)
	case node.TypeMap:
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(l.Value, &fields); err != nil {
			return false, fmt.Errorf("a map's value must be an object: %w", err)
		}
		sets := map[string]bool{}
		for _, p := range l.Sets {
			sets[strings.Join(p, "\x00")] = true
		}
		p, err := importPatch(fields, nil, sets)
		if err != nil {
			return false, err
		}
		b.UpdateWith(l.Key, p, node.WriteOptions{TTL: ttl})
		return true, nil
	default:
		return false, fmt.Errorf("unknown type %q (want register, counter, set or map)", l.Type)
	}
	if ttl > 0 {
		b.Expire(l.Key, ttl)
	}
	return true, nil
}

// importPatch is the patch that writes an exported map's fields at path.
func importPatch(fields map[string]json.RawMessage, path []string, sets map[string]bool) (node.Patch, error) {
	var p node.Patch
	for name, raw := range fields {
		fp := append(append([]string(nil), path...), name)
		switch {
		case sets[strings.Join(fp, "\x00")]:
			var members []string
			if err := json.Unmarshal(raw, &members); err != nil {
				return p, fmt.Errorf("set field %q: %w", strings.Join(fp, "."), err)
			}
			if p.Add == nil {
				p.Add = map[string][]string{}
			}
			p.Add[name] = members
		case len(raw) > 0 && raw[0] == '{':
			var sub map[string]json.RawMessage
			if err := json.Unmarshal(raw, &sub); err != nil {
				return p, fmt.Errorf("field %q: %w", strings.Join(fp, "."), err)
			}
			np, err := importPatch(sub, fp, sets)
			if err != nil {
				return p, err
			}
			if p.Nested == nil {
				p.Nested = map[string]node.Patch{}
			}
			p.Nested[name] = np
		default:
			if p.Set == nil {
				p.Set = map[string]any{}
			}
			p.Set[name] = raw
		}
	}
	return p, nil
}
