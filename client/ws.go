package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// The WebSocket patterns (server/PROTOCOL.md §4). Each is one WebSocket to the
// server, opened by a method of Client:
//
//	Bus   /bus/<topic>   a Peer sends to and receives from the other peers
//	Pub   /pub/<topic>   a Publisher sends into the channel hierarchy
//	Sub   /sub/<topic>   a Subscriber receives from it, like Subscribe
//	Push  /push/<topic>  a Pusher sends, each message to one puller
//	Pull  /pull/<topic>  a Puller receives its turn of the pushes
//
// They do not reconnect: when the server ends one (shutdown, too slow,
// backlog full), Send or Next returns a *CloseError that says why, and the
// caller opens a new one if it wants to go on. A frame carries the body
// alone, so a Message received over a WebSocket has no ID: a Subscriber
// that must resume by itself is better made with Subscribe.

// Defaults for the zero values of WSOptions.
const (
	DefaultWSReadTimeout = 90 * time.Second
)

// closeWait is how long Close waits for the server to answer its close
// frame before it drops the connection.
const closeWait = time.Second

// ErrConnClosed is ErrClosed, its old name for the WebSocket patterns.
//
// Deprecated: use ErrClosed, which every form returns after Close.
var ErrConnClosed = ErrClosed

// A FrameType says whether a WebSocket message is text or binary. The
// server gives a text frame the type "text/plain; charset=utf-8" and a
// binary frame "application/octet-stream"; it sends a message of a textual
// type (text/*, application/json, *+json) as a text frame and any other as
// a binary frame.
type FrameType int

// The frame types, with the values of RFC 6455's opcodes.
const (
	TextFrame   FrameType = websocket.TextMessage
	BinaryFrame FrameType = websocket.BinaryMessage
)

// The message types the server gives to WebSocket frames.
const (
	TextType   = "text/plain; charset=utf-8"
	BinaryType = "application/octet-stream"
)

// WSOptions adjust a WebSocket. The zero value (or nil) receives every
// message, without echo, and sends no Origin.
type WSOptions struct {
	// Type and Sender filter what a Bus Peer, a Subscriber or a Puller
	// receives, with the patterns of SubscribeOptions (?type= and ?sender=).
	// Empty means every message.
	Type, Sender string
	// Echo makes a Bus Peer receive its own messages too (?echo=1).
	Echo bool
	// Since and Last, for a Subscriber only, ask the server to replay
	// retained messages first, as SubscribeOptions.Since and Last do
	// (?since=, ?last=); Subscriber.Recovered then says whether nothing
	// after Since was missing. Frames carry no id, so the id to give Since
	// comes from elsewhere: History, a Published, or a Subscription.
	Since string
	Last  int
	// Origin is sent as the handshake's Origin header. A server run with
	// --allow-origin refuses a WebSocket without a matching Origin (401,
	// "Origin check failed"); a backend talking to such a server sets it to
	// an allowed origin. Empty sends none.
	Origin string
	// ReadTimeout is how long the connection may stay silent before it is
	// taken for dead. The server pings every 30 seconds, and each frame,
	// ping included, restarts the clock. Zero means DefaultWSReadTimeout
	// (90s).
	ReadTimeout time.Duration
}

// A CloseError is the server's close frame: the connection ended with Code
// (RFC 6455 §7.4) for the reason Text.
type CloseError struct {
	Op   string // the pattern: "bus", "pub", "sub", "push" or "pull"
	Path string // e.g. "/push/jobs"
	Code int    // e.g. 1013
	Text string // the server's reason, e.g. "push backlog full: ..."
}

func (e *CloseError) Error() string {
	s := "client: " + e.Op + " " + e.Path + ": closed " + strconv.Itoa(e.Code)
	if t := e.Text; t != "" {
		return s + " (" + t + ")"
	} else if t := closeCodeNames[e.Code]; t != "" {
		return s + " (" + t + ")"
	}
	return s
}

