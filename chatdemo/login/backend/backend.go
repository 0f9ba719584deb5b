// Package backend is the chat demo's login backend (the command in
// chatdemo/login): the example of a service that owns its users and lets
// the bus enforce who they are (PROTOCOL.md §8, §9).
//
// It serves the chat page in login mode and a small session API under
// /session. A person picks a name and the rooms to join; the backend checks
// the name, holds it for that person while they are online, and asks the
// bus's admin listener (POST /admin/tokens) for a token whose sub is the
// name and whose rights are exactly the joined rooms' channels, to publish
// and to subscribe. The page presents the token to the bus, which sets each
// message's From from it: nobody can post as someone else, nor read a room
// they did not join, whatever the page or a script sends.
//
// There are no passwords: this is where a real service would check one. A
// name is held by the browser session (a cookie) that took it, until it
// logs out or its user has had no stream on the bus for a while.
package backend

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of Config.
const (
	// DefaultTTL is how long a token lasts. The page gets a new one well
	// before, so a short life costs nothing and a leaked token soon ends.
	DefaultTTL = 15 * time.Minute
	// MaxJoined is the most rooms one person joins. The page opens one
	// stream per room (a token reads only its rooms, so it cannot listen on
	// their parent), and a browser opens at most six HTTP/1.1 connections
	// to one server: four leaves room for sending and for history.
	MaxJoined = 4
	// Grace is how long a name stays held after its last token was handed
	// out even when its user has no stream on the bus: the time a page
	// takes to connect, or to switch to a renewed token.
	Grace = time.Minute
)

// DefaultRooms are the rooms offered when Config.Rooms is empty.
var DefaultRooms = []string{"lobby", "random"}

// Config is what a Backend needs to know.
type Config struct {
	// Bus is the bus's URL as browsers reach it, such as
	// http://localhost:8888. Required. The bus must accept the page's
	// origin (--allow-origin), since the page is served from here.
	Bus string
	// Admin is the URL of the bus's admin listener (--admin-listen), as
	// this backend reaches it. Required.
	Admin string
	// AdminToken is sent as "Authorization: Bearer" to the admin listener
	// (its --admin-token). Empty sends none.
	AdminToken string
	// Rooms are the rooms people may join: lower-case letters, digits, '-'
	// and '_'. Empty means DefaultRooms.
	Rooms []string
	// TTL is how long a token lasts, at least 10 s. Zero means DefaultTTL.
	TTL time.Duration
	// Dir is the folder of the chat page: index.html, chat.js, chat.css.
	// Required.
	Dir string
	// Client makes the requests to the admin listener. Nil means a client
	// with a 10 s timeout.
	Client *http.Client
}

// Backend serves the chat page in login mode and its session API. Create
// it with New; it is an http.Handler.
type Backend struct {
	cfg   Config
	bus   string // cfg.Bus without a trailing slash
	csp   string
	files map[string]page // path → the page's files
	mux   *http.ServeMux
	grace time.Duration // Grace; tests shorten it

	// mu guards sessions and names.
	mu       sync.Mutex
	sessions map[string]*session // cookie value → session
	names    map[string]*session // lower-case name → the session holding it
}

// A session is one browser's login: its name and rooms.
type session struct {
	id    string
	user  string   // as typed; names[strings.ToLower(user)] holds it
	rooms []string // joined, in the order offered
	seen  time.Time
}

type page struct {
	body []byte
	typ  string
}

// cookieName is the cookie that names a browser's session.
const cookieName = "chat_session"

// loginMeta is the placeholder in index.html that the backend fills in with
// its session URL: the page then runs in login mode.
const loginMeta = `<meta name="msgbus-login" content="">`

