package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/msgbus/msgbus/multipart"
	"github.com/msgbus/msgbus/server/console"
	"github.com/msgbus/msgbus/server/message"
	"github.com/msgbus/msgbus/server/token"
)

// The admin listener's API (PROTOCOL.md §9): channels, publishing as the
// server, sessions, and pprof. Bodies are JSON; errors are one line of
// text, as on the bus.
func (a *admin) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/channels", a.channels)
	mux.HandleFunc("POST /admin/publish/{channel...}", a.publish)
	mux.HandleFunc("POST /admin/tokens", a.mintToken)
	mux.HandleFunc("GET /admin/sessions", a.listSessions)
	mux.HandleFunc("GET /admin/users/{user}/sessions", a.listSessions)
	mux.HandleFunc("DELETE /admin/users/{user}/sessions", a.sessionCommand("end"))
	mux.HandleFunc("DELETE /admin/users/{user}/sessions/{id}", a.sessionCommand("end"))
	mux.HandleFunc("DELETE /admin/sessions/{id}", a.sessionCommand("end")) // any session, an anonymous one too
	mux.HandleFunc("POST /admin/sessions/{id}/bind/{channel...}", a.sessionCommand("bind"))
	mux.HandleFunc("DELETE /admin/sessions/{id}/bind/{channel...}", a.sessionCommand("unbind"))
	mux.HandleFunc("POST /admin/users/{user}/bind/{channel...}", a.sessionCommand("bind"))
	mux.HandleFunc("DELETE /admin/users/{user}/bind/{channel...}", a.sessionCommand("unbind"))
	mux.Handle("GET /", console.Handler()) // the operators' console, and 404 for anything else
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// channelInfo is one channel of GET /admin/channels.
type channelInfo struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
}

// channels answers GET /admin/channels: this node's channels with their
// subscribers (the root is ""; /bus/ topics appear as "/bus/<t>"), and the
// bus's counters, from which a console draws its rates.
func (a *admin) channels(w http.ResponseWriter, _ *http.Request) {
	var list []channelInfo
	a.srv.engine.Hub().EachChannel(func(ch string, n int) {
		if t, ok := strings.CutPrefix(ch, busKey("")); ok {
			ch = "/bus/" + t
		}
		list = append(list, channelInfo{ch, n})
	})
	slices.SortFunc(list, func(x, y channelInfo) int { return strings.Compare(x.Channel, y.Channel) })
	st := a.srv.engine.Stats()
	a.srv.sessions.mu.Lock()
	sessions := len(a.srv.sessions.byID)
	a.srv.sessions.mu.Unlock()
	adminJSON(w, http.StatusOK, map[string]any{
		"channels":    append([]channelInfo{}, list...),
		"subscribers": st.Subscribers,
		"sessions":    sessions,
		"published":   st.Published,
		"delivered":   st.Delivered,
		"history":     map[string]any{"messages": st.History.Messages, "bytes": st.History.Bytes},
	})
}

// publish answers POST /admin/publish/<channel>[?from=<user>]: a message
// from the server, with the From the operator gives, to any channel
// (personal addresses included), under the bus's size limit.
func (a *admin) publish(w http.ResponseWriter, r *http.Request) {
	ch := r.PathValue("channel")
	if err := message.CheckChannel(ch); err != nil {
		adminText(w, http.StatusBadRequest, err.Error())
		return
	}
	typ := r.Header.Get("Content-Type")
	if typ == "" {
		typ = defaultType
	}
	from := r.URL.Query().Get("from")
	key := r.Header.Get("Idempotency-Key")
	if !multipart.ValidContentType(typ) || len(key) > MaxIdempotencyKeyBytes || !multipart.ValidContentType(key) {
		adminText(w, http.StatusBadRequest, "Content-Type and Idempotency-Key must be printable ASCII (a key at most 128 bytes)")
		return
	}
	max := a.srv.cfg.MaxMessageBytes
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(max)))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		adminText(w, http.StatusRequestEntityTooLarge, tooLarge(max))
		return
	case err != nil:
		adminText(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	p, err := a.srv.engine.Publish(&message.Message{Channel: ch, Type: typ, Sender: from, Body: body, Key: key})
	if err != nil {
		w.Header().Set("Retry-After", "1")
		adminText(w, http.StatusServiceUnavailable, "unavailable: "+firstLine(err.Error())+"; retry later")
		return
	}
	w.Header().Set("Msgbus-Id", p.ID.String())
	w.Header().Set("Msgbus-Subscribers", strconv.Itoa(p.Reached))
	w.WriteHeader(http.StatusNoContent)
}