// Temporary reports whether opening the connection again may succeed:
// the server was shutting down (1001), dropped a subscriber that fell
// behind (1008), or had no room in a push backlog (1013).
func (e *CloseError) Temporary() bool {
	return e.Code == websocket.CloseGoingAway || e.Code == websocket.ClosePolicyViolation ||
		e.Code == websocket.CloseTryAgainLater
}

var closeCodeNames = map[int]string{
	websocket.CloseNormalClosure:           "normal closure",
	websocket.CloseGoingAway:               "going away",
	websocket.CloseProtocolError:           "protocol error",
	websocket.CloseUnsupportedData:         "unsupported data",
	websocket.CloseNoStatusReceived:        "no status",
	websocket.CloseAbnormalClosure:         "abnormal closure",
	websocket.CloseInvalidFramePayloadData: "invalid payload",
	websocket.ClosePolicyViolation:         "policy violation",
	websocket.CloseMessageTooBig:           "message too big",
	websocket.CloseInternalServerErr:       "internal server error",
	websocket.CloseTryAgainLater:           "try again later",
}

// A Peer is a member of a bus topic: what it sends reaches every other peer
// of the topic (and itself with WSOptions.Echo), and it receives what they
// send and what is POSTed to /bus/<topic>. Send and Next may be used from
// different goroutines; Send is safe for concurrent use.
type Peer struct{ c *wsConn }

// Bus joins the bus topic as a Peer. The bus has no hierarchy: a peer of
// "a" does not hear "a/b". Bus returns once the server has registered the
// peer, so nothing sent after it returns is missed. opts may be nil.
//
// A refused handshake is a *StatusError ("client: bus /bus/x: 401
// Unauthorized (...)"); an unreachable server, an *OpError. The Peer
// lives until ctx is cancelled or Close is called.
func (c *Client) Bus(ctx context.Context, topic string, opts *WSOptions) (*Peer, error) {
	w, err := c.dialWS(ctx, "bus", topic, opts, true)
	if err != nil {
		return nil, err
	}
	return &Peer{w}, nil
}

// Topic returns the bus topic.
func (p *Peer) Topic() string { return p.c.topic }

// Send sends body to the other peers as one message of frame type t.
func (p *Peer) Send(ctx context.Context, t FrameType, body []byte) error {
	return p.c.send(ctx, t, body)
}

// Next returns the next message another peer sent. See Subscriber.Next.
func (p *Peer) Next(ctx context.Context) (Message, error) { return p.c.next(ctx) }

// Close leaves the bus. See Publisher.Close.
func (p *Peer) Close() error { return p.c.Close() }

// A Publisher sends messages into a channel, as Publish does: a subscriber
// of the channel or of one above it receives them, over /sub/ or
// /msgbus/ alike. It receives nothing. Send is safe for concurrent use.
type Publisher struct{ c *wsConn }

// Pub opens a Publisher to channel. opts may be nil; only its Origin and
// ReadTimeout apply. Errors are as Bus's.
func (c *Client) Pub(ctx context.Context, channel string, opts *WSOptions) (*Publisher, error) {
	w, err := c.dialWS(ctx, "pub", channel, opts, false)
	if err != nil {
		return nil, err
	}
	return &Publisher{w}, nil
}

// Topic returns the channel.
func (p *Publisher) Topic() string { return p.c.topic }

// Send publishes body as one message of frame type t: a TextFrame (body
// must be UTF-8) becomes a message of TextType, a BinaryFrame one of
// BinaryType.
//
// A nil error means the frame was written, not that the server took it.
// Once the connection has ended, Send returns why: a *CloseError from the
// server, an *OpError for a broken connection, the cause of ctx given to
// Pub, or ErrClosed after Close. If ctx ends while the frame is being
// written, the connection is dropped, as half a frame cannot be taken
// back.
func (p *Publisher) Send(ctx context.Context, t FrameType, body []byte) error {
	return p.c.send(ctx, t, body)
}

// Close sends a close frame, waits briefly for the server's answer, and
// closes the connection. The server handles frames in order, so when it
// answers, everything sent before has been handled: Close returns nil, or
// the *CloseError of a server that ended the connection for a reason (such
// as a push into a full backlog). Later calls return the same.
func (p *Publisher) Close() error { return p.c.Close() }

