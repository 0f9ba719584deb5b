package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/msgbus/msgbus/multipart"
)

// ErrClosed is what Next returns after Close.
var ErrClosed = errors.New("client: subscription closed")

// A Message is one message a Subscription received.
type Message struct {
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
	// ID is the message's id on the server when the stream carries it. The
	// multipart stream does not (the id is in the publisher's answer only),
	// so on a Subscription it is always zero.
	ID uint64
}

// SubscribeOptions adjust a subscription. The zero value receives every
// message, in a Body of its own.
type SubscribeOptions struct {
	// Type keeps only messages whose type matches these patterns: a comma-
	// separated list of globs with * and ?, where an entry starting with !
	// excludes ("text/*,image/*", "!image/*,*"). Empty means every type.
	// The server filters; the patterns are its ?type= parameter.
	Type string
	// Sender keeps only messages from matching senders, with the same
	// patterns (the ?sender= parameter). Empty means every sender.
	Sender string
	// ReuseBody makes every Message's Body share one buffer, valid only
	// until the next call to Next, so that receiving costs no allocation
	// per message. For readers that are done with a body before asking for
	// the next (load tools, decoders).
	ReuseBody bool
	// OnReconnect, when set, is called (on the goroutine calling Next)
	// each time the stream broke and the subscription is about to wait
	// before reconnecting: err says why, wait for how long.
	OnReconnect func(err error, wait time.Duration)
	// OnReconnected, when set, is called (on the goroutine calling Next)
	// once a broken stream is back, before the first message it brings:
	// attempts is how many connections it took (1 when the first one
	// succeeded), down how long the subscription was without a stream.
	// Each OnReconnected follows one or more OnReconnect calls.
	OnReconnected func(attempts int, down time.Duration)
}

// A Subscription is a live stream of the messages of one channel and the
// channels below it. Read it with Next from one goroutine; Close may be
// called from any.
//
// When the stream breaks (the server restarted, the network failed, the
// server dropped a subscriber that fell too far behind), Next reconnects by
// itself, waiting between attempts with backoff and jitter (see Config).
// Messages published while it was disconnected are not received.
type Subscription struct {
	c       *Client
	channel string
	path    string // for errors: "/msgbus/news"
	url     string
	opts    SubscribeOptions
	ctx     context.Context
	cancel  context.CancelCauseFunc

	resp    *http.Response // nil while disconnected
	r       *multipart.Reader
	reason  error     // why the last stream ended
	attempt int       // reconnect attempts since the last good connection
	brokeAt time.Time // when the last stream ended
	err     error     // sticky: the subscription ended

	lastLoc, lastChannel string // the last Content-Location, decoded
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
	s := &Subscription{c: c, channel: channel, path: busPath(channel)}
	if opts != nil {
		s.opts = *opts
	}
	s.url = c.url(channel)
	q := url.Values{}
	if s.opts.Type != "" {
		q.Set("type", s.opts.Type)
	}
	if s.opts.Sender != "" {
		q.Set("sender", s.opts.Sender)
	}
	if len(q) > 0 {
		s.url += "?" + q.Encode()
	}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	if err := s.connect(); err != nil {
		s.cancel(err)
		return nil, err
	}
	return s, nil
}

// Channel returns the subscribed channel.
func (s *Subscription) Channel() string { return s.channel }

// Next returns the next message, reconnecting as needed. It blocks until a
// message arrives or the subscription ends, and then returns the same error
// from every call: ctx's cause once the Subscribe context is cancelled
// (context.Canceled), ErrClosed after Close, or the *StatusError of a
// reconnect the server refused for good (4xx other than 408 and 429).
func (s *Subscription) Next() (Message, error) {
	for {
		if s.err != nil {
			return Message{}, s.err
		}
		if s.r == nil {
			if err := s.reconnect(); err != nil {
				s.end(err)
				continue
			}
		}
		p, err := s.r.NextPart()
		if err == nil {
			return s.message(p), nil
		}
		s.hangUp()
		if s.ctx.Err() != nil {
			s.end(context.Cause(s.ctx))
			continue
		}
		s.brokeAt = time.Now()
		if errors.Is(err, io.EOF) {
			err = errors.New("the server ended the stream")
		}
		s.reason = &OpError{Op: "subscribe", Path: s.path, Err: err}
	}
}

// Close ends the subscription and its connection. Next then returns
// ErrClosed. Close is safe to call from any goroutine, more than once.
func (s *Subscription) Close() error {
	s.cancel(ErrClosed)
	return nil
}

// end makes err the subscription's last word.
func (s *Subscription) end(err error) {
	s.err = err
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
// makes it the current one.
func (s *Subscription) connect() error {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return opError("subscribe", s.path, err)
	}
	req.Header.Set("Accept", "multipart/x-mixed-replace")
	if s.c.auth != "" {
		req.Header.Set("Authorization", s.c.auth)
	}
	resp, err := s.c.http.Do(req)
	if err != nil {
		if s.ctx.Err() != nil {
			return context.Cause(s.ctx)
		}
		return opError("subscribe", s.path, err)
	}
	if resp.StatusCode != http.StatusOK {
		serr := statusError("subscribe", s.path, resp)
		resp.Body.Close()
		return serr
	}
	ct := resp.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/x-mixed-replace" {
		resp.Body.Close()
		return &OpError{Op: "subscribe", Path: s.path,
			Err: fmt.Errorf("the answer is %q, not a multipart/x-mixed-replace stream (is this a msgbus server?)", ct)}
	}
	boundary := params["boundary"]
	if boundary == "" {
		boundary = multipart.Boundary
	}
	s.resp, s.r = resp, multipart.NewReader(resp.Body, boundary)
	return nil
}

// reconnect waits and connects until it succeeds, the context ends, or the
// server refuses for good.
func (s *Subscription) reconnect() error {
	for {
		wait := s.backoff()
		if s.opts.OnReconnect != nil {
			s.opts.OnReconnect(s.reason, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return context.Cause(s.ctx)
		case <-t.C:
		}
		err := s.connect()
		if err == nil {
			if s.opts.OnReconnected != nil {
				s.opts.OnReconnected(s.attempt, time.Since(s.brokeAt))
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

// backoff returns the next wait: MinBackoff doubled per attempt up to
// MaxBackoff, drawn from the upper half of that.
func (s *Subscription) backoff() time.Duration {
	d := s.c.minBackoff
	for i := 0; i < s.attempt && d < s.c.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.c.maxBackoff)
	s.attempt++
	return d/2 + rand.N(d/2+1)
}

// message turns a part into a Message.
func (s *Subscription) message(p *multipart.Part) Message {
	m := Message{Channel: s.channel, Type: p.Header.ContentType, Sender: p.Header.From, Body: p.Body}
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
