package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgbus/msgbus/multipart"
)

// A Message is one message a Subscription, a WebSocket receiver or
// History gave.
type Message struct {
	// ID is the message's id on the server (a part's Msgbus-Id, a history
	// message's id): an opaque token to store and give back, as
	// SubscribeOptions.Since or HistoryOptions.Before and After; never to
	// parse or order. WebSocket frames carry the body alone, so a message
	// of a Subscriber, Puller or Peer has none; nor has a message from a
	// server older than ids.
	ID string
	// Channel is the channel it was published to: the subscribed channel,
	// or one below it (its part's Content-Location).
	Channel string
	// Type is its media type, as published.
	Type string
	// Sender is the publisher's user name (the part's From), empty for an
	// anonymous publisher.
	Sender string
	// Body is the message, verbatim. It belongs to the caller unless the
	// subscription was made with SubscribeOptions.ReuseBody.
	Body []byte
	// Time is when the server accepted the message. Only History knows it:
	// on a message from a stream it is zero.
	Time time.Time
}

// SubscribeOptions adjust a subscription. The zero value receives every
// message published from now on, in a Body of its own.
type SubscribeOptions struct {
	// Type keeps only messages whose type matches these patterns: a comma-
	// separated list of globs with * and ?, where an entry starting with !
	// excludes ("text/*,image/*", "!image/*,*"). Empty means every type.
	// The server filters; the patterns are its ?type= parameter.
	Type string
	// Sender keeps only messages from matching senders, with the same
	// patterns (the ?sender= parameter). Empty means every sender.
	Sender string
	// Since resumes after the message with this id (a Message.ID kept from
	// an earlier subscription, or one from History or Publish): the server
	// first replays the messages after it that it still retains, then goes
	// on live, with no gap and no duplicate (?since=). Recovered then says
	// whether nothing was missing. Empty means from now on.
	Since string
	// Last makes the server first replay the newest Last retained messages
	// (?last=), as a chat shows recent lines on joining. Ignored when Since
	// is set. Zero means none.
	Last int
	// ReuseBody makes every Message's Body share one buffer, valid only
	// until the next call to Next, so that receiving costs no allocation
	// per message but its id. For readers that are done with a body before
	// asking for the next (load tools, decoders).
	ReuseBody bool
	// OnReconnect, when set, is called each time the stream broke and the
	// subscription is about to wait before reconnecting: err says why, wait
	// for how long.
	OnReconnect func(err error, wait time.Duration)
	// OnReconnected, when set, is called once a broken stream is back,
	// before the first message it brings, with how it came back (see
	// Reconnected). Each OnReconnected follows one or more OnReconnect
	// calls.
	//
	// Both are called one at a time on the subscription's own goroutine,
	// which reads while a Next waits (or after a Next whose ctx ended, for
	// the next one); they must not call Next.
	OnReconnected func(Reconnected)
}

// Reconnected says how a Subscription's broken stream came back.
type Reconnected struct {
	// Attempts is how many connections it took (1 when the first one
	// succeeded).
	Attempts int
	// Down is how long the subscription was without a stream.
	Down time.Duration
	// Recovered reports whether the subscription missed nothing while it
	// was down: it resumed after the last message it had received and the
	// server still retained everything since (Msgbus-Recovered: true).
	// False means some messages may be missing: they were older than the
	// server's history, the server restarted without a durable store, it
	// does not keep history, or the subscription had received no message
	// yet and was given no Since, so it had no id to resume from.
	Recovered bool
}

// A Subscription is a live stream of the messages of one channel and the
// channels below it. Read it with Next from one goroutine; Close, LastID
// and Recovered may be called from any.
//
// When the stream breaks (the server restarted, the network failed, the
// server dropped a subscriber that fell too far behind), the subscription
// reconnects by itself, waiting between attempts with backoff and jitter
// (see Config), and resumes after the last message it received: the
// server replays what it still retains of what was published meanwhile,
// so nothing is missed within the server's history, and Recovered (and
// OnReconnected) say when something may have been.
type Subscription struct {
	c       *Client
	channel string
	path    string     // for errors: "/msgbus/news"
	query   url.Values // the filters; the resume parameters are added per connection
	opts    SubscribeOptions
	ctx     context.Context
	cancel  context.CancelCauseFunc

	// The stream, owned by the pump goroutine once Subscribe has returned.
	resp    *http.Response // nil while disconnected
	r       *multipart.Reader
	reason  error     // why the last stream ended
	attempt int       // reconnect attempts since the last good connection
	brokeAt time.Time // when the last stream ended

	lastLoc, lastChannel string // the last Content-Location, decoded

	// Between Next and the pump: Next asks for one message on demand
	// (after the previous one was taken, so a reused Body stays valid until
	// the next Next), the pump answers on results, or ends: then final
	// holds why, written before done is closed.
	demand  chan struct{}
	results chan Message
	done    chan struct{}
	final   error
	inHook  atomic.Bool // the pump is in OnReconnect or OnReconnected

	// Owned by the goroutine calling Next.
	pending bool  // a demand is out
	err     error // sticky: the subscription ended

	mu        sync.Mutex // guards lastID and recovered
	lastID    string
	recovered bool
}

