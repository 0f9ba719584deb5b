package hub

import (
	"errors"
	"slices"
	"strings"
	"sync"
)

// Reasons an operator or the server ends a subscription (End). Formats
// close the stream cleanly for them, as on shutdown.
var (
	// ErrSessionEnded: the session was logged out (PROTOCOL.md §8).
	ErrSessionEnded = errors.New("hub: session ended")
	// ErrTokenExpired: the token the subscription was opened with expired.
	ErrTokenExpired = errors.New("hub: token expired")
)

// End ends s with err after its format's End bytes; what is queued still
// goes out first. The caller still calls Unsubscribe once the writer is done.
func (h *Hub) End(s *Subscription, err error) { s.end(err, s.format.End(err)) }

// A subscription's bindings (PROTOCOL.md §8: a session bound to more
// channels, a user's personal address) are proxies: subscriptions in the
// index of the bound channel that hand what reaches them to their target,
// the bound subscription, marked with Content-Location. They are not
// counted as subscribers. A message that reaches a target along several
// paths (bound to "a/b" while subscribed to "a") is delivered once, along
// the shallowest: the subscription's own channel first, then the shortest
// bound channel that covers it.
//
// Each channel's messages reach a bound subscription in order, but two
// channels' messages may interleave out of id order: each node fans out
// under its own lock.
type bindings struct {
	mu      sync.Mutex
	proxies []*Subscription // guarded by mu; nil after Unsubscribe
	done    bool            // Unsubscribe ran: Bind refuses
}

// ErrNotBound: Bind on a subscription that has ended, or a puller.
var ErrNotBound = errors.New("hub: subscription has ended")

// Bind makes s receive the messages of channel and below it too, as if it
// had subscribed there as well. Binding a channel s already has (its own
// or an earlier binding) does nothing and reports false. It fails with
// ErrNotBound once s is unsubscribed. The caller checks the name
// (message.CheckChannel).
func (h *Hub) Bind(s *Subscription, channel string) (bool, error) {
	if s.pull != nil || s.node == nil {
		return false, ErrNotBound
	}
	b := &s.binds
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return false, ErrNotBound
	}
	if channel == s.channel || slices.ContainsFunc(b.proxies, func(p *Subscription) bool { return p.channel == channel }) {
		return false, nil
	}
	p := &Subscription{format: s.format, filter: s.filter, target: s,
		subscriptionRest: &subscriptionRest{hub: h, channel: channel, index: -1}}
	sh := h.shard(channel)
	sh.mu.Lock()
	n := sh.nodes[channel]
	if n == nil {
		n = &node{}
		sh.nodes[channel] = n
	}
	n.members++
	sh.mu.Unlock()
	p.node = n
	unlock := h.lockMembership(s, n)
	p.index = len(n.subs)
	n.subs = append(n.subs, p)
	b.proxies = append(b.proxies, p)
	s.publishBound()
	unlock()
	return true, nil
}

// Unbind undoes Bind and reports whether channel was bound. A
// subscription's own channel cannot be unbound.
func (h *Hub) Unbind(s *Subscription, channel string) bool {
	b := &s.binds
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.IndexFunc(b.proxies, func(p *Subscription) bool { return p.channel == channel })
	if i < 0 {
		return false
	}
	p := b.proxies[i]
	unlock := h.lockMembership(s, nil)
	p.node.removeLocked(p)
	b.proxies = slices.Delete(b.proxies, i, i+1)
	s.publishBound()
	unlock()
	h.dropMember(p.node, channel)
	return true
}

// lockMembership locks the nodes of s, of its bindings and extra (nil for
// none) while holding the order lock, and returns what unlocks them. A
// publish holds the nodes it reaches from its lookup until each one's
// fan-out is done, so once these are locked no publish is between the
// fan-outs of two of s's paths: a change to s's bindings made now is seen
// by each publish either wholly or not at all, and a message reaches s
// once. The order lock keeps new publishes from locking nodes meanwhile,
// so the nodes may be taken in any order. binds.mu must be held.
func (h *Hub) lockMembership(s *Subscription, extra *node) func() {
	nodes := []*node{s.node}
	for _, p := range s.binds.proxies {
		nodes = append(nodes, p.node)
	}
	if extra != nil && !slices.Contains(nodes, extra) {
		nodes = append(nodes, extra)
	}
	h.orderMu.Lock()
	for _, n := range nodes {
		n.mu.Lock()
	}
	return func() {
		for _, n := range nodes {
			n.mu.Unlock()
		}
		h.orderMu.Unlock()
	}
}

// removeLocked takes s out of n.subs; n.mu must be held.
func (n *node) removeLocked(s *Subscription) {
	if s.index < 0 {
		return
	}
	last := len(n.subs) - 1
	moved := n.subs[last]
	n.subs[s.index], moved.index = moved, s.index
	n.subs[last] = nil
	n.subs = n.subs[:last]
	s.index = -1
}

// dropMember counts one member less in the node of channel, and takes the
// node out of its shard once it has none.
func (h *Hub) dropMember(n *node, channel string) {
	sh := h.shard(channel)
	sh.mu.Lock()
	if n.members--; n.members == 0 {
		delete(sh.nodes, channel)
	}
	sh.mu.Unlock()
}

// publishBound gives the fan-out a copy of the proxies; binds.mu is held.
func (s *Subscription) publishBound() {
	if len(s.binds.proxies) == 0 {
		s.bound.Store(nil)
		return
	}
	ps := slices.Clone(s.binds.proxies)
	s.bound.Store(&ps)
}

// Channels returns s's channel and then its bound channels.
func (s *Subscription) Channels() []string {
	out := []string{s.channel}
	if ps := s.bound.Load(); ps != nil {
		for _, p := range *ps {
			out = append(out, p.channel)
		}
	}
	return out
}

// unbindAll takes every binding of s out of the index; Bind refuses after.
// s itself has left its node.
func (h *Hub) unbindAll(s *Subscription) {
	b := &s.binds
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	for _, p := range b.proxies {
		h.deregister(p)
	}
	b.proxies = nil
	s.bound.Store(nil)
}

// register puts s into the node of its channel.
func (h *Hub) register(s *Subscription) {
	sh := h.shard(s.channel)
	sh.mu.Lock()
	n := sh.nodes[s.channel]
	if n == nil {
		n = &node{}
		sh.nodes[s.channel] = n
	}
	n.members++ // keeps n in the shard until we are in it
	sh.mu.Unlock()
	s.node = n
	n.mu.Lock() // may wait for a fan-out, holding no shard
	s.index = len(n.subs)
	n.subs = append(n.subs, s)
	n.mu.Unlock()
}

// deregister takes s out of its node, and the node out of its shard once
// empty. It reports false if s was already out.
func (h *Hub) deregister(s *Subscription) bool {
	n := s.leaveNode()
	if n == nil {
		return false
	}
	h.dropMember(n, s.channel)
	return true
}

// covers reports whether a message to channel reaches a subscriber of
// parent: parent is the root, channel itself, or an ancestor.
func covers(parent, channel string) bool {
	return parent == "" || channel == parent ||
		len(channel) > len(parent) && channel[len(parent)] == '/' && strings.HasPrefix(channel, parent)
}

// forwards reports whether proxy p should hand a message to channel to its
// target: no shallower path of the target's covers it.
func (p *Subscription) forwards(channel string) bool {
	t := p.target
	if covers(t.channel, channel) {
		return false
	}
	if ps := t.bound.Load(); ps != nil {
		for _, q := range *ps {
			if q != p && len(q.channel) < len(p.channel) && covers(q.channel, channel) {
				return false
			}
		}
	}
	return true
}
