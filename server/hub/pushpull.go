package hub

import (
	"errors"
	"github.com/msgbus/msgbus/server/message"
	"sync/atomic"
	"time"
)

// ErrBacklogFull: Push found no puller able to take the message and the
// topic's backlog at its limit. Try again later.
var ErrBacklogFull = errors.New("hub: push backlog full")

// Defaults for the zero values of Config's backlog limits.
const (
	DefaultMaxBacklogMessages   = 1000
	DefaultMaxBacklogBytes      = 16 << 20
	DefaultMaxBacklogTotalBytes = 64 << 20
	DefaultPullerStall          = 10 * time.Second
)

// pushOverhead is what one held push costs the whole beyond its frame's
// bytes (its place in a backlog or queue, its share of a topic's
// bookkeeping), so that a million one-byte pushes to a million topics count
// against MaxBacklogTotal for what they really take, not for a megabyte. A
// topic's own limit, MaxBacklogBytes, counts frame bytes alone.
const pushOverhead = 256

// held is an amount of pushes held: their frames and frame bytes.
type held struct{ frames, bytes int64 }

func heldOf(frame []byte) held { return held{1, int64(len(frame))} }

func (a held) plus(b held) held  { return held{a.frames + b.frames, a.bytes + b.bytes} }
func (a held) minus(b held) held { return held{a.frames - b.frames, a.bytes - b.bytes} }

// cost is what a counts for against MaxBacklogTotal.
func (a held) cost() int64 { return a.bytes + a.frames*pushOverhead }

// A rotation is one push/pull topic: its pullers in connect order, whose
// turn is next, and the frames waiting for a puller.
//
// pending counts every push the topic has accepted and not yet seen
// written: the frames in its backlog, in its pullers' queues and in the
// batches their writers are writing. A departing puller's frames move to
// another puller or back to the backlog and stay counted, so the limits
// hold whatever the pullers do.
type rotation struct {
	pullers []*Subscription
	next    int
	backlog [][]byte
	pending atomic.Int64 // frame bytes of the pushes held; see above
}

// SubscribePull registers a puller on topic, after the pullers already
// there in the rotation. Each pushed message goes to exactly one puller.
// Whatever waits in the topic's backlog is queued for it at once. A puller
// whose queue is full is passed over rather than dropped. Unsubscribe it
// with UnsubscribePull.
func (h *Hub) SubscribePull(topic string, opts SubscribeOptions) (*Subscription, error) {
	s := h.newSubscription(topic, opts)
	s.pull = &pullerState{lastTake: time.Now()}
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
	s.pull.rot = r
	// The backlog goes to the first puller to arrive, queue limit or not:
	// it was accepted, so it must not be lost, and it stays counted.
	for _, f := range r.backlog {
		s.queue = append(s.queue, f)
		s.queued += len(f)
		s.pull.held = s.pull.held.plus(heldOf(f))
	}
	clear(r.backlog)
	r.backlog = r.backlog[:0]
	return s, nil
}