// Subscribe subscribes to channel ("" is the root: every channel) and
// returns once the server has registered the subscription, so a message
// published after Subscribe returns is received. opts may be nil.
//
// The first connection's failure is returned as is: a *StatusError when
// the server refused (such as "client: subscribe /msgbus/x: 401
// Unauthorized (...)"), an *OpError when it could not be reached. After
// that, the subscription reconnects by itself until ctx is cancelled or
// Close is called. Either one ends it: Next then returns ctx's cause
// (context.Canceled) or ErrClosed.
func (c *Client) Subscribe(ctx context.Context, channel string, opts *SubscribeOptions) (*Subscription, error) {
	s := &Subscription{
		c: c, channel: channel, path: busPath(channel), query: url.Values{},
		demand: make(chan struct{}, 1), results: make(chan Message, 1), done: make(chan struct{}),
	}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Type != "" {
		s.query.Set("type", s.opts.Type)
	}
	if s.opts.Sender != "" {
		s.query.Set("sender", s.opts.Sender)
	}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	if _, err := s.connect(true); err != nil {
		s.cancel(err)
		return nil, err
	}
	go s.pump()
	return s, nil
}

// Channel returns the subscribed channel.
func (s *Subscription) Channel() string { return s.channel }

// LastID returns the id of the last message Next returned, or, before the
// first, the Since the subscription was made with: where it would resume.
// Keep it to resume later with SubscribeOptions.Since, after this
// subscription has ended (even in another process).
func (s *Subscription) LastID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastID == "" {
		return s.opts.Since
	}
	return s.lastID
}

// Recovered reports whether the subscription's current stream missed
// nothing: after Subscribe, whether the server still had every message
// after SubscribeOptions.Since (true when no Since was given); after a
// reconnect, as Reconnected.Recovered.
func (s *Subscription) Recovered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recovered
}

// Next returns the next message, as the subscription reconnects as
// needed. It blocks until a message arrives, ctx ends, or the subscription
// ends. When ctx ends, Next returns ctx's cause and the subscription goes
// on: a later Next gets the message that was on its way. When the
// subscription ends, Next returns the same error from every call: the
// Subscribe context's cause once it is cancelled (context.Canceled),
// ErrClosed after Close, or the *StatusError of a reconnect the server
// refused for good (4xx other than 408 and 429): such as a 401, which
// matches ErrUnauthorized, when Config.Token has expired (the server ends
// a stream when its token expires, and refuses the reconnect).
func (s *Subscription) Next(ctx context.Context) (Message, error) {
	if s.err != nil {
		return Message{}, s.err
	}
	if s.ctx.Err() != nil {
		// Ended: say why, even if a message was on its way.
		<-s.done
		s.err = s.final
		return Message{}, s.err
	}
	if err := ctx.Err(); err != nil {
		return Message{}, context.Cause(ctx)
	}
	if !s.pending {
		s.pending = true
		s.demand <- struct{}{}
	}
	select {
	case m := <-s.results:
		s.pending = false
		if m.ID != "" {
			// Taken: a reconnect resumes after it. The pump reads lastID
			// only after the next demand.
			s.mu.Lock()
			s.lastID = m.ID
			s.mu.Unlock()
		}
		return m, nil
	case <-s.done:
		s.err = s.final
		return Message{}, s.err
	case <-ctx.Done():
		return Message{}, context.Cause(ctx)
	}
}

// Close ends the subscription and closes its connection. Next then returns
// ErrClosed. Close is safe to call from any goroutine, more than once.
func (s *Subscription) Close() error {
	s.cancel(ErrClosed)
	if !s.inHook.Load() { // a hook calling Close would wait for itself
		<-s.done
	}
	return nil
}

// pump is the subscription's goroutine: it reads one message per demand,
// reconnecting as needed, until the subscription ends.
func (s *Subscription) pump() {
	defer close(s.done)
	for {
		select {
		case <-s.demand:
		case <-s.ctx.Done():
			s.end(context.Cause(s.ctx))
			return
		}
		m, err := s.read()
		if err != nil {
			s.end(err)
			return
		}
		s.results <- m // never blocks: one demand, one answer
	}
}

// read returns the next message, reconnecting as needed.
func (s *Subscription) read() (Message, error) {
	for {
		if s.ctx.Err() != nil {
			return Message{}, context.Cause(s.ctx)
		}
		if s.r == nil {
			if err := s.reconnect(); err != nil {
				return Message{}, err
			}
		}
		p, err := s.r.NextPart()
		if err == nil {
			return s.message(p), nil
		}
		s.hangUp()
		if s.ctx.Err() != nil {
			return Message{}, context.Cause(s.ctx)
		}
		s.brokeAt = time.Now()
		if errors.Is(err, io.EOF) {
			err = errors.New("the server ended the stream")
		}
		s.reason = &OpError{Op: "subscribe", Path: s.path, Err: err}
	}
}

