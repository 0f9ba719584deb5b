package server

import (
	"sync"
	"time"

	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/message"
	"github.com/msgbus/msgbus/server/wire"
)

// sseHeartbeat is how often an SSE stream sends a comment line, so proxies
// and browsers see a live connection on a quiet channel. A variable so the
// tests can shorten it; it is read when a stream starts.
var sseHeartbeat = 15 * time.Second

// A heartbeat is a stream's timer; stop it when the stream ends.
type heartbeat struct {
	mu sync.Mutex
	t  *time.Timer // nil once stopped
}

// startHeartbeat sends f's heartbeat frame (wire.Heartbeat) to sub every
// sseHeartbeat while sub lives, through its queue so that the stream's one
// writer writes it; nil when f has none.
func startHeartbeat(f message.Format, sub *hub.Subscription) *heartbeat {
	frame, every := wire.Heartbeat(f), sseHeartbeat
	if frame == nil {
		return nil
	}
	h := &heartbeat{}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.t = time.AfterFunc(every, func() {
		if !sub.Send(frame) {
			return // the subscription has ended
		}
		h.mu.Lock()
		if h.t != nil {
			h.t.Reset(every)
		}
		h.mu.Unlock()
	})
	return h
}

// stop ends the heartbeat; a nil heartbeat is fine.
func (h *heartbeat) stop() {
	if h == nil {
		return
	}
	h.mu.Lock()
	if h.t != nil {
		h.t.Stop()
		h.t = nil
	}
	h.mu.Unlock()
}
