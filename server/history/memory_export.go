package history

import "github.com/msgbus/msgbus/server/message"

// noteLast makes id the newest id the store has held, if it is newer than
// what it holds: a durable store whose newest messages were deleted before
// a restart still knows their ids (LastID, and a resume from one of them
// is not "unknown").
func (s *Memory) noteLast(id message.ID) {
	s.mu.Lock()
	if s.last.Less(id) {
		s.last = id
	}
	s.mu.Unlock()
}

// marks returns what the durable store writes with each commit (see
// mark): the newest id appended, the newest evicted, and keep, the oldest
// still retained; with none retained, the id after the newest, since every
// message so far was evicted. Evictions take the oldest message of a
// channel (Size) or of all (TTL, MaxBytes), so everything before keep is
// gone, and after it only Size evicted, which a restart re-applies alike.
func (s *Memory) marks() mark {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k := mark{last: s.last, lost: s.lostAll, keep: message.ID{Ms: s.last.Ms, Seq: s.last.Seq + 1}}
	if x := s.indexes[""]; x != nil {
		for _, e := range x.all.items() {
			if !e.evicted {
				k.keep = e.m.ID
				break
			}
		}
	}
	return k
}
