package load

// window is how far back a Tracker remembers which sequence numbers it
// has seen, to tell a late (reordered) message from a duplicate.
const window = 4096

// A Tracker checks the sequence numbers one subscriber receives from each
// test-pub worker. It allocates once per new (run, worker) stream.
//
// A message is in order when it is the next of its stream. One further on
// opens a gap of missing messages; one behind is reordered when it fills a
// gap (it arrived late) and duplicated when it was seen already. Beyond
// window messages back, a late arrival is counted as reordered.
type Tracker struct {
	streams []stream
	last    int // index of the stream of the previous message

	Distinct   uint64 // different messages received
	Duplicated uint64
	Reordered  uint64
	Missing    uint64 // gaps not (yet) filled
}

type stream struct {
	run    uint64
	worker uint32
	next   uint64 // one past the highest seq seen
	seen   [window / 64]uint64
}

// Add records s and reports whether it was a new message.
func (t *Tracker) Add(s Stamp) bool {
	st := t.stream(s)
	switch {
	case s.Seq >= st.next:
		t.Missing += s.Seq - st.next
		for q := st.next; q < s.Seq && q < st.next+window; q++ {
			st.clear(q)
		}
		st.next = s.Seq + 1
		st.set(s.Seq)
	case st.next-s.Seq > window:
		t.Reordered++
		if t.Missing > 0 {
			t.Missing--
		}
	case st.has(s.Seq):
		t.Duplicated++
		return false
	default:
		t.Reordered++
		t.Missing--
		st.set(s.Seq)
	}
	t.Distinct++
	return true
}

func (t *Tracker) stream(s Stamp) *stream {
	if t.last < len(t.streams) {
		if st := &t.streams[t.last]; st.run == s.Run && st.worker == s.Worker {
			return st
		}
	}
	for i := range t.streams {
		if st := &t.streams[i]; st.run == s.Run && st.worker == s.Worker {
			t.last = i
			return st
		}
	}
	t.streams = append(t.streams, stream{run: s.Run, worker: s.Worker})
	t.last = len(t.streams) - 1
	return &t.streams[t.last]
}

func (st *stream) set(q uint64)      { st.seen[q/64%(window/64)] |= 1 << (q % 64) }
func (st *stream) clear(q uint64)    { st.seen[q/64%(window/64)] &^= 1 << (q % 64) }
func (st *stream) has(q uint64) bool { return st.seen[q/64%(window/64)]&(1<<(q%64)) != 0 }