// A Subscriber receives the messages of a channel and of the channels below
// it, like a Subscription. A WebSocket frame does not carry the id, channel,
// type or sender of its message: every Message has the subscribed channel,
// TextType or BinaryType, no Sender and no ID.
type Subscriber struct{ c *wsConn }

// Sub subscribes to channel ("" is the root: every channel) with the
// filters of opts, which may be nil. It returns once the server has
// registered the subscription. Errors are as Bus's.
func (c *Client) Sub(ctx context.Context, channel string, opts *WSOptions) (*Subscriber, error) {
	w, err := c.dialWS(ctx, "sub", channel, opts, true)
	if err != nil {
		return nil, err
	}
	return &Subscriber{w}, nil
}

// Recovered reports whether the server still had every message after
// WSOptions.Since (the handshake's Msgbus-Recovered); true when no Since
// was given.
func (s *Subscriber) Recovered() bool { return s.c.recovered }

// Topic returns the subscribed channel.
func (s *Subscriber) Topic() string { return s.c.topic }

// Next returns the next message. It blocks until one arrives, ctx ends
// (returning ctx's cause; the connection stays open), or the connection
// ends: then it returns why, as Publisher.Send does, from every call.
// Next is for one goroutine at a time.
func (s *Subscriber) Next(ctx context.Context) (Message, error) { return s.c.next(ctx) }

// Close unsubscribes and closes the connection. See Publisher.Close.
func (s *Subscriber) Close() error { return s.c.Close() }

// A Pusher sends messages to the pullers of a topic, each message to one
// of them in turn. While no puller is connected, the server keeps messages
// in a bounded backlog for the first one to come; when the backlog is
// full, it closes the Pusher with code 1013, which Send or Close returns
// as a *CloseError whose Temporary reports true. Send is safe for
// concurrent use.
type Pusher struct{ c *wsConn }

// Push opens a Pusher to topic. opts may be nil; only its Origin and
// ReadTimeout apply. Errors are as Bus's.
func (c *Client) Push(ctx context.Context, topic string, opts *WSOptions) (*Pusher, error) {
	w, err := c.dialWS(ctx, "push", topic, opts, false)
	if err != nil {
		return nil, err
	}
	return &Pusher{w}, nil
}

// Topic returns the topic.
func (p *Pusher) Topic() string { return p.c.topic }

// Send pushes body as one message. See Publisher.Send: a push refused for
// a full backlog is reported by the close that follows, on a later Send or
// on Close.
func (p *Pusher) Send(ctx context.Context, t FrameType, body []byte) error {
	return p.c.send(ctx, t, body)
}

// Close closes the Pusher. A nil error means every message sent was taken;
// see Publisher.Close.
func (p *Pusher) Close() error { return p.c.Close() }

// A Puller receives its turn of the messages pushed to a topic: pullers
// take them round robin, in the order they connected. A Message is as a
// Subscriber's.
type Puller struct{ c *wsConn }

// Pull joins the pullers of topic. The first puller to arrive receives
// the backlog pushed while none was connected. opts may be nil. Errors are
// as Bus's.
func (c *Client) Pull(ctx context.Context, topic string, opts *WSOptions) (*Puller, error) {
	w, err := c.dialWS(ctx, "pull", topic, opts, true)
	if err != nil {
		return nil, err
	}
	return &Puller{w}, nil
}

// Topic returns the topic.
func (p *Puller) Topic() string { return p.c.topic }

// Next returns the next message. See Subscriber.Next.
func (p *Puller) Next(ctx context.Context) (Message, error) { return p.c.next(ctx) }

// Close leaves the rotation; the server hands what it had queued for this
// puller and not yet written to the others. See Publisher.Close.
func (p *Puller) Close() error { return p.c.Close() }