// mintToken answers POST /admin/tokens: a token for a backend to hand to
// one of its users, signed with --token-secret.
func (a *admin) mintToken(w http.ResponseWriter, r *http.Request) {
	v := a.srv.tokens
	if v == nil {
		adminText(w, http.StatusNotFound, "not found: minting tokens needs --token-secret")
		return
	}
	var req token.Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		adminText(w, http.StatusBadRequest, "want a JSON body {\"sub\", \"ttl\", \"publish\", \"subscribe\"}: "+firstLine(err.Error()))
		return
	}
	raw, exp, err := v.Mint(req, time.Now())
	switch {
	case errors.Is(err, token.ErrNoSecret):
		adminText(w, http.StatusNotFound, "not found: minting tokens needs --token-secret")
		return
	case err != nil:
		adminText(w, http.StatusBadRequest, firstLine(err.Error()))
		return
	}
	adminJSON(w, http.StatusOK, map[string]string{"token": raw, "expires": exp.Format(time.RFC3339)})
}

// listSessions answers GET /admin/sessions and GET
// /admin/users/<u>/sessions: every node's sessions (of the user), oldest
// first.
func (a *admin) listSessions(w http.ResponseWriter, r *http.Request) {
	user, one := r.PathValue("user"), r.PathValue("user") != ""
	list, err := a.srv.allSessions()
	if err != nil {
		adminText(w, http.StatusServiceUnavailable, "unavailable: "+firstLine(err.Error()))
		return
	}
	out := list[:0]
	for _, ss := range list {
		if !one || ss.User == user {
			out = append(out, ss)
		}
	}
	adminJSON(w, http.StatusOK, map[string]any{"sessions": append([]session{}, out...)})
}

// allSessions returns the sessions of every node of the bus, oldest first.
func (s *Server) allSessions() ([]session, error) {
	var out []session
	if s.cluster != nil {
		infos, err := s.cluster.Sessions()
		if err != nil {
			return nil, err
		}
		for _, b := range infos {
			var ss session
			if json.Unmarshal(b, &ss) == nil {
				out = append(out, ss)
			}
		}
	} else {
		for _, ss := range s.localSessions(func(*session) bool { return true }) {
			v := *ss
			v.Channels = ss.channels()
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(x, y session) int { return x.Since.Compare(y.Since) })
	return out, nil
}

// sessionCommand answers the session API's changes: log out (end) one
// session or all of a user's, bind or unbind a channel. 404 when no
// session matches; on a bus of several nodes the command is broadcast and
// each node runs it on the sessions it holds.
func (a *admin) sessionCommand(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cmd := sessionCommand{Op: op, ID: r.PathValue("id"), User: r.PathValue("user"), Channel: r.PathValue("channel")}
		if op != "end" {
			if err := message.CheckChannel(cmd.Channel); err != nil {
				adminText(w, http.StatusBadRequest, err.Error())
				return
			}
		}
		s := a.srv
		if s.cluster == nil {
			if s.runSessionCommand(cmd) == 0 {
				adminText(w, http.StatusNotFound, "not found: no such session")
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		list, err := s.allSessions()
		if err == nil && !slices.ContainsFunc(list, func(ss session) bool {
			return (cmd.ID == "" || ss.ID == cmd.ID) && (cmd.User == "" || ss.User == cmd.User)
		}) {
			adminText(w, http.StatusNotFound, "not found: no such session")
			return
		}
		b, _ := json.Marshal(cmd)
		if err == nil {
			err = s.cluster.Broadcast(b)
		}
		if err != nil {
			w.Header().Set("Retry-After", "1")
			adminText(w, http.StatusServiceUnavailable, "unavailable: "+firstLine(err.Error())+"; retry later")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// adminJSON writes v as a JSON answer.
func adminJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
