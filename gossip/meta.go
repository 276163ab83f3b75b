package gossip

import (
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
)

// Node metadata, advertised through memberlist (at most memberlist's 512
// bytes). Layout, version 1:
//
//	byte 0      meta format version (1)
//	byte 1      data stream protocol version
//	byte 2      flags (bit 0: data streams require a key)
//	bytes 3-4   data port, big endian
//	byte 5      length n of the data host (0: use the memberlist address)
//	bytes 6..   data host (n bytes)
const (
	metaVersion  = 1
	metaFlagKeyd = 1 << 0
	metaFixedLen = 6
)

type nodeMeta struct {
	proto    uint8
	keyed    bool
	dataPort uint16
	dataHost string
}

func (m nodeMeta) encode() []byte {
	b := make([]byte, metaFixedLen, metaFixedLen+len(m.dataHost))
	b[0] = metaVersion
	b[1] = m.proto
	if m.keyed {
		b[2] |= metaFlagKeyd
	}
	binary.BigEndian.PutUint16(b[3:5], m.dataPort)
	b[5] = byte(len(m.dataHost))
	return append(b, m.dataHost...)
}

// decodeMeta parses node metadata from the network. It never panics.
func decodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if len(b) < metaFixedLen {
		return m, fmt.Errorf("%w: node meta of %d bytes", ErrBadFrame, len(b))
	}
	if b[0] != metaVersion {
		return m, fmt.Errorf("%w: node meta version %d", ErrBadFrame, b[0])
	}
	m.proto = b[1]
	m.keyed = b[2]&metaFlagKeyd != 0
	m.dataPort = binary.BigEndian.Uint16(b[3:5])
	n := int(b[5])
	if len(b) != metaFixedLen+n {
		return m, fmt.Errorf("%w: node meta length %d, host length %d", ErrBadFrame, len(b), n)
	}
	m.dataHost = string(b[metaFixedLen:])
	if m.dataPort == 0 {
		return m, fmt.Errorf("%w: node meta without data port", ErrBadFrame)
	}
	if m.dataHost != "" && net.ParseIP(m.dataHost) == nil {
		return m, fmt.Errorf("%w: node meta data host %q is not an IP", ErrBadFrame, m.dataHost)
	}
	return m, nil
}

// dataAddr is where the member's data listener is, given its memberlist IP.
func (m nodeMeta) dataAddr(gossipIP net.IP) string {
	host := m.dataHost
	if host == "" {
		host = gossipIP.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(int(m.dataPort)))
}
