package hub

import (
	"errors"
	"github.com/msgbus/msgbus/server/message"
	"sync"
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
	hub     *Hub
	channel string          // "" is the root
	format  message.Format  // copied here so the fan-out reads plain fields
	filter  *message.Filter // nil passes everything
	node    *node
	index   int // position in node.subs; node.mu must be held

	mu      sync.Mutex
	queue   [][]byte
	queued  int // bytes in queue
	max     int
	err     error
	waiting bool         // the taker found the queue empty and wants a wake
	wake    func()       // starts a taker; never called with mu held
	dropped func()       // see SubscribeOptions.Dropped
	name    string       // how logs call it: its URL path
	pull    *pullerState // nil but for a puller (push/pull)
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
}

// dropLocked ends s with ErrSlowConsumer and unlocks s.mu, which must be
// held; then it logs and counts the drop, unblocks the writer (Dropped)
// and wakes it to see the end.
func (s *Subscription) dropLocked() {
	queued := s.queued
	s.endLocked(ErrSlowConsumer, s.format.End(ErrSlowConsumer))
	s.mu.Unlock()
	s.hub.slowDisconnect(s, queued)
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
func (s *Subscription) Take(dst [][]byte) ([][]byte, error) {
	s.mu.Lock()
	var written held
	if p := s.pull; p != nil {
		written, p.taken, p.held = p.taken, p.held, held{}
		p.lastTake = time.Now()
	}
	if len(s.queue) == 0 {
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
		return false
	}
	s.queue = append(s.queue, b)
	s.queued += len(b)
	if push {
		s.pull.held = s.pull.held.plus(heldOf(b))
	}
	wake := s.waiting
	s.waiting = false
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
