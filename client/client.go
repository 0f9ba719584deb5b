// Package client is the Go client of a msgbus server: Publish sends a
// message to a channel, retrying safely; Subscribe reads a channel's
// multipart stream as Messages and, when the stream breaks, reconnects and
// resumes after the last message it received; History pages through what
// the server retained (server/PROTOCOL.md §6).
//
// A Client talks to one server. It is safe for concurrent use; create one
// and share it. Publishes reuse a pool of keep-alive connections; each
// Subscription holds a connection of its own.
//
// # Naming
//
// The HTTP forms are verbs named after what they do: Publish, Subscribe
// (a *Subscription), History. The WebSocket patterns are named after
// their paths (Bus, Pub, Sub, Push, Pull on /bus/, /pub/, /sub/, /push/,
// /pull/) and return a value named after its role. Every form that
// receives is a Receiver: Next(ctx) waits for the next Message, bounded
// by ctx without ending anything, and Close ends it, after which Next (and
// Send) return ErrClosed. Options that mean the same thing have the same
// names in SubscribeOptions and WSOptions (Type, Sender, Since, Last).
//
// # Ids
//
// A message's id (Message.ID, Published.ID) is an opaque token the server
// chose. Store it and give it back (SubscribeOptions.Since,
// HistoryOptions.Before and After); do not parse it or compare its order.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrClosed is what Next and Send return after Close, on a Subscription
// and on every WebSocket pattern alike.
var ErrClosed = errors.New("client: closed")

// A Receiver is what every receiving form has in common: a Subscription
// (HTTP), and the WebSocket Subscriber, Puller and Peer. Next returns the
// next message; its ctx bounds the wait only (the connection stays), and
// once the receiver has ended, Next returns why from every call. Close ends
// the receiver; Next then returns ErrClosed.
type Receiver interface {
	Next(ctx context.Context) (Message, error)
	Close() error
}

var (
	_ Receiver = (*Subscription)(nil)
	_ Receiver = (*Subscriber)(nil)
	_ Receiver = (*Puller)(nil)
	_ Receiver = (*Peer)(nil)
)

// Defaults for the zero values of Config.
const (
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 10 * time.Second
	DefaultMaxIdleConns = 64
	// DefaultPublishAttempts is how many times Publish sends a message
	// before it gives up, when Config.PublishAttempts is zero.
	DefaultPublishAttempts = 5
)

// Config configures a Client.
type Config struct {
	// URL is the server: "http://host:port" or "https://host:port". A path
	// and query are not allowed; user info ("http://alice:secret@host") sets
	// User and Password unless they are set.
	URL string
	// User and Password, when Password is set, are sent as HTTP Basic auth.
	// Against a server run with -s SECRET, Password is the secret and User
	// becomes the From of what this client publishes.
	User, Password string
	// Token, when set, is a token (a JWT) sent as "Authorization: Bearer
	// <Token>" with every request: each publish and its retries, each
	// subscribe and its reconnects, History, and the handshake of every
	// WebSocket pattern. The server takes its sub as the From of what this
	// client publishes and checks its rights per channel (PROTOCOL.md §8).
	// A request carries one Authorization, so Token excludes User and
	// Password (and user info in URL): New refuses both.
	//
	// A token the server refuses (expired, or not signed by a key it
	// trusts) makes a request fail with a *StatusError that matches
	// ErrUnauthorized; one without the right for a channel, ErrForbidden.
	// Neither is retried: a Subscription whose token expires ends with the
	// 401 of its reconnect, and the caller makes a new Client with a new
	// token.
	Token string
	// HTTPClient sends the requests. Nil means a client of the Client's own
	// whose transport keeps up to MaxIdleConns idle connections to the
	// server; Close closes them.
	HTTPClient *http.Client
	// MaxIdleConns caps the idle keep-alive connections kept for publishing
	// when HTTPClient is nil. Zero means DefaultMaxIdleConns (64).
	MaxIdleConns int
	// MinBackoff and MaxBackoff bound the wait before a Subscription
	// reconnects: it starts at MinBackoff and doubles up to MaxBackoff, each
	// wait drawn at random from its upper half (jitter), so subscribers that
	// lost the same server do not all come back at once. Zero means
	// DefaultMinBackoff (100ms) and DefaultMaxBackoff (10s).
	//
	// Publish waits the same way between its attempts, unless the server
	// said how long with Retry-After.
	MinBackoff, MaxBackoff time.Duration
	// PublishAttempts caps how many times Publish sends one message: after
	// a failure to reach the server or a 503 it tries again, with the same
	// Idempotency-Key, so the server publishes it once. Zero means
	// DefaultPublishAttempts (5); 1 never retries.
	PublishAttempts int
}

// A Client publishes to and subscribes at one msgbus server.
type Client struct {
	base       *url.URL // scheme and host only
	auth       string   // "Basic ...", "Bearer ..." or ""
	token      bool     // auth is a Bearer token
	http       *http.Client
	ownsHTTP   bool
	minBackoff time.Duration
	maxBackoff time.Duration
	attempts   int // per publish
}

