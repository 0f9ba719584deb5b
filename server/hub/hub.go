// Package hub is the core of msgbus: the channel index, subscriptions with
// their filters and bounded queues, and the fan-out that hands each published
// message, encoded once per wire format, to every matching subscriber. It
// knows nothing of HTTP; the server package adapts sockets to it.
//
// Push/pull (pushpull.go) stays here rather than in a package of its own.
// A puller is a Subscription: its turn and backlog are written into the
// same queue, under the same lock and byte limit, as a subscriber's
// frames, and every Take gives the written bytes back to the rotation and
// refills the puller from the backlog. A push takes its id under the same
// order lock as a publish. Apart, both sides would have to export the
// queue's internals to each other, which would make the hub harder to
// read, not easier.
package hub

import (
	"github.com/msgbus/msgbus/server/message"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxQueueBytes caps a subscriber's queue when Config.MaxQueueBytes is zero.
const DefaultMaxQueueBytes = 1 << 20

const shardCount = 32

// Config holds the hub's limits. The zero Config is usable.
type Config struct {
	// MaxQueueBytes caps the bytes waiting for one subscriber; past it the
	// subscriber is dropped with ErrSlowConsumer. Zero means
	// DefaultMaxQueueBytes. A single frame larger than the cap is still
	// queued when the queue is empty.
	MaxQueueBytes int
	// MaxSubscribers caps live subscriptions; Subscribe refuses more with
	// ErrTooManySubscribers. Zero means no limit.
	MaxSubscribers int
	// MaxBacklogMessages and MaxBacklogBytes cap the messages a push/pull
	// topic holds while no puller can take them; past either, Push fails
	// with ErrBacklogFull. Zero means DefaultMaxBacklogMessages (1000) and
	// DefaultMaxBacklogBytes (16 MiB).
	MaxBacklogMessages, MaxBacklogBytes int
	// MaxBacklogTotal caps the bytes all push/pull topics hold together,
	// accepted and not yet written. Zero means DefaultMaxBacklogTotalBytes
	// (64 MiB).
	MaxBacklogTotal int
	// PullerStall is how long a puller may hold pushes without its client
	// reading any before, once the backlog limits are reached, it is
	// dropped and what it holds goes to the other pullers. Zero means
	// DefaultPullerStall (10 s).
	PullerStall time.Duration
	// Logger receives slow-subscriber disconnects. Nil means slog.Default().
	Logger *slog.Logger
}

// Hub is the channel index and fan-out. Its methods are safe for
// concurrent use.
//
// The index is a map from channel name to node, sharded by hash; a publish
// to "a/b/c" looks up the root, "a", "a/b" and "a/b/c" and so reaches the
// subscribers of each without scanning other channels. A node exists only
// while it has subscribers, so memory follows the live load.
//
// Locks, in the order they are taken (a lock is never taken while holding
// one that comes after it):
//
//	pullMu     push/pull rotations (pushpull.go)
//	orderMu    the order of publishes: held while a publish gets its id
//	           (the caller's order function) and locks its nodes
//	shard.mu   one shard's map; never held while waiting for a node
//	node.mu    one node's subscribers, held across that node's fan-out
//	Subscription.mu  one subscriber's queue
//
// A publish takes orderMu, gets its id, looks up and locks every node it
// will reach, top down, and lets orderMu go before fanning out; so every
// node receives messages in id order, and publishes to unrelated channels
// fan out at the same time. Since the id (and a history append) comes
// before the lookup, a subscriber that registers and then reads history
// misses nothing: what its node did not get, the history has.
type Hub struct {
	cfg    Config
	log    *slog.Logger
	seed   maphash.Seed
	shards [shardCount]shard

	orderMu sync.Mutex // see above

	subscribers atomic.Int64
	published   atomic.Uint64
	delivered   atomic.Uint64
	slow        atomic.Uint64

	closeMu sync.RWMutex // held for writing by Close; for reading by Subscribe
	closed  bool

	pullMu   sync.Mutex           // guards pulls and every rotation's pullers, next and backlog
	pulls    map[string]*rotation // push/pull topics with pullers or a backlog
	pushHeld atomic.Int64         // the pending bytes of every rotation together
	// lastStallSweep is when dropStalledPullers last looked; pullMu.
	lastStallSweep time.Time
}

type shard struct {
	mu    sync.RWMutex
	nodes map[string]*node
}

// node holds the subscribers of exactly one channel. Its mutex is held
// across a whole fan-out, so every subscriber of a node sees that node's
// messages in the same order.
type node struct {
	// members counts the subscribers registered or registering here; the
	// node leaves its shard when it drops to zero. Guarded by the shard's
	// mu, so that a subscriber never waits for a fan-out while holding the
	// shard.
	members int

	mu   sync.Mutex
	subs []*Subscription
}

// New returns an empty hub.
func New(cfg Config) *Hub {
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = DefaultMaxQueueBytes
	}
	h := &Hub{cfg: cfg, log: cfg.Logger, seed: maphash.MakeSeed()}
	if h.log == nil {
		h.log = slog.Default()
	}
	for i := range h.shards {
		h.shards[i].nodes = make(map[string]*node)
	}
	h.pulls = make(map[string]*rotation)
	return h
}

