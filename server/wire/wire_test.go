package wire

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/message"
)

// chunkOf frames p as one HTTP/1.1 chunk.
func chunkOf(p string) string { return strconv.FormatInt(int64(len(p)), 16) + "\r\n" + p + "\r\n" }

func TestMultipartPlainPartIsASliceOfTheChunkedFrame(t *testing.T) {
	c, _ := Multipart(true)
	p, _ := Multipart(false)
	m := &message.Message{ID: message.ID{Ms: 9}, Channel: "a b/c", Type: "text/plain", Body: []byte("hi")}
	cf, pf := m.Frame(c, true), m.Frame(p, true)
	if &cf[len(cf)-3] != &pf[len(pf)-1] {
		t.Error("the HTTP/1.0 part is not a slice of the chunked frame")
	}
	if want := chunkOf(string(pf)); string(cf) != want {
		t.Errorf("chunked frame %q, want %q", cf, want)
	}
	if !bytes.Contains(pf, []byte("Content-Location: /msgbus/a%20b/c\r\n")) {
		t.Errorf("located part %q does not say where it came from", pf)
	}
}

func TestMultipartEndsCleanlyOnlyOnShutdown(t *testing.T) {
	for _, http11 := range []bool{true, false} {
		f, _ := Multipart(http11)
		if f.End(hub.ErrClosed) == nil {
			t.Errorf("HTTP/1.1 %v: no closing boundary on shutdown", http11)
		}
		if f.End(hub.ErrSlowConsumer) != nil {
			t.Errorf("HTTP/1.1 %v: a dropped stream would look cleanly ended", http11)
		}
	}
}

func TestSSEDroppedSubscriberIsCutWithoutGoodbye(t *testing.T) {
	for _, f := range []message.Format{sseChunked, ssePlain, sseEnvelopeChunked, sseEnvelopePlain} {
		if f.End(hub.ErrSlowConsumer) != nil {
			t.Errorf("%#v.End(ErrSlowConsumer) is not nil: a dropped stream would look cleanly ended", f)
		}
	}
}

func TestSSEEncodesOncePerMessage(t *testing.T) {
	for _, envelope := range []bool{false, true} {
		chunked, _ := SSE(true, envelope)
		plain, _ := SSE(false, envelope)
		m := &message.Message{ID: message.ID{Ms: 9}, Channel: "a/b", Type: "text/plain", Sender: "al\"ice", Body: []byte("x\ny\r\n\x01"),
			Time: time.Now()}
		c := m.Frame(chunked, false)
		p := m.Frame(plain, false)
		if &c[len(c)-3] != &p[len(p)-1] {
			t.Errorf("envelope %v: the HTTP/1.0 event is not a slice of the chunked frame", envelope)
		}
		if want := chunkOf(string(p)); string(c) != want {
			t.Errorf("envelope %v: chunked frame %q, want %q", envelope, c, want)
		}
		if cap(c)-len(c) > 64 {
			t.Errorf("envelope %v: frame capacity %d for length %d: the size estimate is off", envelope, cap(c), len(c))
		}
		// A parent's or the root's subscribers share the frame: nothing
		// in it depends on where it is delivered.
		if lc := m.Frame(chunked, true); &lc[0] != &c[0] {
			t.Errorf("envelope %v: a located subscriber's frame is a copy", envelope)
		}
	}
}

func TestSSEFormatByVersionAndEnvelope(t *testing.T) {
	for _, c := range []struct {
		http11, envelope bool
		format           message.Format
		head             []byte
	}{
		{true, false, sseChunked, sseChunkedHead},
		{false, false, ssePlain, ssePlainHead},
		{true, true, sseEnvelopeChunked, sseChunkedHead},
		{false, true, sseEnvelopePlain, ssePlainHead},
	} {
		f, head := SSE(c.http11, c.envelope)
		if f != c.format || !bytes.Equal(head, c.head) {
			t.Errorf("SSE(%v, %v) = %#v, %q; want %#v, %q", c.http11, c.envelope, f, head, c.format, c.head)
		}
	}
	if sseChunked == sseEnvelopeChunked || ssePlain == sseEnvelopePlain {
		t.Error("an envelope format equals a bare one: the hub would share their frames")
	}
}

// TestOnlyMessageFramesMoveToAnotherPuller: a departed puller's pings,
// pongs and close stay its own; its messages go on to the other pullers.
func TestOnlyMessageFramesMoveToAnotherPuller(t *testing.T) {
	for _, tc := range []struct {
		frame []byte
		want  bool
	}{
		{WSFrame(opText, []byte("job")), true},
		{WSFrame(opBinary, []byte{0, 1}), true},
		{WSFrame(OpPing, nil), false},
		{WSFrame(OpPong, []byte("x")), false},
		{WSClose(CloseGoingAway, "bye"), false},
		{WSFrame(OpClose, nil), false},
	} {
		if got := (wsFormat{}).Redeliverable(tc.frame); got != tc.want {
			t.Errorf("Redeliverable(% x) = %v, want %v", tc.frame[:2], got, tc.want)
		}
	}
}
