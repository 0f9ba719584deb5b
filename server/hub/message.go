package hub

import "time"

// A Message is one publish: its body and metadata, and the wire frames built
// from it. The hub never changes a message after Publish returns, so every
// subscriber shares the same frame bytes.
type Message struct {
	ID      uint64    // assigned by Publish, increasing from 1
	Channel string    // where it was published, a valid channel name
	Type    string    // the media type, as given by the publisher
	Sender  string    // the authenticated publisher, "" when anonymous
	Body    []byte    // owned by the message once published; never modified
	Time    time.Time // when it was accepted; set by Publish, PublishExact and Push

	frames    []frame // built lazily during Publish, one per (format, located)
	typeFold  string  // Type in lower case, for type filters; set on first use
	typeFolds bool    // typeFold is set
}

// foldedType returns Type lowercased (ASCII), computing it once per message
// rather than once per filtered subscriber. Like Frame, it is for the
// publishing goroutine.
func (m *Message) foldedType() string {
	if !m.typeFolds {
		m.typeFold, m.typeFolds = lowerASCII(m.Type), true
	}
	return m.typeFold
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
