package history

import (
	"sort"
	"sync"
	"time"

	"github.com/msgbus/msgbus/server/message"
)

// Memory is the memory store, and the index the durable store keeps in
// front of its disk. Each message is held once, in an entry; the index of
// each channel with messages at or below it (the root's is the whole log)
// holds pointers to the entries, in id order. Evicting a message marks
// its entry, and each index drops marked entries from its front as it
// goes, or compacts once half of it is marked, so eviction costs O(depth)
// and memory stays within a constant factor of what is retained.
type Memory struct {
	lim Limits
	now func() time.Time

	// mu guards everything below. Append and eviction take it for
	// writing, queries for reading. It comes after the hub's order lock.
	mu      sync.RWMutex
	indexes map[string]*index // channel (and ancestors, and the root "") → index
	bytes   int64
	count   int
	last    message.ID // the newest id appended or loaded
	// floor: ids before it are from before this store started remembering
	// (a memory store's restart), so a resume from one is not recovered.
	floor    message.ID
	floorSet bool
	// lostAll is the newest id ever evicted: for a channel with no index
	// left, whether its resume is recovered is not known beyond it.
	lostAll message.ID

	onEvict func(*message.Message) // the durable store's delete; may be nil
}

// entry is one retained message.
type entry struct {
	m       *message.Message
	size    int
	evicted bool
}

// index is one channel's messages at or below it, oldest first, and those
// published exactly on it.
type index struct {
	all  deque // at or below: what a query on the channel reads
	own  deque // exactly on the channel: what Size limits
	live int   // entries of all not evicted
	lost message.ID
}

// deque is a slice used as a queue of entries in id order.
type deque struct {
	es   []*entry
	head int
}

func (d *deque) push(e *entry)   { d.es = append(d.es, e) }
func (d *deque) items() []*entry { return d.es[d.head:] }
func (d *deque) len() int        { return len(d.es) - d.head }
func (d *deque) front() *entry   { return d.es[d.head] }
func (d *deque) popFront()       { d.es[d.head] = nil; d.head++; d.reclaim() }
func (d *deque) trimEvicted() {
	for d.len() > 0 && d.front().evicted {
		d.popFront()
	}
}
func (d *deque) reclaim() {
	if d.head > 32 && d.head*2 > len(d.es) {
		n := copy(d.es, d.es[d.head:])
		clear(d.es[n:])
		d.es, d.head = d.es[:n], 0
	}
}

// compact drops the evicted entries once they are half of d.
func (d *deque) compact(live int) {
	if d.len() < 64 || live*2 > d.len() {
		return
	}
	kept := d.es[:0]
	for _, e := range d.es[d.head:] {
		if !e.evicted {
			kept = append(kept, e)
		}
	}
	clear(d.es[len(kept):])
	d.es, d.head = kept, 0
}

// NewMemory returns an empty memory store with limits lim. now is its
// clock (nil: time.Now).
func NewMemory(lim Limits, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{lim: lim, now: now, indexes: make(map[string]*index)}
}

// OnEvict sets a function called, under the store's lock, with each
// message evicted: the durable store deletes it from disk. Call it before
// the store is used.
func (s *Memory) OnEvict(f func(*message.Message)) { s.onEvict = f }

// SetFloor says that messages before id may have been published and lost
// (a restart): a resume from before it is not recovered. Without a call,
// the floor is the first id appended.
func (s *Memory) SetFloor(id message.ID) {
	s.mu.Lock()
	s.floor, s.floorSet = id, true
	s.mu.Unlock()
}

// Append keeps m, evicting what the limits no longer allow. It never
// fails.
func (s *Memory) Append(m *message.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appendLocked(m)
	return nil
}

func (s *Memory) appendLocked(m *message.Message) {
	if !s.floorSet {
		s.floor, s.floorSet = m.ID, true
	}
	if s.last.Less(m.ID) {
		s.last = m.ID
	}
	if s.lim.Size <= 0 {
		return
	}
	e := &entry{m: m, size: m.Size()}
	message.Prefixes(m.Channel, func(p string) {
		x := s.indexes[p]
		if x == nil {
			x = &index{}
			s.indexes[p] = x
		}
		x.all.push(e)
		x.live++
		if p == m.Channel {
			x.own.push(e)
		}
	})
	s.bytes += int64(e.size)
	s.count++
	if own := &s.indexes[m.Channel].own; own.len() > s.lim.Size {
		s.evictLocked(own.front()) // and own drops it
	}
	s.expireLocked(s.now())
}

// expireLocked evicts from the oldest while messages are older than the
// TTL or all of them are over MaxBytes.
func (s *Memory) expireLocked(now time.Time) {
	log := s.indexes[""]
	for log != nil {
		log.all.trimEvicted()
		if log.all.len() == 0 {
			return
		}
		e := log.all.front()
		old := s.lim.TTL > 0 && now.Sub(e.m.Time) > s.lim.TTL
		if !old && (s.lim.MaxBytes <= 0 || s.bytes <= s.lim.MaxBytes) {
			return
		}
		s.evictLocked(e)
		log = s.indexes[""]
	}
}

