package gossip

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
)

// memberlistLog receives memberlist's log lines ("[LEVEL] memberlist: ...")
// and passes them to our slog.Logger at the matching level. memberlist has
// no other hook for what it refuses, so the lines that report a refused
// packet or stream are also counted as rejections here.
//
// Anyone who can send a packet to the gossip port makes memberlist log a
// line, so its warnings and errors go through the same rate limit as our
// own refusals (Config.LogInterval): one line per source address and kind
// per interval, with the count of those left out. Refused traffic is
// logged as a warning: it is the sender's fault, not this node's.
type memberlistLog struct{ g *Gossip }

func (w *memberlistLog) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	level := slog.LevelInfo
	msg := line
	if strings.HasPrefix(line, "[") {
		if i := strings.IndexByte(line, ']'); i > 0 {
			switch line[1:i] {
			case "DEBUG":
				level = slog.LevelDebug
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			msg = strings.TrimSpace(line[i+1:])
		}
	}
	if level < slog.LevelWarn {
		w.g.log.Log(context.Background(), level, msg, "component", "memberlist")
		return len(p), nil
	}
	kind := memberlistKind(msg)
	if r, ok := classifyMemberlistLine(msg); ok {
		w.g.stats.reject(r)
		kind, level = rejectNames[r], slog.LevelWarn
	}
	w.g.logs.logf(level, memberlistSource(msg), kind, msg, "component", "memberlist")
	return len(p), nil
}

// memberlistSource extracts the sender's IP from a memberlist line
// ("... from=10.0.0.1:7946"); "unknown" when the line names none.
func memberlistSource(msg string) string {
	i := strings.LastIndex(msg, "from=")
	if i < 0 {
		return "unknown"
	}
	addr := msg[i+len("from="):]
	if j := strings.IndexAny(addr, " )"); j >= 0 {
		addr = addr[:j]
	}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	if ip := net.ParseIP(addr); ip != nil {
		return addrKey(ip)
	}
	return "unknown"
}

// memberlistKind names a memberlist line by its text up to the first
// colon or digit (the fixed part: "memberlist: Failed to decode ping
// request"), for the rate limit.
func memberlistKind(msg string) string {
	msg = strings.TrimPrefix(msg, "memberlist: ")
	if i := strings.IndexAny(msg, ":(0123456789'\""); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 64 {
		msg = msg[:64]
	}
	return "memberlist: " + strings.TrimSpace(msg)
}

// classifyMemberlistLine maps a memberlist warning or error about inbound
// traffic to a rejection reason.
func classifyMemberlistLine(msg string) (int, bool) {
	switch {
	case strings.Contains(msg, "ignoring alive message"):
		return 0, false // counted by our alive delegate
	case strings.Contains(msg, "label"):
		return rejectGossipLabel, true
	case strings.Contains(msg, "ecrypt"), strings.Contains(msg, "ncryption is configured"),
		strings.Contains(msg, "not encrypted"):
		return rejectGossipDecrypt, true
	case strings.Contains(msg, "not supported"), strings.Contains(msg, "invalid msgType"),
		strings.Contains(msg, "Failed to decode"), strings.Contains(msg, "missing message type"),
		strings.Contains(msg, "failed to receive"), strings.Contains(msg, "decompress"),
		strings.Contains(msg, "invalid checksum"), strings.Contains(msg, "truncated"),
		strings.Contains(msg, "packet too short"):
		return rejectGossipMalformed, true
	}
	return 0, false
}