var (
	// A name is what others see and the bus's From: ASCII only, so that
	// no two names look alike, and held case-insensitively.
	validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,23}$`)
	// A room is as the page names them.
	validRoom = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

const nameRule = "a name is 1 to 24 letters (a-z), digits, '-', '_' or '.', starting with a letter or digit"

// New checks cfg and reads the chat page from cfg.Dir.
func New(cfg Config) (*Backend, error) {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < 10*time.Second {
		return nil, fmt.Errorf("backend: --ttl %s: at least 10s", cfg.TTL)
	}
	if len(cfg.Rooms) == 0 {
		cfg.Rooms = DefaultRooms
	}
	for _, r := range cfg.Rooms {
		if !validRoom.MatchString(r) {
			return nil, fmt.Errorf("backend: --rooms: %q is not a room name (lower-case letters, digits, - and _, at most 32)", r)
		}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	busURL, err := parseHTTP("--bus", cfg.Bus)
	if err != nil {
		return nil, err
	}
	if _, err := parseHTTP("--admin", cfg.Admin); err != nil {
		return nil, err
	}
	b := &Backend{
		cfg:      cfg,
		bus:      strings.TrimSuffix(cfg.Bus, "/"),
		files:    map[string]page{},
		sessions: map[string]*session{},
		names:    map[string]*session{},
		grace:    Grace,
	}
	busOrigin := busURL.Scheme + "://" + busURL.Host
	b.csp = "default-src 'none'; script-src 'self'; style-src 'self' " + busOrigin +
		"; connect-src 'self' " + busOrigin + "; img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	for path, f := range map[string]struct{ name, typ string }{
		"/":         {"index.html", "text/html; charset=utf-8"},
		"/chat.js":  {"chat.js", "text/javascript; charset=utf-8"},
		"/chat.css": {"chat.css", "text/css; charset=utf-8"},
	} {
		body, err := os.ReadFile(filepath.Join(cfg.Dir, f.name))
		if err != nil {
			return nil, fmt.Errorf("backend: the chat page: %w (--dir is the chatdemo folder)", err)
		}
		if path == "/" {
			if !bytes.Contains(body, []byte(loginMeta)) {
				return nil, fmt.Errorf("backend: %s has no %s to fill in: is --dir the chatdemo folder?", f.name, loginMeta)
			}
			body = bytes.Replace(body, []byte(loginMeta), []byte(`<meta name="msgbus-login" content="session">`), 1)
		}
		b.files[path] = page{body, f.typ}
	}

	b.mux = http.NewServeMux()
	b.mux.HandleFunc("GET /{$}", b.serveFile)
	b.mux.HandleFunc("GET /chat.js", b.serveFile)
	b.mux.HandleFunc("GET /chat.css", b.serveFile)
	// The shared stylesheet is the bus's (server/ui): the page links it
	// at /_msgbus/ui.css, as it does when the bus serves it.
	b.mux.HandleFunc("GET /_msgbus/ui.css", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, b.bus+"/_msgbus/ui.css", http.StatusFound)
	})
	b.mux.HandleFunc("GET /session", b.getSession)
	b.mux.HandleFunc("POST /session", b.postSession)
	b.mux.HandleFunc("DELETE /session", b.deleteSession)
	return b, nil
}

// parseHTTP checks that s is an http or https URL with a host.
func parseHTTP(flag, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("backend: %s %q: want an http:// or https:// URL, such as http://localhost:8888", flag, s)
	}
	return u, nil
}

func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	b.mux.ServeHTTP(w, r)
}

func (b *Backend) serveFile(w http.ResponseWriter, r *http.Request) {
	f := b.files[r.URL.Path]
	w.Header().Set("Content-Type", f.typ)
	w.Header().Set("Cache-Control", "no-cache")
	if r.URL.Path == "/" {
		w.Header().Set("Content-Security-Policy", b.csp)
	}
	w.Write(f.body)
}

// A sessionAnswer is what /session answers: who the browser is logged in
// as ("" when nobody), the rooms joined and offered, where the bus is, and
// a fresh token with its expiry, as an absolute time and in seconds from
// now (the page counts from its own clock, which may differ from ours).
type sessionAnswer struct {
	User      string   `json:"user"`
	Rooms     []string `json:"rooms"`
	Offered   []string `json:"offered"`
	Bus       string   `json:"bus"`
	Token     string   `json:"token,omitempty"`
	Expires   string   `json:"expires,omitempty"`
	ExpiresIn int      `json:"expires_in,omitempty"`
	Note      string   `json:"note,omitempty"` // why a browser that was logged in is not any more
}

// getSession answers GET /session: the browser's login with a new token,
// which is how the page renews its token, or user "" when not logged in.
func (b *Backend) getSession(w http.ResponseWriter, r *http.Request) {
	ans := sessionAnswer{Rooms: []string{}, Offered: b.cfg.Rooms, Bus: b.bus}
	s, note := b.current(r)
	if s == nil {
		ans.Note = note
		reply(w, http.StatusOK, ans)
		return
	}
	b.answerWithToken(w, r.Context(), s)
}

// current returns the browser's session, and when it has none although it
// sent a cookie, why.
func (b *Backend) current(r *http.Request) (*session, string) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil, ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(time.Now())
	if s := b.sessions[c.Value]; s != nil {
		return s, ""
	}
	return nil, "your session ended: log in again"
}

// answerWithToken mints a token for s and answers with it.
func (b *Backend) answerWithToken(w http.ResponseWriter, ctx context.Context, s *session) {
	b.mu.Lock()
	user, rooms := s.user, slices.Clone(s.rooms)
	b.mu.Unlock()
	tok, exp, err := b.mint(ctx, user, rooms)
	if err != nil {
		fail(w, http.StatusBadGateway, err.Error())
		return
	}
	b.mu.Lock()
	s.seen = time.Now()
	b.mu.Unlock()
	reply(w, http.StatusOK, sessionAnswer{
		User: user, Rooms: rooms, Offered: b.cfg.Rooms, Bus: b.bus,
		Token: tok, Expires: exp.Format(time.RFC3339), ExpiresIn: int(time.Until(exp) / time.Second),
	})
}

// A loginRequest is the body of POST /session.
type loginRequest struct {
	Name  string   `json:"name"`
	Rooms []string `json:"rooms"`
}

// postSession answers POST /session: log in as a name with rooms, or, for
// the browser already holding that name, change the rooms joined. 400 for
// a bad name or rooms, 409 when someone else holds the name.
func (b *Backend) postSession(w http.ResponseWriter, r *http.Request) {
	// JSON only: a page of another site cannot send that without asking
	// first (a CORS preflight, which this backend never allows).
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(ct) != "application/json" {
		fail(w, http.StatusUnsupportedMediaType, "send JSON: {\"name\", \"rooms\"}")
		return
	}
	var req loginRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, "send JSON: {\"name\", \"rooms\"}")
		return
	}
	name := strings.TrimSpace(req.Name)
	if !validName.MatchString(name) {
		fail(w, http.StatusBadRequest, nameRule)
		return
	}
	rooms, err := b.pick(req.Rooms)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	id := ""
	if c, err := r.Cookie(cookieName); err == nil {
		id = c.Value
	}
	s, err := b.claim(r.Context(), id, name, rooms)
	if err != nil {
		code := http.StatusBadGateway
		if errors.As(err, new(takenError)) {
			code = http.StatusConflict
		}
		fail(w, code, err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: s.id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	b.answerWithToken(w, r.Context(), s)
}

// pick checks the rooms asked for and returns them in the order offered.
func (b *Backend) pick(asked []string) ([]string, error) {
	var rooms []string
	for _, r := range b.cfg.Rooms {
		if slices.Contains(asked, r) {
			rooms = append(rooms, r)
		}
	}
	for _, r := range asked {
		if !slices.Contains(b.cfg.Rooms, r) {
			return nil, fmt.Errorf("there is no room #%.32s here; the rooms are #%s", r, strings.Join(b.cfg.Rooms, ", #"))
		}
	}
	switch {
	case len(rooms) == 0:
		return nil, errors.New("join at least one room")
	case len(rooms) > MaxJoined:
		return nil, fmt.Errorf("join at most %d rooms", MaxJoined)
	}
	return rooms, nil
}

// takenError is claim's error when someone else, the user named, holds
// the name.
type takenError string

func (e takenError) Error() string { return string(e) + " is here: pick another name" }

// claim gives the browser with session id (or "" for none yet) the name
// and rooms, and returns its session. Someone else's name is refused while
// its holder is online: a token was handed out within Grace, or the bus
// has a stream of that user; otherwise the holder loses it.
func (b *Backend) claim(ctx context.Context, id, name string, rooms []string) (*session, error) {
	key := strings.ToLower(name)
	for {
		b.mu.Lock()
		now := time.Now()
		b.expire(now)
		holder := b.names[key]
		switch {
		case holder == nil || holder.id == id:
			s := b.sessions[id]
			if s == nil {
				s = &session{id: newID()}
				b.sessions[s.id] = s
			} else if old := strings.ToLower(s.user); old != key {
				delete(b.names, old) // a new name frees the old one
			}
			s.user, s.rooms, s.seen = name, rooms, now
			b.names[key] = s
			b.mu.Unlock()
			return s, nil
		case now.Sub(holder.seen) < b.grace:
			b.mu.Unlock()
			return nil, takenError(holder.user)
		}
		user := holder.user
		b.mu.Unlock()
		online, err := b.online(ctx, user)
		if err != nil {
			return nil, err
		}
		if online {
			return nil, takenError(user)
		}
		b.mu.Lock()
		if b.names[key] == holder { // nobody took it meanwhile
			b.drop(holder)
		}
		b.mu.Unlock()
	}
}

// expire drops the sessions that got no token for TTL and Grace: their
// pages are closed, or they would have renewed it.
// Lock must be held.
func (b *Backend) expire(now time.Time) {
	for _, s := range b.sessions {
		if now.Sub(s.seen) > b.cfg.TTL+b.grace {
			b.drop(s)
		}
	}
}

// drop forgets a session and frees its name.
// Lock must be held.
func (b *Backend) drop(s *session) {
	delete(b.sessions, s.id)
	if key := strings.ToLower(s.user); b.names[key] == s {
		delete(b.names, key)
	}
}

// deleteSession answers DELETE /session: log out. The name is free at
// once, and the user's streams on the bus end (their tokens stay valid
// until they expire, but the page forgets its own).
func (b *Backend) deleteSession(w http.ResponseWriter, r *http.Request) {
	s, _ := b.current(r)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	if s == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	b.mu.Lock()
	b.drop(s)
	user := s.user
	b.mu.Unlock()
	res, err := b.admin(r.Context(), http.MethodDelete, "/admin/users/"+url.PathEscape(user)+"/sessions", nil)
	if err == nil {
		res.Body.Close() // 404: no stream to end
	}
	w.WriteHeader(http.StatusNoContent)
}

// mint asks the admin listener for a token for user that may publish to
// and subscribe to the rooms' channels, chat/<room>, and nothing else.
func (b *Backend) mint(ctx context.Context, user string, rooms []string) (string, time.Time, error) {
	channels := make([]string, len(rooms))
	for i, r := range rooms {
		channels[i] = "chat/" + r
	}
	body, _ := json.Marshal(map[string]any{"sub": user, "ttl": b.cfg.TTL.String(), "publish": channels, "subscribe": channels})
	res, err := b.admin(ctx, http.MethodPost, "/admin/tokens", body)
	if err != nil {
		return "", time.Time{}, err
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return "", time.Time{}, adminError(res, msg)
	}
	var t struct{ Token, Expires string }
	if err := json.Unmarshal(msg, &t); err != nil || t.Token == "" {
		return "", time.Time{}, fmt.Errorf("the bus's admin listener answered /admin/tokens with %.80q", msg)
	}
	exp, err := time.Parse(time.RFC3339, t.Expires)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("the bus's admin listener gave a token expiring %q", t.Expires)
	}
	return t.Token, exp, nil
}

// online reports whether the bus has a stream of user.
func (b *Backend) online(ctx context.Context, user string) (bool, error) {
	res, err := b.admin(ctx, http.MethodGet, "/admin/users/"+url.PathEscape(user)+"/sessions", nil)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK {
		return false, adminError(res, msg)
	}
	var list struct{ Sessions []json.RawMessage }
	if err := json.Unmarshal(msg, &list); err != nil {
		return false, fmt.Errorf("the bus's admin listener answered the sessions of %s with %.80q", user, msg)
	}
	return len(list.Sessions) > 0, nil
}

// admin makes a request to the admin listener.
func (b *Backend) admin(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(b.cfg.Admin, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if b.cfg.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+b.cfg.AdminToken)
	}
	res, err := b.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the bus's admin listener: %w", err)
	}
	return res, nil
}

// adminError says what the admin listener refused, and what to check.
func adminError(res *http.Response, msg []byte) error {
	why := strings.TrimSpace(string(msg))
	switch res.StatusCode {
	case http.StatusUnauthorized:
		why += " (check --admin-token)"
	case http.StatusForbidden:
		why += " (check the bus's --admin-allow)"
	case http.StatusNotFound:
		why += " (run the bus with --token-secret)"
	}
	return fmt.Errorf("the bus's admin listener: %s %s: %.200s", res.Request.Method, res.Request.URL.Path, why)
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// reply writes v as JSON.
func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// fail answers an error as {"error": why}, which the page shows.
func fail(w http.ResponseWriter, code int, why string) {
	reply(w, code, map[string]string{"error": why})
}
