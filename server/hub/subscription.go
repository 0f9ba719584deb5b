package hub

import (
	"errors"
	"github.com/msgbus/msgbus/server/message"
	"sync"
	"sync/atomic"
	"time"
)

// Reasons a subscription ends, returned by Take and Err.
var (
	// ErrSlowConsumer: the subscriber's queue passed its byte limit, so it
	// was dropped rather than make the publisher wait or lose messages for
	// everyone else. The stream is cut without a closing boundary.
	ErrSlowConsumer = errors.New("hub: subscriber too slow: queue limit exceeded")
	// ErrClosed: the hub shut down. Take hands out the format's End bytes
	// before reporting it, so the stream ends cleanly.
	ErrClosed = errors.New("hub: closed")
	// ErrUnsubscribed: Unsubscribe was called.
	ErrUnsubscribed = errors.New("hub: unsubscribed")
	// ErrTooManySubscribers: Subscribe refused, the hub is at MaxSubscribers.
	ErrTooManySubscribers = errors.New("hub: too many subscribers")
	// ErrFinished: Finish was called (the subscriber's connection is
	// ending for a reason of its own, as a WebSocket close).
	ErrFinished = errors.New("hub: finished")
)

// A Subscription is one subscriber's place in the index and its queue of
// frames waiting to be written. The hub appends to the queue; one taker at a
// time (the subscriber's writer) drains it with Take.
type Subscription struct {
	// What every delivery reads, and the rest behind a pointer, in 128
	// bytes: a size class whose objects are two whole cache lines. The
	// fan-out to 10,000 subscribers of one channel costs what their cache
	// lines cost (BenchmarkFanOut/subs=10000: 35 ns per delivery with every
	// field here, 29 ns now).
	target  *Subscription   // set for a binding's proxy (bind.go): who gets what reaches it
	filter  *message.Filter // nil passes everything
	format  message.Format  // copied here so the fan-out reads plain fields
	mu      sync.Mutex
	queued  int // bytes in queue (and early)
	max     int
	waiting bool // the taker found the queue empty and wants a wake
	held    bool // see subscriptionRest.early
	queue   [][]byte
	err     error
	after   message.ID // set by Replay: live frames up to it are the replay's

	*subscriptionRest
}

// subscriptionRest is the part of a Subscription that deliveries do not
// read. Its fields follow the Subscription's locking: those the comments
// do not say otherwise of are guarded by the Subscription's mu.
type subscriptionRest struct {
	hub     *Hub
	wake    func() // starts a taker; never called with mu held
	channel string // "" is the root
	node    *node  // set once by Subscribe; nil for a puller
	index   int    // position in node.subs, -1 once out; node.mu must be held

	binds bindings                        // the proxies of s's bound channels
	bound atomic.Pointer[[]*Subscription] // a copy of binds.proxies the fan-out reads without a lock

	head    []byte       // the response head, taken before anything else
	dropped func()       // see SubscribeOptions.Dropped
	name    string       // how logs call it: its URL path
	pull    *pullerState // nil but for a puller (push/pull)

	// A held subscription (SubscribeOptions.Held) gives its taker nothing
	// until Start; meanwhile its engine may Replay history into it. While
	// held, live frames wait in early with their ids, so that those the
	// replay also holds can be dropped: replay and live meet with no gap
	// and no duplicate.
	early  []earlyFrame
	replay replayState
}

// An earlyFrame is a live frame that arrived while its subscription was
// held.
type earlyFrame struct {
	id    message.ID
	frame []byte
}

// replayState is the history a taker gets before the live frames: messages
// encoded lazily, a batch per Take, so a long replay costs no more memory
// than a batch of frames.
type replayState struct {
	msgs []*message.Message
	next int
}

// A puller's state. A full puller's queue refuses a frame instead of
// ending, and the puller holds its share of its rotation's pending bytes
// (pushpull.go): held is the cost of the pushes in its queue, taken that
// of the batch its writer took last. The writer comes back to Take only
// once that batch is written, and Take then gives its cost back. Guarded
// by the subscription's mu, but rot, set once.
type pullerState struct {
	rot      *rotation
	held     held
	taken    held
	lastTake time.Time // the writer's last Take: its last sign of progress
}

// stalledPuller reports whether puller s holds pushes and its writer has
// not come back to Take for longer than limit: its client does not read.
func (s *Subscription) stalledPuller(now time.Time, limit time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pull
	return s.err == nil && (len(s.queue) > 0 || p.taken.frames > 0) && now.Sub(p.lastTake) > limit
}