// end makes err the subscription's last word.
func (s *Subscription) end(err error) {
	s.final = err
	s.hangUp()
	s.cancel(err)
}

// hangUp closes the current stream, if any.
func (s *Subscription) hangUp() {
	if s.resp != nil {
		s.resp.Body.Close()
		s.resp, s.r = nil, nil
	}
}

// connect makes one request and, when the server answers with a stream,
// makes it the current one and reports whether it recovered everything.
// It resumes after the last message received, else after opts.Since,
// else asks for opts.Last.
func (s *Subscription) connect(first bool) (recovered bool, err error) {
	q := s.query
	since := s.LastID()
	if since != "" || s.opts.Last > 0 {
		q = url.Values{}
		for k, v := range s.query {
			q[k] = v
		}
		if since != "" {
			q.Set("since", since)
		} else {
			q.Set("last", strconv.Itoa(s.opts.Last))
		}
	}
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, s.c.urlAt("/msgbus/", s.channel, q), nil)
	if err != nil {
		return false, opError("subscribe", s.path, err)
	}
	req.Header.Set("Accept", "multipart/x-mixed-replace")
	if s.c.auth != "" {
		req.Header.Set("Authorization", s.c.auth)
	}
	resp, err := s.c.http.Do(req)
	if err != nil {
		if s.ctx.Err() != nil {
			return false, context.Cause(s.ctx)
		}
		return false, opError("subscribe", s.path, err)
	}
	if resp.StatusCode != http.StatusOK {
		serr := s.c.statusError("subscribe", s.path, resp)
		resp.Body.Close()
		return false, serr
	}
	ct := resp.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/x-mixed-replace" {
		resp.Body.Close()
		return false, &OpError{Op: "subscribe", Path: s.path,
			Err: fmt.Errorf("the answer is %q, not a multipart/x-mixed-replace stream (is this a msgbus server?)", ct)}
	}
	boundary := params["boundary"]
	if boundary == "" {
		boundary = multipart.Boundary
	}
	s.resp, s.r = resp, multipart.NewReader(resp.Body, boundary)
	recovered = recoveredFrom(resp.Header, since != "", first)
	s.mu.Lock()
	s.recovered = recovered
	s.mu.Unlock()
	return recovered, nil
}

// recoveredFrom reads a (re)connection's Msgbus-Recovered. Without it (a
// server older than history, or no resume asked): a resume was not
// honoured, and a first connection without one had nothing to recover,
// while a reconnection without one had no id to resume from.
func recoveredFrom(h http.Header, resumed, first bool) bool {
	if v := h.Get("Msgbus-Recovered"); v != "" {
		return v == "true"
	}
	return !resumed && first
}

// reconnect waits and connects until it succeeds, the context ends, or the
// server refuses for good.
func (s *Subscription) reconnect() error {
	for {
		wait := s.c.backoff(s.attempt)
		s.attempt++
		if s.opts.OnReconnect != nil {
			s.hook(func() { s.opts.OnReconnect(s.reason, wait) })
		}
		if !sleep(s.ctx, wait) {
			return context.Cause(s.ctx)
		}
		recovered, err := s.connect(false)
		if err == nil {
			if s.opts.OnReconnected != nil {
				r := Reconnected{Attempts: s.attempt, Down: time.Since(s.brokeAt), Recovered: recovered}
				s.hook(func() { s.opts.OnReconnected(r) })
			}
			s.attempt = 0
			return nil
		}
		if s.ctx.Err() != nil {
			return context.Cause(s.ctx)
		}
		var se *StatusError
		if errors.As(err, &se) && !se.Temporary() {
			return err
		}
		s.reason = err
	}
}

// hook calls one of the caller's hooks.
func (s *Subscription) hook(f func()) {
	s.inHook.Store(true)
	defer s.inHook.Store(false)
	f()
}

// message turns a part into a Message.
func (s *Subscription) message(p *multipart.Part) Message {
	m := Message{ID: p.Header.ID, Channel: s.channel, Type: p.Header.ContentType, Sender: p.Header.From, Body: p.Body}
	if loc := p.Header.ContentLocation; loc != "" {
		if loc != s.lastLoc {
			ch, ok := channelOf(loc)
			if !ok {
				ch = loc // not a bus path: say what the server said
			}
			s.lastLoc, s.lastChannel = loc, ch
		}
		m.Channel = s.lastChannel
	}
	if !s.opts.ReuseBody {
		m.Body = bytes.Clone(p.Body)
	}
	return m
}
