package hub

import (
	"errors"
	"time"
)

// ErrBacklogFull: Push found no puller able to take the message and the
// topic's backlog at its limit. Try again later.
var ErrBacklogFull = errors.New("hub: push backlog full")

// Defaults for the zero values of PullConfig.
const (
	DefaultMaxBacklogMessages = 1000
	DefaultMaxBacklogBytes    = 16 << 20
)

// A rotation is one push/pull topic: its pullers in connect order, whose
// turn is next, and the frames waiting for a puller.
type rotation struct {
	pullers      []*Subscription
	next         int
	backlog      [][]byte
	backlogBytes int
}

// SubscribePull registers a puller on topic, after the pullers already
// there in the rotation. Each pushed message goes to exactly one puller.
// Whatever waits in the topic's backlog is queued for it at once. A puller
// whose queue is full is passed over rather than dropped. Unsubscribe it
// with UnsubscribePull.
func (h *Hub) SubscribePull(topic string, opts SubscribeOptions) (*Subscription, error) {
	s := h.newSubscription(topic, opts)
	s.puller = true
	h.closeMu.RLock()
	defer h.closeMu.RUnlock()
	if err := h.admitLocked(); err != nil {
		return nil, err
	}
	h.pullMu.Lock()
	defer h.pullMu.Unlock()
	r := h.pulls[topic]
	if r == nil {
		r = &rotation{}
		h.pulls[topic] = r
	}
	r.pullers = append(r.pullers, s)
	// The backlog goes to the first puller to arrive, limit or not: it
	// was accepted, so it must not be lost.
	for _, f := range r.backlog {
		s.queue = append(s.queue, f)
		s.queued += len(f)
	}
	clear(r.backlog)
	r.backlog, r.backlogBytes = r.backlog[:0], 0
	return s, nil
}

// Push assigns m an ID and queues its frame in format f for exactly one
// puller of m.Channel, taking turns in connect order and passing over
// pullers whose queue is full. With none able to take it, the frame waits
// in the topic's backlog, within MaxBacklogMessages and MaxBacklogBytes;
// past them Push fails with ErrBacklogFull. It returns the number of
// pullers that got it (0 or 1).
func (h *Hub) Push(m *Message, f Format) (int, error) {
	m.Time = time.Now()
	frame := m.Frame(f, false)
	h.pullMu.Lock()
	defer h.pullMu.Unlock()
	r := h.pulls[m.Channel]
	if r == nil {
		r = &rotation{}
		h.pulls[m.Channel] = r
	}
	r.drain() // older messages first
	if len(r.backlog) == 0 && r.offer(frame) {
		m.ID = h.nextID.Add(1)
		h.published.Add(1)
		h.delivered.Add(1)
		return 1, nil
	}
	if len(r.backlog)+1 > h.maxBacklogMessages() || r.backlogBytes+len(frame) > h.maxBacklogBytes() {
		if len(r.pullers) == 0 && len(r.backlog) == 0 {
			delete(h.pulls, m.Channel)
		}
		return 0, ErrBacklogFull
	}
	m.ID = h.nextID.Add(1)
	h.published.Add(1)
	r.backlog = append(r.backlog, frame)
	r.backlogBytes += len(frame)
	return 0, nil
}

// drain hands backlog frames, oldest first, to pullers with room, until
// one is refused. pullMu must be held.
func (r *rotation) drain() {
	n := 0
	for n < len(r.backlog) && r.offer(r.backlog[n]) {
		r.backlogBytes -= len(r.backlog[n])
		r.backlog[n] = nil
		n++
	}
	if n > 0 {
		r.backlog = append(r.backlog[:0], r.backlog[n:]...)
	}
}

// refill is called when puller s has emptied its queue: frames waiting in
// the backlog because every puller was full go out now, not only when the
// next puller connects. pullMu must not be held.
func (h *Hub) refill(s *Subscription) {
	h.pullMu.Lock()
	defer h.pullMu.Unlock()
	if r := h.pulls[s.channel]; r != nil && len(r.backlog) > 0 {
		r.drain()
	}
}

// offer queues frame for the next puller that takes it. pullMu must be held.
func (r *rotation) offer(frame []byte) bool {
	for range r.pullers {
		if r.next >= len(r.pullers) {
			r.next = 0
		}
		s := r.pullers[r.next]
		r.next++
		if s.enqueue(frame) {
			return true
		}
	}
	return false
}

// A Redeliverer is a Format whose frames are not all messages: a WebSocket
// ping, pong or close queued with Send or Finish belongs to its subscriber
// alone. UnsubscribePull hands a departed puller's frames to the others only
// when Redeliverable says so.
type Redeliverer interface {
	Redeliverable(frame []byte) bool
}

// UnsubscribePull removes puller s from its rotation and ends it. The
// frames still in its queue, and unsent (frames its writer had taken but
// could not write), go to the other pullers, or to the backlog, so nothing
// accepted is lost to a puller that went away; a Redeliverer format keeps
// its control frames out of that. The turn passes to the puller after s.
func (h *Hub) UnsubscribePull(s *Subscription, unsent [][]byte) {
	s.end(ErrUnsubscribed, nil)
	left := append(unsent, s.takeAll()...)
	h.pullMu.Lock()
	defer h.pullMu.Unlock()
	r := h.pulls[s.channel]
	if r == nil {
		return
	}
	i := 0
	for i < len(r.pullers) && r.pullers[i] != s {
		i++
	}
	if i == len(r.pullers) {
		return // already gone
	}
	r.pullers = append(r.pullers[:i], r.pullers[i+1:]...)
	if i < r.next {
		r.next--
	}
	h.subscribers.Add(-1)
	rd, _ := s.format.(Redeliverer)
	for _, f := range left {
		if f == nil || rd != nil && !rd.Redeliverable(f) || r.offer(f) {
			continue
		}
		r.backlog = append(r.backlog, f) // accepted once: over the limit rather than lost
		r.backlogBytes += len(f)
	}
	if len(r.pullers) == 0 && len(r.backlog) == 0 {
		delete(h.pulls, s.channel)
	}
}

// pullSubscriptions returns every puller, for Close.
func (h *Hub) pullSubscriptions() []*Subscription {
	h.pullMu.Lock()
	defer h.pullMu.Unlock()
	var subs []*Subscription
	for _, r := range h.pulls {
		subs = append(subs, r.pullers...)
	}
	return subs
}

func (h *Hub) maxBacklogMessages() int {
	if h.cfg.MaxBacklogMessages > 0 {
		return h.cfg.MaxBacklogMessages
	}
	return DefaultMaxBacklogMessages
}

func (h *Hub) maxBacklogBytes() int {
	if h.cfg.MaxBacklogBytes > 0 {
		return h.cfg.MaxBacklogBytes
	}
	return DefaultMaxBacklogBytes
}
