package hub

import "errors"

// ErrResync ends the subscriptions of a node whose engine lost live
// messages it could not fill from history (a Redis connection that broke
// for longer than history reaches back). Formats cut the stream for it, so
// that clients reconnect, resume, and learn from Msgbus-Recovered what
// they missed.
var ErrResync = errors.New("hub: live messages lost beyond history: resubscribe and resume")

// EndAll ends every channel subscription (not pullers) with err after its
// format's End bytes, and keeps the hub open for new ones. It returns how
// many it ended.
func (h *Hub) EndAll(err error) int {
	subs := h.channelSubscriptions()
	for _, s := range subs {
		s.end(err, s.format.End(err))
	}
	return len(subs)
}