// evictLocked marks e evicted, counts it lost in every index that holds
// it, and frees the indexes left empty.
func (s *Memory) evictLocked(e *entry) {
	if e.evicted {
		return
	}
	e.evicted = true
	s.bytes -= int64(e.size)
	s.count--
	if s.lostAll.Less(e.m.ID) {
		s.lostAll = e.m.ID
	}
	message.Prefixes(e.m.Channel, func(p string) {
		x := s.indexes[p]
		if x == nil {
			return
		}
		x.live--
		if x.lost.Less(e.m.ID) {
			x.lost = e.m.ID
		}
		if x.live == 0 {
			delete(s.indexes, p)
			return
		}
		x.all.trimEvicted()
		x.all.compact(x.live)
		if p == e.m.Channel {
			x.own.trimEvicted() // a channel's own entries leave oldest first
		}
	})
	if s.onEvict != nil {
		s.onEvict(e.m)
	}
}

// Expire evicts what has grown older than the TTL. The engine calls it
// now and then, so a channel nobody publishes to still forgets.
func (s *Memory) Expire() {
	s.mu.Lock()
	s.expireLocked(s.now())
	s.mu.Unlock()
}

// Sync returns at once: memory is as safe as it gets.
func (s *Memory) Sync(*message.Message) error { return nil }

// Replay implements Store.
func (s *Memory) Replay(channel string, f *message.Filter, q ReplayQuery) Replay {
	s.mu.RLock()
	defer s.mu.RUnlock()
	x := s.indexes[channel]
	lost := s.lostAll
	if x != nil {
		lost = x.lost
	}
	r := Replay{Recovered: true}
	if q.Since {
		switch {
		case s.last.Less(q.After): // unknown: not an id of this store
			r.Recovered = false
		case q.After.Less(lost): // something after it was evicted
			r.Recovered = false
		case s.floorSet && q.After.Less(s.floor): // from before a restart
			r.Recovered = false
		}
	}
	if x == nil {
		return r
	}
	want := q.Max
	switch {
	case q.Since:
	case q.Last <= 0:
		return r // neither since nor last: nothing to replay
	case want <= 0 || q.Last < want:
		want = q.Last
	}
	es := x.all.items()
	start := 0
	if q.Since {
		start = sort.Search(len(es), func(i int) bool { return q.After.Less(es[i].m.ID) })
	}
	oldest := s.now().Add(-s.lim.TTL)
	var out []*message.Message
	for i := len(es) - 1; i >= start; i-- {
		e := es[i]
		if e.evicted {
			continue
		}
		if s.lim.TTL > 0 && e.m.Time.Before(oldest) {
			r.Recovered = r.Recovered && !q.Since // expired, not yet evicted: lost
			continue
		}
		if f != nil && !f.Match(e.m) {
			continue
		}
		if want > 0 && len(out) == want {
			if q.Since {
				r.Recovered = false // cut by Max: the oldest are left out
			}
			break
		}
		out = append(out, e.m)
	}
	reverse(out)
	r.Messages = out
	return r
}

// Page implements Store.
func (s *Memory) Page(channel string, f *message.Filter, q PageQuery) Page {
	limit := q.Limit
	if limit <= 0 || limit > MaxPage {
		limit = MaxPage
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	x := s.indexes[channel]
	if x == nil {
		return Page{}
	}
	es := x.all.items()
	oldest := s.now().Add(-s.lim.TTL)
	keep := func(e *entry) bool {
		return !e.evicted && (s.lim.TTL <= 0 || !e.m.Time.Before(oldest)) && (f == nil || f.Match(e.m))
	}
	var p Page
	if q.HasAfter && !q.HasBefore {
		i := sort.Search(len(es), func(i int) bool { return q.After.Less(es[i].m.ID) })
		for ; i < len(es); i++ {
			if !keep(es[i]) {
				continue
			}
			if len(p.Messages) == limit {
				p.More = true
				break
			}
			p.Messages = append(p.Messages, es[i].m)
		}
		return p
	}
	end := len(es)
	if q.HasBefore {
		end = sort.Search(len(es), func(i int) bool { return !es[i].m.ID.Less(q.Before) })
	}
	stop := 0
	if q.HasAfter {
		stop = sort.Search(len(es), func(i int) bool { return q.After.Less(es[i].m.ID) })
	}
	for i := end - 1; i >= stop; i-- {
		if !keep(es[i]) {
			continue
		}
		if len(p.Messages) == limit {
			p.More = true
			break
		}
		p.Messages = append(p.Messages, es[i].m)
	}
	reverse(p.Messages)
	return p
}

// Recent implements Store.
func (s *Memory) Recent(since time.Time) []*message.Message {
	s.mu.RLock()
	defer s.mu.RUnlock()
	x := s.indexes[""]
	if x == nil {
		return nil
	}
	var out []*message.Message
	for _, e := range x.all.items() {
		if !e.evicted && e.m.Key != "" && !e.m.Time.Before(since) {
			out = append(out, e.m)
		}
	}
	return out
}

// LastID implements Store.
func (s *Memory) LastID() message.ID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last
}

// Stats implements Store.
func (s *Memory) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{Messages: s.count, Bytes: s.bytes, Channels: len(s.indexes)}
}

// Err implements Store: memory always takes messages.
func (s *Memory) Err() error { return nil }

// Close implements Store.
func (s *Memory) Close() error { return nil }

func reverse(ms []*message.Message) {
	for i, j := 0, len(ms)-1; i < j; i, j = i+1, j-1 {
		ms[i], ms[j] = ms[j], ms[i]
	}
}
