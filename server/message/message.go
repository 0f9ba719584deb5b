// Package message is the vocabulary every part of the bus shares: a message
// and its id, channel names and their hierarchy, the filters subscribers
// set, and the formats that encode a message once for all its readers. It
// depends on nothing else in msgbus.
package message

import (
	"sync"
	"sync/atomic"
	"time"
)

// A Message is one publish: its body and metadata, and the wire frames built
// from it. The hub never changes a message after Publish returns, so every
// subscriber shares the same frame bytes.
type Message struct {
	ID      ID        // assigned when the message is accepted; orders it
	Channel string    // where it was published, a valid channel name
	Type    string    // the media type, as given by the publisher
	Sender  string    // the authenticated publisher, "" when anonymous
	Body    []byte    // owned by the message once published; never modified
	Time    time.Time // when it was accepted, set with ID
	// Key is the publisher's Idempotency-Key, "" for none: a retry with the
	// same key on the same channel is answered with this message's ID.
	Key string

	frames []frame // built lazily during Publish, one per (format, located)

	viewMu   sync.Mutex // serializes the first filterView
	viewDone atomic.Bool
	view     filterView // set on first use by a filter
}

// A filterView is what every filter reads of a message, computed once per
// message rather than once per filtered subscriber.
type filterView struct {
	key        uint64 // unique in the process, never 0: keys the filters' memos
	typ        string // Type lowercased (ASCII)
	media, end int    // typ[media:end] is the media type: parameters dropped, spaces trimmed
}

// filterKeys numbers messages for the filters' memos. Message.ID is not
// enough: it is unique only within one Hub, and filters are shared by all.
var filterKeys atomic.Uint64

// filterView returns m's filterView, computing it on first use. Unlike
// Frame, it may be called from any goroutine (a history replay, say), and
// it allocates only when Type has an upper-case letter. Type must not
// change after the first call.
func (m *Message) filterView() *filterView {
	if !m.viewDone.Load() {
		m.viewMu.Lock()
		if !m.viewDone.Load() {
			typ := lowerASCII(m.Type)
			start, end := mediaSpan(typ)
			m.view = filterView{key: filterKeys.Add(1), typ: typ, media: start, end: end}
			m.viewDone.Store(true)
		}
		m.viewMu.Unlock()
	}
	return &m.view
}

type frame struct {
	format  Format
	located bool
	bytes   []byte
}

// A Format turns a message into the bytes one kind of subscriber writes: a
// chunked multipart part, a close-delimited one, later a WebSocket frame or a
// Server-Sent Event. Formats are compared as interface values, so use one
// value per kind (a pointer or a comparable struct).
type Format interface {
	// Encode returns m's frame. located reports that the subscriber's
	// channel is not m.Channel (a parent or the root), so the frame must
	// say where the message came from. Encode is called at most once per
	// message and (format, located), on the publishing goroutine, and the
	// result is shared by every such subscriber: it must not be changed.
	Encode(m *Message, located bool) []byte
	// End returns the bytes that end a stream for reason err: ErrClosed
	// on shutdown (a closing boundary, a WebSocket close frame),
	// ErrSlowConsumer when the hub drops a subscriber. Nil just cuts it.
	End(err error) []byte
}

// Detached returns a copy of m's content and id without its frames: a
// history replay encodes it afresh on the replaying goroutine, while the
// publisher may still be building m's own frames. The body is shared; no
// one changes it.
func (m *Message) Detached() *Message {
	return &Message{ID: m.ID, Channel: m.Channel, Type: m.Type, Sender: m.Sender, Body: m.Body, Time: m.Time, Key: m.Key}
}

// Size is what m costs a history store: its body, its strings and a
// fixed overhead for the rest.
func (m *Message) Size() int {
	return len(m.Body) + len(m.Channel) + len(m.Type) + len(m.Sender) + len(m.Key) + 160
}

// DropFrames forgets m's frames once its fan-out is done, so that a message
// kept in history holds its body alone. Only the publishing goroutine may
// call it, after its last Frame.
func (m *Message) DropFrames() { m.frames = nil }

// Frame returns m's frame in format f, encoding it on first use. A Format may
// call it to build on another format's frame (a close-delimited part is a
// slice of the chunked one). It must only be called during Publish, from the
// Format's Encode, or by the publishing goroutine.
func (m *Message) Frame(f Format, located bool) []byte {
	for i := range m.frames {
		if fr := &m.frames[i]; fr.format == f && fr.located == located {
			return fr.bytes
		}
	}
	b := f.Encode(m, located)
	m.frames = append(m.frames, frame{f, located, b})
	return b
}