func (h *Hub) shard(channel string) *shard {
	return &h.shards[maphash.String(h.seed, channel)%shardCount]
}

// SubscribeOptions describe a subscriber.
type SubscribeOptions struct {
	Format message.Format  // how the subscriber's frames are encoded; required
	Filter *message.Filter // nil passes everything
	// Head, if not nil, is queued before any message: a response header,
	// say, so that it and the messages go out through one writer.
	Head []byte
	// Wake is called when frames arrive for a taker that found the queue
	// empty, and when the subscription ends. It runs without the
	// subscription's lock but possibly with the channel's (inside a
	// fan-out), so it must not block nor call into the hub: it typically
	// hands the subscription to a writer that calls Take until the queue is
	// empty again. Required.
	Wake func()
	// Held makes the subscription give its taker nothing until Start, and
	// keep the live frames that arrive meanwhile apart with their ids, so
	// that its engine can Replay history into it first. Head is then given
	// to Start instead.
	Held bool
	// Name is how logs call the subscription, its URL path
	// ("/msgbus/a/b", "/bus/t"). Empty means "/" and the channel.
	Name string
	// Dropped, if not nil, is called once, under the same rule as Wake,
	// when the hub drops the subscriber for an overflowing queue. Its writer is likely
	// blocked on a full socket and will not come back to Take soon, so
	// Dropped should unblock it (a write deadline, say).
	Dropped func()
}

// Subscribe registers a subscriber to channel ("" for the root, which
// receives every message) and returns its subscription. It fails with
// ErrTooManySubscribers at the limit and ErrClosed after Close. The caller
// must check the channel name first (message.CheckChannel). Once Subscribe
// returns, every later Publish reaches the subscriber; the first Take
// returns Head (or, when Held, nothing until Start).
func (h *Hub) Subscribe(channel string, opts SubscribeOptions) (*Subscription, error) {
	s := h.newSubscription(channel, opts)
	h.closeMu.RLock()
	defer h.closeMu.RUnlock()
	if err := h.admitLocked(); err != nil {
		return nil, err
	}
	h.register(s)
	return s, nil
}

// newSubscription makes the subscription Subscribe or SubscribePull
// registers.
func (h *Hub) newSubscription(channel string, opts SubscribeOptions) *Subscription {
	return &Subscription{
		format: opts.Format, filter: opts.Filter, max: h.cfg.MaxQueueBytes, held: opts.Held,
		subscriptionRest: &subscriptionRest{
			hub: h, wake: opts.Wake, channel: channel, index: -1, head: opts.Head, dropped: opts.Dropped, name: opts.Name,
		},
	}
}

// admitLocked counts one more subscriber, or fails with ErrClosed after
// Close or ErrTooManySubscribers at the limit. closeMu must be held for
// reading.
func (h *Hub) admitLocked() error {
	if h.closed {
		return ErrClosed
	}
	if n := h.subscribers.Add(1); h.cfg.MaxSubscribers > 0 && n > int64(h.cfg.MaxSubscribers) {
		h.subscribers.Add(-1)
		return ErrTooManySubscribers
	}
	return nil
}

// Unsubscribe removes s from the index and ends it with ErrUnsubscribed
// unless it has already ended. Frames already queued stay for the taker.
// Calling it more than once is harmless; every subscription must be
// unsubscribed once its writer is done, whatever ended it.
func (h *Hub) Unsubscribe(s *Subscription) {
	if !h.deregister(s) {
		return
	}
	h.unbindAll(s)
	h.subscribers.Add(-1)
	s.end(ErrUnsubscribed, nil)
}

// leaveNode takes s out of its node's subscribers and returns the node, or
// nil if s already left. The node's mu guards s.index; s.node is set once,
// before Subscribe returns.
func (s *Subscription) leaveNode() *node {
	n := s.node
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if s.index < 0 {
		return nil
	}
	n.removeLocked(s)
	return n
}

// An Order gives a message its place: called under the hub's order lock,
// before the message reaches any subscriber, it sets the message's ID (and
// Time) and may keep it (a history append). An error refuses the message:
// the hub returns it and delivers nothing. A nil Order means the message
// already has its id (a message that arrived from another node in order).
type Order func(*message.Message) error

// Publish gives m its place through order and queues it for every
// subscriber of m.Channel, of its ancestors and of the root whose filter
// passes it, encoding it once per format in use. It never waits for a
// subscriber's socket. It returns the number of subscribers that got it
// queued. m must not be changed afterwards; m.Channel must be a valid
// channel name.
func (h *Hub) Publish(m *message.Message, order Order) (int, error) {
	return h.publish(m, order, true, nil)
}

// PublishExact is Publish to the subscribers of exactly m.Channel, not its
// ancestors nor the root, skipping except (which may be nil): the
// peer-to-peer bus, where a sender does not hear itself.
func (h *Hub) PublishExact(m *message.Message, order Order, except *Subscription) (int, error) {
	return h.publish(m, order, false, except)
}

