package node

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/shoaldb/shoal/crdt"
)

// OpLine is an operation described for people and tools, one key at a
// time: one line of `shoal wal dump`, as JSON.
type OpLine struct {
	Offset uint64          `json:"offset"`
	Kind   string          `json:"kind"`
	Origin string          `json:"origin"`
	Time   string          `json:"time"` // the HLC's physical part
	HLC    uint64          `json:"hlc"`
	Key    string          `json:"key,omitempty"`
	Type   string          `json:"type,omitempty"`
	Dots   []string        `json:"dots,omitempty"`
	Range  []string        `json:"range,omitempty"` // state-range ops: [lo, hi)
	Delta  *map[string]any `json:"delta,omitempty"`
}

// DescribeOp describes the operation of WAL record off: one OpLine per key
// it touches (or one for an operation without keys), keeping the keys
// that start with prefix (none when prefix is set and no key matches).
func DescribeOp(off uint64, op *Op, prefix string) []OpLine {
	base := OpLine{
		Offset: off,
		Kind:   op.Kind.String(),
		Origin: op.Origin.String(),
		Time:   time.UnixMilli(op.Time.Physical()).UTC().Format(time.RFC3339Nano),
		HLC:    uint64(op.Time),
	}
	if op.Kind == OpStateRange {
		base.Range = []string{op.Lo, op.Hi}
	}
	var keys []string
	if op.Delta != nil {
		for k := range op.Delta.Keys {
			if strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, r := range op.Delta.Dots() {
			base.Dots = append(base.Dots, dotRangeString(r))
		}
	}
	if len(keys) == 0 {
		if prefix != "" {
			return nil
		}
		return []OpLine{base}
	}
	lines := make([]OpLine, 0, len(keys))
	for _, k := range keys {
		line := base
		w := wireEntry(op.Delta.Keys[k])
		d := renderEntry(w)
		line.Key, line.Type, line.Delta = k, entryType(w), &d
		lines = append(lines, line)
	}
	return lines
}

func dotRangeString(r crdt.DotRange) string {
	if r.First == r.Last {
		return fmt.Sprintf("%s:%d", r.Replica, r.First)
	}
	return fmt.Sprintf("%s:%d-%d", r.Replica, r.First, r.Last)
}

// The keys of a delta are rendered from their wire form (the msgpack tags
// of crdt.Entry, a persisted format) rather than from crdt's Go structs,
// which may change shape without changing the bytes.

// wireEntry returns an entry's msgpack encoding decoded generically.
func wireEntry(e *crdt.Entry) map[string]any {
	if e == nil {
		return nil
	}
	b, err := msgpack.Marshal(e)
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return map[string]any{"error": err.Error()}
	}
	return m
}

// entryType names the type(s) an entry of a delta holds; "delete" for a
// removal with no value.
func entryType(w map[string]any) string {
	var ts []string
	for _, t := range []struct{ tag, name string }{{"m", "map"}, {"s", "set"}, {"n", "counter"}, {"r", "register"}, {"f", "flag"}, {"e", "expiry"}} {
		if v, ok := w[t.tag]; ok && !isEmptyWire(v) {
			ts = append(ts, t.name)
		}
	}
	switch len(ts) {
	case 0:
		return "delete"
	case 1:
		return ts[0]
	}
	return strings.Join(ts, "+")
}

func isEmptyWire(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case []any:
		return len(t) == 0
	case map[string]any:
		return len(t) == 0
	}
	return false
}

func wireUint(v any) uint64 {
	switch t := v.(type) {
	case int8:
		return uint64(t)
	case int16:
		return uint64(t)
	case int32:
		return uint64(t)
	case int64:
		return uint64(t)
	case uint8:
		return uint64(t)
	case uint16:
		return uint64(t)
	case uint32:
		return uint64(t)
	case uint64:
		return t
	}
	return 0
}

// wireDot renders a dot {"r": replica, "s": seq} as "replica:seq".
func wireDot(v any) string {
	m, _ := v.(map[string]any)
	return crdt.Dot{Replica: crdt.ReplicaID(wireUint(m["r"])), Seq: wireUint(m["s"])}.String()
}

func wireDots(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, d := range l {
		out = append(out, wireDot(d))
	}
	return out
}

// renderEntry turns an entry's wire form into JSON-friendly values: dots
// as "replica:seq", register values as JSON.
func renderEntry(w map[string]any) map[string]any {
	out := map[string]any{}
	if a, _ := w["a"].(bool); a {
		out["removes_all_observed"] = true
	}
	if regs, _ := w["r"].([]any); len(regs) > 0 {
		var rs []map[string]any
		for _, r := range regs {
			rm, _ := r.(map[string]any)
			var v json.RawMessage
			switch b := rm["v"].(type) {
			case []byte:
				v = b
			case string:
				v = json.RawMessage(b)
			}
			if !json.Valid(v) {
				v, _ = json.Marshal(string(v))
			}
			rs = append(rs, map[string]any{"dot": wireDot(rm["d"]), "hlc": wireUint(rm["t"]), "value": v})
		}
		out["register"] = rs
	}
	if cnts, _ := w["n"].([]any); len(cnts) > 0 {
		var cs []map[string]any
		for _, c := range cnts {
			cm, _ := c.(map[string]any)
			n := int64(wireUint(cm["n"]))
			cs = append(cs, map[string]any{"dot": wireDot(cm["d"]), "n": n})
		}
		out["counter"] = cs
	}
	if set, _ := w["s"].(map[string]any); len(set) > 0 {
		members := make(map[string][]string, len(set))
		for m, ds := range set {
			members[m] = wireDots(ds)
		}
		out["set"] = members
	}
	if f, _ := w["f"].([]any); len(f) > 0 {
		out["flag"] = wireDots(f)
	}
	if exps, _ := w["e"].([]any); len(exps) > 0 {
		var xs []map[string]any
		for _, x := range exps {
			xm, _ := x.(map[string]any)
			at := wireUint(xm["t"]) // 0: a persist
			xs = append(xs, map[string]any{"dot": wireDot(xm["d"]), "expires_hlc": at, "persist": at == 0})
		}
		out["expiry"] = xs
	}
	if fields, _ := w["m"].(map[string]any); len(fields) > 0 {
		fs := make(map[string]any, len(fields))
		for name, fe := range fields {
			fm, _ := fe.(map[string]any)
			fs[name] = renderEntry(fm)
		}
		out["map"] = fs
	}
	return out
}
