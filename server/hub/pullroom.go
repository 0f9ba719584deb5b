package hub

// PullRoom reports whether a puller of topic could take a frame of n bytes
// now: nothing waits in the topic's backlog here and some puller's queue
// has room. An engine that keeps a topic's backlog elsewhere (Redis, for
// several nodes) takes a push from there only then, so pushes wait where
// every node's pullers can get them, not in one node's backlog.
func (h *Hub) PullRoom(topic string, n int) bool {
	h.pullMu.Lock()
	defer h.pullMu.Unlock()
	r := h.pulls[topic]
	if r == nil || len(r.backlog) > 0 {
		return false
	}
	for _, s := range r.pullers {
		s.mu.Lock()
		room := s.err == nil && (s.queued == 0 || s.queued+n <= s.max)
		s.mu.Unlock()
		if room {
			return true
		}
	}
	return false
}