// wsConn is one WebSocket of any pattern. A reader goroutine owns the read
// side for the connection's whole life: it answers pings, notices the
// server's close frame even on a connection that only sends, and hands
// data frames to next when the pattern receives.
type wsConn struct {
	op, path, topic string
	conn            *websocket.Conn
	receives        bool
	readTimeout     time.Duration

	wmu      sync.Mutex    // one writer of data frames at a time
	msgs     chan Message  // the reader's frames, for next
	quit     chan struct{} // closed when no one will take msgs again
	done     chan struct{} // closed when the reader has returned
	stopCtx  func() bool   // ends the context watch
	quitOnce sync.Once

	mu     sync.Mutex
	err    error       // why the connection ended; the first reason wins
	closed *CloseError // the server's close frame, unless an echo of ours
	sent   int         // the code of our close frame, once sent

	recovered bool // the handshake's Msgbus-Recovered, see recoveredFrom
}

// dialWS opens the WebSocket of pattern op on topic.
func (c *Client) dialWS(ctx context.Context, op, topic string, opts *WSOptions, receives bool) (*wsConn, error) {
	var o WSOptions
	if opts != nil {
		o = *opts
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultWSReadTimeout
	}
	u := *c.base
	u.Scheme = "ws"
	if c.base.Scheme == "https" {
		u.Scheme = "wss"
	}
	u.Path = "/" + op + "/" + topic
	q := url.Values{}
	if receives && o.Type != "" {
		q.Set("type", o.Type)
	}
	if receives && o.Sender != "" {
		q.Set("sender", o.Sender)
	}
	if op == "bus" && o.Echo {
		q.Set("echo", "1")
	}
	resumed := op == "sub" && o.Since != ""
	if resumed {
		q.Set("since", o.Since)
	} else if op == "sub" && o.Last > 0 {
		q.Set("last", strconv.Itoa(o.Last))
	}
	u.RawQuery = q.Encode()
	path := u.EscapedPath()

	h := http.Header{}
	if c.auth != "" {
		h.Set("Authorization", c.auth)
	}
	if o.Origin != "" {
		h.Set("Origin", o.Origin)
	}
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: 10 * time.Second,
		TLSClientConfig:  c.tlsConfig(),
	}
	conn, resp, err := d.DialContext(ctx, u.String(), h)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, c.statusError(op, path, resp)
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, opError(op, path, err)
	}
	w := &wsConn{
		op: op, path: path, topic: topic, conn: conn, receives: receives, readTimeout: o.ReadTimeout,
		msgs: make(chan Message), quit: make(chan struct{}), done: make(chan struct{}),
		recovered: recoveredFrom(resp.Header, resumed, true),
	}
	conn.SetPingHandler(w.pong)
	w.stopCtx = context.AfterFunc(ctx, func() { w.abort(context.Cause(ctx)) })
	go w.read()
	return w, nil
}

// tlsConfig is the TLS configuration of the Client's HTTP transport, so a
// Client made for a server with a private CA dials its WebSockets alike.
func (c *Client) tlsConfig() *tls.Config {
	if t, ok := c.http.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
		return t.TLSClientConfig.Clone()
	}
	return nil
}

// pong answers a ping, and counts it as a sign of life.
func (w *wsConn) pong(data string) error {
	w.conn.SetReadDeadline(time.Now().Add(w.readTimeout))
	err := w.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(closeWait))
	var ne net.Error
	if err == websocket.ErrCloseSent || errors.As(err, &ne) && ne.Timeout() {
		return nil // as gorilla's own handler: the close or the next read says more
	}
	return err
}

// read is the reader goroutine.
func (w *wsConn) read() {
	defer close(w.done)
	for {
		w.conn.SetReadDeadline(time.Now().Add(w.readTimeout))
		typ, body, err := w.conn.ReadMessage()
		if err != nil {
			err = w.readError(err)
			w.mu.Lock()
			if ce, ok := err.(*CloseError); ok && ce.Code != w.sent {
				w.closed = ce
			}
			w.mu.Unlock()
			w.setErr(err)
			w.conn.Close()
			return
		}
		if !w.receives {
			continue // the server sends none; ignore what it might
		}
		m := Message{Channel: w.topic, Type: BinaryType, Body: body}
		if typ == websocket.TextMessage {
			m.Type = TextType
		}
		select {
		case w.msgs <- m:
		case <-w.quit: // closing: read on, for the server's close frame
		}
	}
}

