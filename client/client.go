// Package client is the Go client of a msgbus server: Publish sends a
// message to a channel, Subscribe reads a channel's multipart stream as
// Messages and reconnects when the stream breaks.
//
// A Client talks to one server. It is safe for concurrent use; create one
// and share it. Publishes reuse a pool of keep-alive connections; each
// Subscription holds a connection of its own.
package client

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 10 * time.Second
	DefaultMaxIdleConns = 64
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
	MinBackoff, MaxBackoff time.Duration
}

// A Client publishes to and subscribes at one msgbus server.
type Client struct {
	base       *url.URL // scheme and host only
	auth       string   // "Basic ..." or ""
	http       *http.Client
	ownsHTTP   bool
	minBackoff time.Duration
	maxBackoff time.Duration
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
	c := &Client{
		base:       &url.URL{Scheme: u.Scheme, Host: u.Host},
		http:       cfg.HTTPClient,
		minBackoff: cfg.MinBackoff,
		maxBackoff: cfg.MaxBackoff,
	}
	if cfg.Password != "" || cfg.User != "" {
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

// busPath is the escaped URL path of channel on the bus, as the server
// writes it in Content-Location: "/msgbus/a%20b/c". The root is "/msgbus/".
func busPath(channel string) string {
	return (&url.URL{Path: "/msgbus/" + channel}).EscapedPath()
}

// url returns the server's URL of channel, with query.
func (c *Client) url(channel string) string {
	u := *c.base
	u.Path = "/msgbus/" + channel
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
// one-line reason it gave.
type StatusError struct {
	Op         string // "publish" or "subscribe"
	Path       string // the request's path, e.g. "/msgbus/news"
	StatusCode int    // e.g. 401
	Status     string // e.g. "401 Unauthorized"
	Reason     string // the first line of the server's answer, if any
}

func (e *StatusError) Error() string {
	s := "client: " + e.Op + " " + e.Path + ": " + e.Status
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

// Temporary reports whether trying again later may succeed: the server
// was busy or shutting down (5xx), timed out (408) or asked to slow down
// (429). A Subscription reconnects after those and gives up on the others.
func (e *StatusError) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests
}

// statusError reads the reason from a refused response's body.
func statusError(op, path string, resp *http.Response) *StatusError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	reason, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	status := resp.Status
	if status == "" {
		status = fmt.Sprint(resp.StatusCode)
	}
	if strings.HasPrefix(strings.ToLower(reason), "<") {
		reason = "" // an HTML error page says nothing the status does not
	}
	return &StatusError{Op: op, Path: path, StatusCode: resp.StatusCode, Status: status, Reason: reason}
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
	Op   string // "publish" or "subscribe"
	Path string // the request's path
	Err  error
}

func (e *OpError) Error() string { return "client: " + e.Op + " " + e.Path + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }
