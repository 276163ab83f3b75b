package gossip

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
)

// memberlistLog receives memberlist's log lines ("[LEVEL] memberlist: ...")
// and passes them to our slog.Logger at the matching level. memberlist has
// no other hook for what it refuses, so the lines that report a refused
// packet or stream are also counted as rejections here.
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
	if level >= slog.LevelWarn {
		if r, ok := classifyMemberlistLine(msg); ok {
			w.g.stats.reject(r)
		}
	}
	w.g.log.Log(context.Background(), level, msg, "component", "memberlist")
	return len(p), nil
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
		strings.Contains(msg, "invalid checksum"), strings.Contains(msg, "truncated"):
		return rejectGossipMalformed, true
	}
	return 0, false
}
