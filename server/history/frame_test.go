package history

import (
	"bytes"
	"testing"
	"time"

	"github.com/msgbus/msgbus/server/message"
)

// FuzzScanFrames feeds the segment reader any bytes: it never panics,
// never reads past its input, and what it accepts it accepts whole: the
// frames it decoded encode back to exactly the bytes before the end it
// reports.
func FuzzScanFrames(f *testing.F) {
	var seg []byte
	seg = appendMarkFrame(seg, mark{last: message.ID{Ms: 5}, lost: message.ID{Ms: 2, Seq: 1}, keep: message.ID{Ms: 3}})
	for i, m := range []*message.Message{
		{ID: message.ID{Ms: 3}, Channel: "a", Type: "text/plain", Body: []byte("one")},
		{ID: message.ID{Ms: 4, Seq: 7}, Channel: "a/b", Sender: "alice", Key: "k", Body: []byte{0, 1, 0xff}},
		{ID: message.ID{Ms: 5}, Channel: "c", Body: bytes.Repeat([]byte("x"), 300)},
	} {
		m.Time = time.Unix(1733313600, int64(i)*1e6)
		seg = appendMessageFrame(seg, m)
	}
	f.Add(seg)
	f.Add(append(bytes.Clone(seg), make([]byte, 64)...))
	f.Add(seg[:len(seg)-5])
	f.Add(append(bytes.Clone(seg[:40]), 0xff, 0xff))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0})
	f.Add(bytes.Repeat([]byte{0xff}, 32))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, strict := range []bool{false, true} {
			var again []byte
			end, err := scanFrames(data, strict,
				func(m *message.Message) { again = appendMessageFrame(again, m) },
				func(k mark) { again = appendMarkFrame(again, k) })
			if end < 0 || end > int64(len(data)) {
				t.Fatalf("end %d outside 0..%d", end, len(data))
			}
			if !bytes.Equal(again, data[:end]) {
				t.Fatalf("frames up to %d do not encode back to the same bytes (err %v)", end, err)
			}
			if err == nil && strict {
				for _, c := range data[end:] {
					if c != 0 {
						t.Fatalf("strict scan accepted non-zero bytes after the end %d", end)
					}
				}
			}
		}
	})
}

// FuzzDecodeFrame feeds the payload decoder any bytes, past the CRC that
// keeps FuzzScanFrames' mutations out: it never panics, and what it
// decodes encodes to a payload that decodes the same.
func FuzzDecodeFrame(f *testing.F) {
	m := &message.Message{ID: message.ID{Ms: 4, Seq: 7}, Channel: "a/b", Type: "text/plain", Sender: "alice",
		Key: "k", Time: time.Unix(1733313600, 5), Body: []byte("body")}
	f.Add(appendMessageFrame(nil, m)[frameHeader:])
	f.Add(appendMarkFrame(nil, mark{last: message.ID{Ms: 9}})[frameHeader:])
	f.Add([]byte{kindMessage})
	f.Add([]byte{kindMark, formatVersion})
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) == 0 {
			return // scanFrames never passes an empty payload
		}
		var got []byte
		err := decodeFrame(p,
			func(m *message.Message) { got = appendMessageFrame(nil, m)[frameHeader:] },
			func(k mark) { got = appendMarkFrame(nil, k)[frameHeader:] })
		if err != nil {
			return
		}
		var again []byte
		if err := decodeFrame(got,
			func(m *message.Message) { again = appendMessageFrame(nil, m)[frameHeader:] },
			func(k mark) { again = appendMarkFrame(nil, k)[frameHeader:] }); err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		if !bytes.Equal(got, again) {
			t.Fatalf("decode, encode, decode, encode differs")
		}
	})
}