// dropPuller ends a stalled puller with ErrSlowConsumer. Unlike a dropped
// subscriber's, its queue is kept: UnsubscribePull hands those pushes to
// the other pullers once its writer gives up.
func (s *Subscription) dropPuller() {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.dropLocked()
	s.hub.slowDisconnect(s) // rare: a stall sweep, under pullMu alone
}

// dropLocked ends s with ErrSlowConsumer and unlocks s.mu, which must be
// held; then it counts the drop, unblocks the writer (Dropped) and wakes
// it to see the end. The caller logs it (slowDisconnect) once it holds no
// node lock.
func (s *Subscription) dropLocked() {
	s.endLocked(ErrSlowConsumer, s.format.End(ErrSlowConsumer))
	s.mu.Unlock()
	s.hub.slow.Add(1)
	if s.dropped != nil {
		s.dropped()
	}
	s.callWake()
}

// Channel returns the subscribed channel, "" for the root.
func (s *Subscription) Channel() string { return s.channel }

// Name returns how logs call the subscription (SubscribeOptions.Name).
func (s *Subscription) Name() string {
	if s.name == "" {
		return "/" + s.channel
	}
	return s.name
}

// Take returns every queued frame, with the reason the subscription ended
// once it has (after its last frames). When it returns no frames and a nil
// error, the queue is empty and the hub calls the wake function given to
// Subscribe as soon as there is more; the caller should stop taking until
// then. The frames come in the queue's storage, and dst's storage becomes the
// next queue, so a writer that alternates two buffers allocates nothing.
// When there is nothing to take, dst stays the caller's.
//
// The response head comes first, alone, then the replayed history a batch
// at a time, then the live frames.
func (s *Subscription) Take(dst [][]byte) ([][]byte, error) {
	s.mu.Lock()
	if !s.held {
		if h := s.head; h != nil {
			s.head = nil
			s.mu.Unlock()
			return append(dst[:0], h), nil
		}
		if s.replay.next < len(s.replay.msgs) {
			return s.takeReplayLocked(dst)
		}
	}
	var written held
	if p := s.pull; p != nil {
		written, p.taken, p.held = p.taken, p.held, held{}
		p.lastTake = time.Now()
	}
	if len(s.queue) == 0 || s.held {
		err := s.err
		if err == nil {
			s.waiting = true
		}
		s.mu.Unlock()
		if s.pull != nil {
			s.hub.release(s.pull.rot, written)
			if err == nil {
				s.hub.refill(s) // this puller has room now
			}
		}
		return dst[:0], err
	}
	out := s.queue
	s.queue = dst[:0]
	s.queued = 0
	s.mu.Unlock()
	if s.pull != nil {
		s.hub.release(s.pull.rot, written)
	}
	return out, nil
}

// replayBatchBytes is about how many body bytes one Take encodes from a
// replay: enough for one vectored write, little enough that a replay of
// a thousand large messages is not all in memory at once.
const replayBatchBytes = 256 << 10

// takeReplayLocked encodes the next batch of the replay, unlocking s.mu
// first: encoding may take a while and must not hold up a publisher's
// fan-out, which takes s.mu.
func (s *Subscription) takeReplayLocked(dst [][]byte) ([][]byte, error) {
	r := &s.replay
	start, size := r.next, 0
	for r.next < len(r.msgs) && (r.next == start || size < replayBatchBytes) {
		size += len(r.msgs[r.next].Body)
		r.next++
	}
	batch := r.msgs[start:r.next]
	if r.next == len(r.msgs) {
		r.msgs, r.next = nil, 0
	}
	s.mu.Unlock()
	out := dst[:0]
	for _, m := range batch {
		d := m.Detached() // m's own frames belong to its publisher
		out = append(out, s.format.Encode(d, d.Channel != s.channel))
	}
	return out, nil
}