// readError says why reading ended.
func (w *wsConn) readError(err error) error {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return &CloseError{Op: w.op, Path: w.path, Code: ce.Code, Text: ce.Text}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		err = fmt.Errorf("no frame from the server for %v: the connection is dead", w.readTimeout)
	}
	return &OpError{Op: w.op, Path: w.path, Err: err}
}

// setErr records why the connection ended, unless a reason is known.
func (w *wsConn) setErr(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *wsConn) ended() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *wsConn) stopReceiving() { w.quitOnce.Do(func() { close(w.quit) }) }

// abort ends the connection at once, for err: its context ended.
func (w *wsConn) abort(err error) {
	w.setErr(err)
	w.stopReceiving()
	w.sendClose(websocket.CloseGoingAway, 100*time.Millisecond)
	w.conn.Close()
}

func (w *wsConn) next(ctx context.Context) (Message, error) {
	if err := ctx.Err(); err != nil {
		return Message{}, context.Cause(ctx)
	}
	select {
	case m := <-w.msgs:
		return m, nil
	case <-w.done:
		return Message{}, w.ended()
	case <-w.quit:
		return Message{}, w.ended()
	case <-ctx.Done():
		return Message{}, context.Cause(ctx)
	}
}

func (w *wsConn) send(ctx context.Context, t FrameType, body []byte) error {
	if t != TextFrame && t != BinaryFrame {
		return &OpError{Op: w.op, Path: w.path, Err: fmt.Errorf("frame type %d: want TextFrame or BinaryFrame", t)}
	}
	if t == TextFrame && !utf8.Valid(body) {
		return &OpError{Op: w.op, Path: w.path, Err: errors.New("a text frame must be UTF-8: send binary")}
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if err := w.ended(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	deadline, _ := ctx.Deadline()
	w.conn.SetWriteDeadline(deadline)
	// gorilla's own SetWriteDeadline is not for another goroutine; the
	// net.Conn's is, and interrupts a write under way.
	stop := context.AfterFunc(ctx, func() { w.conn.NetConn().SetWriteDeadline(time.Unix(1, 0)) })
	err := w.conn.WriteMessage(int(t), body)
	stop()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		// ctx ended during the write, which may have stopped halfway:
		// the connection is of no more use.
		cause := context.Cause(ctx)
		w.abort(cause)
		return cause
	}
	// The connection broke: most likely the server closed it, and its
	// close frame, waiting to be read, says why.
	select {
	case <-w.done:
	case <-time.After(closeWait):
		w.abort(&OpError{Op: w.op, Path: w.path, Err: err})
	}
	return w.ended()
}

// Close is the Close of every pattern type.
func (w *wsConn) Close() error {
	w.stopCtx()
	w.mu.Lock()
	byUs := w.err == nil
	if byUs {
		w.err = ErrClosed
	}
	w.mu.Unlock()
	w.stopReceiving()
	if w.sendClose(websocket.CloseNormalClosure, closeWait) == nil {
		select {
		case <-w.done:
		case <-time.After(closeWait):
		}
	}
	w.conn.Close()
	<-w.done
	result := w.closeResult()
	if byUs && result != nil {
		// The server had a reason to end it before our close came: that
		// is the more useful answer from Send and Next too.
		w.mu.Lock()
		w.err = result
		w.mu.Unlock()
	}
	return result
}

// sendClose writes our close frame, with code.
func (w *wsConn) sendClose(code int, timeout time.Duration) error {
	w.mu.Lock()
	if w.sent == 0 {
		w.sent = code
	}
	w.mu.Unlock()
	return w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(timeout))
}

// closeResult is what Close returns: the server's close frame when the
// server ended the connection for a reason, else nil.
func (w *wsConn) closeResult() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ce := w.closed; ce != nil && ce.Code != websocket.CloseNormalClosure && ce.Code != websocket.CloseNoStatusReceived {
		return ce
	}
	return nil
}
