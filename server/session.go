package server

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/msgbus/msgbus/server/hub"
)

// A session is one subscription as PROTOCOL.md §8 sees it: a multipart or
// SSE stream or a WebSocket, with an id (the Msgbus-Session header), the
// user it belongs to, and the channels it receives. Sessions of a user
// receive the user's personal address, @user, and an operator can bind
// them to more channels or end them (log out) through the admin listener.
type session struct {
	ID     string    `json:"id"`
	User   string    `json:"user"`
	Kind   string    `json:"kind"` // multipart, sse or websocket
	Remote string    `json:"remote"`
	Since  time.Time `json:"since"`
	// Channels is filled in when the session is listed: the subscription's
	// own channel, then its bindings (the personal address first).
	Channels []string `json:"channels"`

	name    string            // the subscription's URL path, for a session that cannot bind (/bus/, /pull/)
	sub     *hub.Subscription // nil until the subscription is made
	expires time.Time         // the token's expiry; zero: none
	expiry  *time.Timer       // ends the stream at expires
}

// Session kinds.
const (
	kindMultipart = "multipart"
	kindSSE       = "sse"
	kindWebSocket = "websocket"
)

// personalAddress is the channel every session of user receives.
func personalAddress(user string) string { return "@" + user }

// newSessionID returns 128 random bits, URL-safe.
func newSessionID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sessions is a node's registry of its live sessions.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
}

// openSession registers ss, whose subscription has just been made: it binds
// the user's personal address, arms the token's expiry, and, on a bus of
// several nodes, announces the session so that every node can list it.
// bindable is false for /bus/ peers and pullers, which receive one topic
// only.
func (s *Server) openSession(ss *session, bindable bool) {
	h := s.engine.Hub()
	if bindable && ss.User != "" {
		h.Bind(ss.sub, personalAddress(ss.User))
	}
	if !ss.expires.IsZero() {
		sub := ss.sub
		ss.expiry = time.AfterFunc(time.Until(ss.expires), func() { h.End(sub, hub.ErrTokenExpired) })
	}
	s.sessions.mu.Lock()
	s.sessions.byID[ss.ID] = ss
	s.sessions.mu.Unlock()
	s.announce(ss)
}

// closeSession forgets a session whose subscription has ended.
func (s *Server) closeSession(ss *session) {
	if ss == nil {
		return
	}
	if ss.expiry != nil {
		ss.expiry.Stop()
	}
	s.sessions.mu.Lock()
	delete(s.sessions.byID, ss.ID)
	s.sessions.mu.Unlock()
	if s.cluster != nil {
		s.cluster.Withdraw(ss.ID)
	}
}

// announce tells the other nodes of a bus on Redis about ss, as it is now.
func (s *Server) announce(ss *session) {
	if s.cluster != nil {
		s.cluster.Announce(ss.ID, s.sessionJSON(ss))
	}
}

// sessionJSON is ss as the session API shows it.
func (s *Server) sessionJSON(ss *session) []byte {
	v := *ss
	v.Channels = ss.channels()
	b, _ := json.Marshal(v)
	return b
}

// channels returns what the session receives, by name.
func (ss *session) channels() []string {
	if ss.name != "" {
		return []string{ss.name}
	}
	return ss.sub.Channels()
}

// localSessions returns this node's sessions of user (all users when
// user is nil), oldest first.
func (s *Server) localSessions(match func(*session) bool) []*session {
	s.sessions.mu.Lock()
	var out []*session
	for _, ss := range s.sessions.byID {
		if match(ss) {
			out = append(out, ss)
		}
	}
	s.sessions.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out
}

// sessionsOfKind counts this node's sessions of one kind, for /metrics.
func (s *Server) sessionsOfKind(kind string) int {
	s.sessions.mu.Lock()
	defer s.sessions.mu.Unlock()
	n := 0
	for _, ss := range s.sessions.byID {
		if ss.Kind == kind {
			n++
		}
	}
	return n
}

// A sessionCommand is what an operator does to sessions: end them, or
// bind or unbind a channel. It names one session (ID) or every session
// of a user (User). On a bus of several nodes it is broadcast, and each
// node runs it on the sessions it holds.
type sessionCommand struct {
	Op      string `json:"op"` // end, bind or unbind
	ID      string `json:"id,omitempty"`
	User    string `json:"user,omitempty"`
	Channel string `json:"channel,omitempty"`
}

// runSessionCommand runs cmd on this node's sessions and returns how many
// it touched.
func (s *Server) runSessionCommand(cmd sessionCommand) int {
	targets := s.localSessions(func(ss *session) bool {
		return (cmd.ID == "" || ss.ID == cmd.ID) && (cmd.User == "" || ss.User == cmd.User)
	})
	h := s.engine.Hub()
	n := 0
	for _, ss := range targets {
		switch cmd.Op {
		case "end":
			h.End(ss.sub, hub.ErrSessionEnded)
		case "bind":
			if ss.name != "" {
				continue
			}
			if ok, _ := h.Bind(ss.sub, cmd.Channel); ok {
				s.announce(ss)
			}
		case "unbind":
			if h.Unbind(ss.sub, cmd.Channel) {
				s.announce(ss)
			}
		default:
			continue
		}
		n++
	}
	return n
}

// handleSessionCommand runs a command broadcast by a node of the bus.
func (s *Server) handleSessionCommand(b []byte) {
	var cmd sessionCommand
	if err := json.Unmarshal(b, &cmd); err != nil {
		s.log.Warn("session command refused", "err", err)
		return
	}
	s.runSessionCommand(cmd)
}