// Push gives m its place through order (under the hub's order lock, as
// Publish does) and queues its frame in format f for exactly one
// puller of m.Channel, taking turns in connect order and passing over
// pullers whose queue is full. With none able to take it, the frame waits
// in the topic's backlog. Push fails with ErrBacklogFull when the topic
// would hold more than MaxBacklogMessages waiting or more than
// MaxBacklogBytes not yet written, or all topics together more than
// MaxBacklogTotalBytes. It returns the number of pullers that got it (0 or
// 1).
func (h *Hub) Push(m *message.Message, f message.Format, order Order) (int, error) {
	h.pullMu.Lock()
	defer h.pullMu.Unlock()
	if order != nil {
		h.orderMu.Lock()
		err := order(m)
		h.orderMu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	frame := m.Frame(f, false) // after the id: a frame may carry it
	c := heldOf(frame)
	r := h.pulls[m.Channel]
	if r == nil {
		r = &rotation{}
		h.pulls[m.Channel] = r
	}
	r.drain() // older messages first
	full := func() bool {
		return r.pending.Load()+c.bytes > int64(h.maxBacklogBytes()) || h.pushHeld.Load()+c.cost() > h.maxBacklogTotal()
	}
	if full() {
		h.dropStalledPullers() // they hold what they do not read: let the others have it
	}
	switch {
	case full():
	case len(r.backlog) == 0 && r.offer(frame):
		h.accept(r, m, c)
		h.delivered.Add(1)
		return 1, nil
	case len(r.backlog) < h.maxBacklogMessages():
		h.accept(r, m, c)
		r.backlog = append(r.backlog, frame)
		return 0, nil
	}
	if len(r.pullers) == 0 && len(r.backlog) == 0 {
		delete(h.pulls, m.Channel)
	}
	return 0, ErrBacklogFull
}

// dropStalledPullers drops the pullers that hold pushes their clients have
// not read for PullerStall, so that what they hold goes to the pullers that
// read (once their writers give up) and stops counting against the limits
// as it is written. It runs when a push finds the limits reached, at most
// once per PullerStall/4. pullMu must be held.
func (h *Hub) dropStalledPullers() {
	now := time.Now()
	limit := h.pullerStall()
	if now.Sub(h.lastStallSweep) < limit/4 {
		return
	}
	h.lastStallSweep = now
	for _, r := range h.pulls {
		for _, s := range r.pullers {
			if s.stalledPuller(now, limit) {
				s.dropPuller()
			}
		}
	}
}

func (h *Hub) pullerStall() time.Duration {
	if h.cfg.PullerStall > 0 {
		return h.cfg.PullerStall
	}
	return DefaultPullerStall
}

// accept counts pushed m held. pullMu must be held.
func (h *Hub) accept(r *rotation, m *message.Message, c held) {
	h.published.Add(1)
	r.pending.Add(c.bytes)
	h.pushHeld.Add(c.cost())
}

// drain hands backlog frames, oldest first, to pullers with room, until
// one is refused. pullMu must be held.
func (r *rotation) drain() {
	n := 0
	for n < len(r.backlog) && r.offer(r.backlog[n]) {
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
		if s.enqueue(frame, true) {
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
	was := s.releaseHeld()
	h.pullMu.Lock()
	defer h.pullMu.Unlock()
	r := h.pulls[s.channel]
	if r == nil || r != s.pull.rot {
		h.release(s.pull.rot, was)
		return
	}
	i := 0
	for i < len(r.pullers) && r.pullers[i] != s {
		i++
	}
	if i == len(r.pullers) {
		h.release(r, was)
		return // already gone
	}
	r.pullers = append(r.pullers[:i], r.pullers[i+1:]...)
	if i < r.next {
		r.next--
	}
	h.subscribers.Add(-1)
	rd, _ := s.format.(Redeliverer)
	var moved held
	for _, f := range left {
		if f == nil || rd != nil && !rd.Redeliverable(f) {
			continue
		}
		moved = moved.plus(heldOf(f))
		if !r.offer(f) {
			r.backlog = append(r.backlog, f) // accepted once, counted still: never lost
		}
	}
	h.release(r, was.minus(moved))
	if len(r.pullers) == 0 && len(r.backlog) == 0 {
		delete(h.pulls, s.channel)
	}
}

// release uncounts pushes that have been written (or were already gone)
// from rotation r and the hub.
func (h *Hub) release(r *rotation, n held) {
	if n.frames == 0 || r == nil {
		return
	}
	r.pending.Add(-n.bytes)
	h.pushHeld.Add(-n.cost())
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

func (h *Hub) maxBacklogTotal() int64 {
	if h.cfg.MaxBacklogTotal > 0 {
		return int64(h.cfg.MaxBacklogTotal)
	}
	return DefaultMaxBacklogTotalBytes
}

// PushTopics returns how many push/pull topics have pullers or a backlog,
// and what all of them hold as counted against MaxBacklogTotal.
func (h *Hub) PushTopics() (topics int, held int64) {
	h.pullMu.Lock()
	defer h.pullMu.Unlock()
	return len(h.pulls), h.pushHeld.Load()
}

func (h *Hub) maxBacklogBytes() int {
	if h.cfg.MaxBacklogBytes > 0 {
		return h.cfg.MaxBacklogBytes
	}
	return DefaultMaxBacklogBytes
}
