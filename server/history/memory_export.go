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