// New checks cfg and returns a Client. It does not connect.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("client: server URL %q: %w", cfg.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q: want http://host:port or https://host:port", cfg.URL)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: server URL %q: want no path or query; channels are arguments", cfg.URL)
	}
	if u.User != nil && cfg.User == "" && cfg.Password == "" {
		cfg.User = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	if cfg.Token != "" {
		if cfg.User != "" || cfg.Password != "" {
			return nil, errors.New("client: Token and User/Password (Basic auth) are both set: " +
				"a request carries one Authorization, give one of them")
		}
		if err := checkToken(cfg.Token); err != nil {
			return nil, err
		}
	}
	c := &Client{
		base:       &url.URL{Scheme: u.Scheme, Host: u.Host},
		http:       cfg.HTTPClient,
		minBackoff: cfg.MinBackoff,
		maxBackoff: cfg.MaxBackoff,
		attempts:   cfg.PublishAttempts,
	}
	if c.attempts <= 0 {
		c.attempts = DefaultPublishAttempts
	}
	if cfg.Token != "" {
		c.auth, c.token = "Bearer "+cfg.Token, true
	} else if cfg.Password != "" || cfg.User != "" {
		req := &http.Request{Header: http.Header{}}
		req.SetBasicAuth(cfg.User, cfg.Password)
		c.auth = req.Header.Get("Authorization")
	}
	if c.minBackoff <= 0 {
		c.minBackoff = DefaultMinBackoff
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = DefaultMaxBackoff
	}
	c.maxBackoff = max(c.maxBackoff, c.minBackoff)
	if c.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = max(cfg.MaxIdleConns, 0)
		if t.MaxIdleConns == 0 {
			t.MaxIdleConns = DefaultMaxIdleConns
		}
		t.MaxIdleConnsPerHost = t.MaxIdleConns
		t.MaxConnsPerHost = 0       // a subscription holds one each: no cap
		t.DisableCompression = true // bodies are verbatim messages
		c.http = &http.Client{Transport: t}
		c.ownsHTTP = true
	}
	return c, nil
}

// URL returns the server's URL, without user info.
func (c *Client) URL() string { return c.base.String() }

// Close closes the idle connections of the Client's own transport. Live
// Subscriptions are not affected: end them with their context or Close.
func (c *Client) Close() error {
	if c.ownsHTTP {
		c.http.CloseIdleConnections()
	}
	return nil
}

// backoff returns the wait before retry number attempt (0 for the first
// retry): MinBackoff doubled per attempt up to MaxBackoff, drawn from the
// upper half of that (jitter).
func (c *Client) backoff(attempt int) time.Duration {
	d := c.minBackoff
	for i := 0; i < attempt && d < c.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.maxBackoff)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d, or until ctx ends, and reports whether it waited it all.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// busPath is the escaped URL path of channel on the bus, as the server
// writes it in Content-Location: "/msgbus/a%20b/c". The root is "/msgbus/".
func busPath(channel string) string {
	return (&url.URL{Path: "/msgbus/" + channel}).EscapedPath()
}

// url returns the server's URL of channel on the bus.
func (c *Client) url(channel string) string {
	return c.urlAt("/msgbus/", channel, nil)
}

// urlAt returns the server's URL of channel under prefix ("/msgbus/",
// "/history/"), with query q (which may be nil).
func (c *Client) urlAt(prefix, channel string, q url.Values) string {
	u := *c.base
	u.Path = prefix + channel
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// channelOf turns a part's Content-Location back into a channel name.
func channelOf(location string) (string, bool) {
	rest, ok := strings.CutPrefix(location, "/msgbus/")
	if !ok {
		return "", false
	}
	name, err := url.PathUnescape(rest)
	return name, err == nil
}

// A StatusError is a server's refusal: the status it answered and the
// one-line reason it gave. A 401 matches ErrUnauthorized and a 403
// ErrForbidden, for errors.Is.
type StatusError struct {
	Op         string // "publish", "subscribe", "history", or a WebSocket pattern
	Path       string // the request's path, e.g. "/msgbus/news"
	StatusCode int    // e.g. 401
	Status     string // e.g. "401 Unauthorized"
	Reason     string // the first line of the server's answer, if any

	hint string // what to do about it, when the client knows
}

func (e *StatusError) Error() string {
	s := "client: " + e.Op + " " + e.Path + ": " + e.Status
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.hint != "" {
		s += ": " + e.hint
	}
	return s
}

// Is reports whether e is a 401 and target ErrUnauthorized, or a 403 and
// target ErrForbidden.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	}
	return false
}

// Temporary reports whether trying again later may succeed: the server
// was busy or shutting down (5xx), timed out (408) or asked to slow down
// (429). A Subscription reconnects after those and gives up on the others.
// Publish retries a 503 only, the answer of a server that took nothing and
// asks to be asked again.
func (e *StatusError) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests
}

// statusError reads the reason from a refused response's body. When the
// reason says nothing of a token (msgbus's own reasons do; a proxy's or an
// older server's may not), it adds what to do about a refused one.
func (c *Client) statusError(op, path string, resp *http.Response) *StatusError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	reason, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	status := resp.Status
	if status == "" {
		status = fmt.Sprint(resp.StatusCode)
	}
	if strings.HasPrefix(strings.ToLower(reason), "<") {
		reason = "" // an HTML error page says nothing the status does not
	}
	e := &StatusError{Op: op, Path: path, StatusCode: resp.StatusCode, Status: status, Reason: reason}
	if !strings.Contains(strings.ToLower(reason), "token") {
		e.hint = c.authHint(op, resp)
	}
	return e
}

// opError wraps a transport error with what the client was doing. The
// *url.Error that net/http returns repeats the method and full URL, so
// its inner error is what is kept.
func opError(op, path string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &OpError{Op: op, Path: path, Err: err}
}

// An OpError is a failure to reach the server or to read its answer.
type OpError struct {
	Op   string // "publish", "subscribe", "history", or a WebSocket pattern
	Path string // the request's path
	Err  error
}

func (e *OpError) Error() string { return "client: " + e.Op + " " + e.Path + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }
