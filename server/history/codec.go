package history

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"github.com/msgbus/msgbus/server/message"
)

// formatVersion is the first byte of every encoded message and of every
// mark (see frame.go): a store written by a later format is refused, not
// misread.
const formatVersion = 1

// The encoding of a message (unchanged from the bbolt store): formatVersion,
// then channel, type, sender and idempotency key, each a uvarint length
// and its bytes, the time as a varint of Unix nanoseconds, and the body to
// the end. The id travels beside it, as a key (appendKey).

// encodedLen returns the exact length of appendRecord's encoding of m.
func encodedLen(m *message.Message) int {
	n := 1 + varintLen(m.Time.UnixNano()) + len(m.Body)
	for _, s := range [...]string{m.Channel, m.Type, m.Sender, m.Key} {
		n += uvarintLen(uint64(len(s))) + len(s)
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

func appendRecord(b []byte, m *message.Message) []byte {
	b = append(b, formatVersion)
	for _, s := range [...]string{m.Channel, m.Type, m.Sender, m.Key} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, m.Time.UnixNano())
	return append(b, m.Body...)
}

// appendKey appends id as 16 bytes big-endian (Ms, Seq): keys sort in id
// order.
func appendKey(b []byte, id message.ID) []byte {
	b = binary.BigEndian.AppendUint64(b, id.Ms)
	return binary.BigEndian.AppendUint64(b, id.Seq)
}

func decodeKey(k []byte) (message.ID, bool) {
	if len(k) != 16 {
		return message.ID{}, false
	}
	return message.ID{Ms: binary.BigEndian.Uint64(k), Seq: binary.BigEndian.Uint64(k[8:])}, true
}

var errRecord = errors.New("malformed record")

// decode returns the message of key k and record v, copied out of v.
func decode(k, v []byte) (*message.Message, error) {
	id, ok := decodeKey(k)
	if !ok || len(v) == 0 || v[0] != formatVersion {
		return nil, errRecord
	}
	v = v[1:]
	// The four strings share one allocation: a restart decodes every
	// retained message.
	var at [4][2]int
	off := 0
	for i := range at {
		n, w := binary.Uvarint(v[off:])
		if w <= 0 || n > uint64(len(v)-off-w) {
			return nil, errRecord
		}
		at[i] = [2]int{off + w, off + w + int(n)}
		off += w + int(n)
	}
	head := string(v[:off])
	var strs [4]string
	for i, a := range at {
		strs[i] = head[a[0]:a[1]]
	}
	ns, w := binary.Varint(v[off:])
	if w <= 0 {
		return nil, errRecord
	}
	body := bytes.Clone(v[off+w:])
	return &message.Message{
		ID: id, Channel: strs[0], Type: strs[1], Sender: strs[2], Key: strs[3],
		Time: time.Unix(0, ns), Body: body,
	}, nil
}