func (h *Hub) publish(m *message.Message, order Order, tree bool, except *Subscription) (int, error) {
	var (
		stack [8]*node
		nodes = stack[:0]
	)
	h.orderMu.Lock()
	if order != nil {
		if err := order(m); err != nil {
			h.orderMu.Unlock()
			return 0, err
		}
	}
	lookup := func(p string) {
		sh := h.shard(p)
		sh.mu.RLock()
		n := sh.nodes[p]
		sh.mu.RUnlock()
		if n != nil {
			n.mu.Lock()
			nodes = append(nodes, n)
		}
	}
	if tree {
		message.Prefixes(m.Channel, lookup)
	} else {
		lookup(m.Channel)
	}
	h.orderMu.Unlock()
	delivered := 0
	for _, n := range nodes {
		delivered += n.fanOutLocked(h, m, except)
	}
	m.DropFrames()
	h.published.Add(1)
	h.delivered.Add(uint64(delivered))
	return delivered, nil
}

// fanOutLocked queues m for the node's subscribers but except and unlocks
// the node. The frame of the previous subscriber's format is kept at hand,
// since a node's subscribers mostly share one. Subscribers dropped for an
// overflowing queue are logged once the node is unlocked.
func (n *node) fanOutLocked(h *Hub, m *message.Message, except *Subscription) int {
	var (
		lastFormat message.Format
		frame      []byte
		delivered  int
		dropped    []*Subscription
	)
	for _, s := range n.subs {
		if s.target != nil {
			switch n.forward(s, m, except) {
			case queued:
				delivered++
			case droppedNow:
				dropped = append(dropped, s.target)
			}
			continue
		}
		if (s.filter != nil && !s.filter.Match(m)) || s == except {
			continue
		}
		if s.format != lastFormat {
			lastFormat, frame = s.format, m.Frame(s.format, m.Channel != s.channel)
		}
		switch s.deliver(m.ID, frame) {
		case queued:
			delivered++
		case droppedNow:
			dropped = append(dropped, s)
		}
	}
	n.mu.Unlock()
	for _, s := range dropped {
		h.slowDisconnect(s)
	}
	return delivered
}

// forward hands m to the target of the binding proxy p, along the
// target's shallowest path only (see bindings), marked with its channel.
func (n *node) forward(p *Subscription, m *message.Message, except *Subscription) delivery {
	t := p.target
	if t == except || (p.filter != nil && !p.filter.Match(m)) || !p.forwards(m.Channel) {
		return refused
	}
	return t.deliver(m.ID, m.Frame(p.format, true))
}

// slowDisconnect logs a subscriber dropped for its queue. It runs with no
// hub lock held: a log write may block.
func (h *Hub) slowDisconnect(s *Subscription) {
	h.log.Warn("disconnecting slow subscriber", "channel", s.Name(), "limit_bytes", s.max)
}

// Close ends every subscription with ErrClosed after queueing its format's
// End bytes, and refuses new ones. Publish after Close reaches nobody.
func (h *Hub) Close() {
	h.closeMu.Lock()
	h.closed = true
	h.closeMu.Unlock()
	subs := append(h.channelSubscriptions(), h.pullSubscriptions()...)
	for _, s := range subs {
		s.end(ErrClosed, s.format.End(ErrClosed))
	}
}

// channelSubscriptions returns every channel subscription (not pullers,
// not bindings' proxies).
func (h *Hub) channelSubscriptions() []*Subscription {
	var subs []*Subscription
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for _, n := range sh.nodes {
			n.mu.Lock()
			for _, s := range n.subs {
				if s.target == nil { // not a binding's proxy
					subs = append(subs, s)
				}
			}
			n.mu.Unlock()
		}
		sh.mu.RUnlock()
	}
	return subs
}

// Stats are counters since the hub started.
type Stats struct {
	Subscribers     int64  // live subscriptions
	Channels        int    // channels (and the root) with a subscriber
	Published       uint64 // messages published
	Delivered       uint64 // subscriber deliveries queued
	SlowDisconnects uint64 // subscribers dropped for an overflowing queue
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	st := Stats{
		Subscribers:     h.subscribers.Load(),
		Published:       h.published.Load(),
		Delivered:       h.delivered.Load(),
		SlowDisconnects: h.slow.Load(),
	}
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		st.Channels += len(sh.nodes)
		sh.mu.RUnlock()
	}
	return st
}

// EachChannel calls fn for every channel (and the root, "") with
// subscribers, with how many; bindings do not count. The index is read a
// shard at a time, so the figures are a moment's, not one instant's. fn
// must not call into the hub.
func (h *Hub) EachChannel(fn func(channel string, subscribers int)) {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for ch, n := range sh.nodes {
			n.mu.Lock()
			count := 0
			for _, s := range n.subs {
				if s.target == nil {
					count++
				}
			}
			n.mu.Unlock()
			if count > 0 {
				fn(ch, count)
			}
		}
		sh.mu.RUnlock()
	}
}