// Replay queues msgs, oldest first, before the live frames of a held
// subscription, and drops the live frames that arrived while it was held
// with an id up to after or up to the last of msgs: those the replay has,
// or the client already had. The engine calls it between Subscribe and
// Start.
func (s *Subscription) Replay(msgs []*message.Message, after message.ID) {
	if n := len(msgs); n > 0 && after.Less(msgs[n-1].ID) {
		after = msgs[n-1].ID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replay = replayState{msgs: msgs}
	s.after = after // a publish already read into msgs may still be fanning out
	kept := s.early[:0]
	for _, e := range s.early {
		if after.Less(e.id) {
			kept = append(kept, e)
		} else {
			s.queued -= len(e.frame)
		}
	}
	clear(s.early[len(kept):])
	s.early = kept
}

// Start ends a held subscription's hold: head (the response head, known
// only once the replay was read) goes out first, then the replay, then the
// live frames. It does nothing to a subscription that is not held.
func (s *Subscription) Start(head []byte) {
	s.mu.Lock()
	if !s.held {
		s.mu.Unlock()
		return
	}
	s.held = false
	s.head = head
	for _, e := range s.early {
		s.queue = append(s.queue, e.frame)
	}
	s.early = nil
	wake := s.waiting
	s.waiting = false
	s.mu.Unlock()
	if wake {
		s.wake()
	}
}

// releaseHeld returns the cost of every push the puller holds, queued or
// taken, and forgets it: UnsubscribePull moves those pushes on.
func (s *Subscription) releaseHeld() held {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pull
	n := p.held.plus(p.taken)
	p.held, p.taken = held{}, held{}
	return n
}

// Err returns why the subscription ended, or nil while it is live.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// A delivery is what became of a frame handed to a subscriber.
type delivery int

const (
	refused    delivery = iota // the subscription had ended
	queued                     // the frame is queued
	droppedNow                 // the frame overflowed the queue: the subscriber was dropped
)

// deliver queues a live message's frame for s, with its id while s is
// held, or drops s (ErrSlowConsumer) if that would pass the byte limit. The
// caller logs a drop (slowDisconnect) once it holds no node lock.
func (s *Subscription) deliver(id message.ID, b []byte) delivery {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return refused
	}
	if s.queued+len(b) > s.max && s.queued > 0 {
		s.dropLocked()
		return droppedNow
	}
	if !s.after.IsZero() && !s.after.Less(id) {
		// The replay has it. This holds after Start too: a publish the
		// replay read may have locked its nodes before the replay and
		// still be fanning out after Start.
		s.mu.Unlock()
		return queued
	}
	if s.held {
		s.queued += len(b)
		s.early = append(s.early, earlyFrame{id, b})
		s.mu.Unlock()
		return queued
	}
	s.queued += len(b)
	s.queue = append(s.queue, b)
	wake := s.waiting
	s.waiting = false
	s.mu.Unlock()
	if wake {
		s.wake()
	}
	return queued
}

// enqueue adds b to the queue, or ends the subscription with ErrSlowConsumer
// if that would pass the byte limit. It reports whether b was queued. push
// says b is a pushed message, which a puller holds (see held).
func (s *Subscription) enqueue(b []byte, push bool) bool {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return false
	}
	if s.queued+len(b) > s.max && s.queued > 0 {
		if s.pull != nil {
			s.mu.Unlock()
			return false // the rotation offers it to the next puller
		}
		s.dropLocked()
		s.hub.slowDisconnect(s)
		return false
	}
	s.queue = append(s.queue, b)
	s.queued += len(b)
	if push {
		s.pull.held = s.pull.held.plus(heldOf(b))
	}
	wake := s.waiting && !s.held
	if wake {
		s.waiting = false
	}
	s.mu.Unlock()
	if wake {
		s.wake()
	}
	return true
}

// Send queues b, a frame for this subscriber alone (a WebSocket pong or
// ping), after what is queued, under the same byte limit. It reports false
// once the subscription has ended.
func (s *Subscription) Send(b []byte) bool { return s.enqueue(b, false) }

// Finish queues last (a WebSocket close frame, say) and ends the
// subscription with ErrFinished: nothing more is queued, and the taker gets
// last and then the error. The caller still calls Unsubscribe when its
// connection is done.
func (s *Subscription) Finish(last []byte) { s.end(ErrFinished, last) }

// end records why the subscription ended, queues last (the format's End
// bytes on shutdown) and wakes the taker to see it. Only the first reason
// counts.
func (s *Subscription) end(err error, last []byte) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.endLocked(err, last)
	s.mu.Unlock()
	s.callWake()
}

// endLocked: s.mu must be held. On ErrSlowConsumer a subscriber's queue is
// dropped, so its memory is freed at once (a puller's is kept for the other
// pullers); otherwise what was queued still goes out. last goes after it,
// unless nil.
func (s *Subscription) endLocked(err error, last []byte) {
	s.err = err
	if err == ErrSlowConsumer && s.pull == nil {
		clear(s.queue)
		s.queue = s.queue[:0]
		s.queued = 0
		s.early = nil
		s.replay = replayState{}
	}
	if last != nil {
		s.queue = append(s.queue, last)
	}
}

// callWake wakes a waiting taker so it sees the end. mu must not be held.
func (s *Subscription) callWake() {
	s.mu.Lock()
	wake := s.waiting
	s.waiting = false
	s.mu.Unlock()
	if wake {
		s.wake()
	}
}

// takeAll empties the queue and returns what was in it. Lock must not be
// held.
func (s *Subscription) takeAll() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue, s.queued = nil, 0
	return q
}
