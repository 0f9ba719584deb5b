package server

import (
	"bytes"
	"errors"
	"github.com/msgbus/msgbus/server/engine"
	"github.com/msgbus/msgbus/server/message"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/msgbus/msgbus/server/flush"
	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/wire"
)

// The WebSocket patterns of Mercury, on the hub's one index (PROTOCOL.md §4).
type pattern int

const (
	patternBus  pattern = iota // peers on exactly one topic; a sender does not hear itself
	patternPub                 // sends into the channel hierarchy, like POST /msgbus/
	patternSub                 // receives from the hierarchy, like GET /msgbus/
	patternPush                // sends to one puller at a time
	patternPull                // receives its turn of the pushes
)

var patternPrefixes = []struct {
	prefix string
	p      pattern
}{
	{"/bus/", patternBus}, {"/pub/", patternPub}, {"/sub/", patternSub},
	{"/push/", patternPush}, {"/pull/", patternPull},
}

// busKey is the hub channel of bus topic t. The NUL makes it a name no
// client can give (control characters are refused), so bus topics never
// meet /msgbus/ channels, and PublishExact keeps them out of the root.
func busKey(t string) string { return "\x00bus/" + t }

// The WebSocket message types and the media types they map to.
const (
	wsTextType   = "text/plain; charset=utf-8"
	wsBinaryType = "application/octet-stream"
)

// Heartbeat: the server pings every pingInterval; a connection that sends
// nothing (not even a pong) for pongWait is dead and is closed.
var (
	pingInterval = 30 * time.Second
	pongWait     = 75 * time.Second
	wsPingFrame  = wire.WSFrame(wire.OpPing, nil)
)

var upgrader = websocket.FastHTTPUpgrader{
	HandshakeTimeout: 10 * time.Second,
	ReadBufferSize:   1024,
	WriteBufferSize:  1024,
	WriteBufferPool:  &sync.Pool{},
	// handlePattern checks the Origin against --allow-origin before the
	// upgrade; with no list, any origin may connect, as on /msgbus/.
	CheckOrigin: func(*fasthttp.RequestCtx) bool { return true },
	Error: func(ctx *fasthttp.RequestCtx, status int, reason error) {
		fail(ctx, status, "websocket handshake: "+reason.Error())
	},
}

// handlePattern serves /bus/, /pub/, /sub/, /push/ and /pull/: a WebSocket
// handshake on GET, a publish on POST to the sending patterns.
func (s *Server) handlePattern(ctx *fasthttp.RequestCtx, p pattern, raw string, who identity) {
	if !s.checkOrigin(ctx, true, true) {
		return
	}
	topic, err := parseChannel(raw, true)
	if err != nil {
		fail(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	if topic == "" && p != patternSub {
		fail(ctx, fasthttp.StatusNotFound, "not found: name a topic, as in "+patternPrefixes[p].prefix+"news")
		return
	}
	sends := p == patternBus || p == patternPub || p == patternPush
	switch {
	case ctx.IsPost() && sends:
		if !who.canPublish(topic) {
			s.deny(ctx, who, "publish to", topic)
			return
		}
		s.publishPattern(ctx, p, topic, who.user)
	case ctx.IsPost():
		fail(ctx, fasthttp.StatusNotFound, "not found: "+patternPrefixes[p].prefix+" receives; POST to /pub/ or /push/")
	case !ctx.IsGet():
		methodNotAllowed(ctx, "GET, POST")
	case !websocket.FastHTTPIsWebSocketUpgrade(ctx):
		ctx.Response.Header.Set(fasthttp.HeaderUpgrade, "websocket")
		fail(ctx, fasthttp.StatusUpgradeRequired, "upgrade required: "+patternPrefixes[p].prefix+" speaks WebSocket")
	case (p == patternPub || p == patternPush) && !who.canPublish(topic):
		s.deny(ctx, who, "publish to", topic)
	case p != patternPub && p != patternPush && !who.canSubscribe(topic):
		s.deny(ctx, who, "subscribe to", topic)
	default:
		s.upgradePattern(ctx, p, topic, who)
	}
}

// publishPattern serves POST /bus/, /pub/ and /push/.
func (s *Server) publishPattern(ctx *fasthttp.RequestCtx, p pattern, topic, user string) {
	m, ok := messageFromRequest(ctx, topic, user)
	if !ok {
		return
	}
	var (
		p2  engine.Published
		err error
	)
	switch p {
	case patternBus:
		m.Channel = busKey(topic)
		p2, err = s.engine.PublishExact(m, nil)
	case patternPub:
		key, ok := idempotencyKey(ctx)
		if !ok {
			return
		}
		m.Key = key
		p2, err = s.engine.Publish(m)
	case patternPush:
		if p2, err = s.engine.Push(m, wire.WebSocket); errors.Is(err, hub.ErrBacklogFull) {
			ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
			fail(ctx, fasthttp.StatusServiceUnavailable, "push backlog full: no puller is taking messages, try again later")
			return
		}
	}
	releaseBody(ctx)
	if err != nil {
		s.unavailable(ctx, err)
		return
	}
	answerPublished(ctx, p2)
}

// upgradePattern makes the WebSocket. A receiving pattern subscribes before
// the 101 answer goes out, so nothing published after the handshake is
// missed; its queue is written by the flush pool like a multipart stream.
func (s *Server) upgradePattern(ctx *fasthttp.RequestCtx, p pattern, topic string, who identity) {
	args := ctx.QueryArgs()
	echo := string(args.Peek("echo"))
	wc := &wsConn{srv: s, pattern: p, topic: topic, user: who.user, who: who, echo: echo == "1" || echo == "true"}
	wc.session = &session{ID: newSessionID(), User: who.user, Kind: kindWebSocket, expires: who.expires}
	if p == patternBus || p == patternSub || p == patternPull {
		var filter *message.Filter
		if p != patternPull { // each push goes to exactly one puller, filters or not
			var ok bool
			if filter, ok = parseFilter(ctx); !ok {
				return
			}
		}
		var resume *engine.Resume
		if p == patternSub {
			var ok bool
			if resume, ok = s.parseResume(ctx); !ok {
				return
			}
		}
		if !s.subscribeWS(ctx, wc, filter, resume) {
			return
		}
	}
	// serve runs in a goroutine of its own, so that fasthttp can release
	// the request's context and buffers at once rather than keep them for
	// the life of the socket (KeepHijackedConns: the socket stays open).
	err := upgrader.Upgrade(ctx, func(c *websocket.Conn) { go wc.serve(c) })
	if err != nil && wc.st != nil {
		wc.orphan.Stop()
		wc.abandon()
	}
}

// subscribeWS registers wc's subscription; it answers 503 itself and
// reports false when it cannot.
func (s *Server) subscribeWS(ctx *fasthttp.RequestCtx, wc *wsConn, filter *message.Filter, resume *engine.Resume) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		fail(ctx, fasthttp.StatusServiceUnavailable, "shutting down")
		return false
	}
	st := flush.NewStream(s.pool, wc.pattern == patternPull)
	s.streams[st] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	opts := hub.SubscribeOptions{Format: wire.WebSocket, Filter: filter, Wake: st.Wake, Dropped: st.Dropped,
		Name: patternPrefixes[wc.pattern].prefix + wc.topic}
	var (
		sub     *hub.Subscription
		err     error
		resumed engine.Resumed
	)
	switch wc.pattern {
	case patternBus:
		sub, _, err = s.engine.Subscribe(busKey(wc.topic), opts, nil)
	case patternSub:
		sub, resumed, err = s.engine.Subscribe(wc.topic, opts, resume)
	case patternPull:
		sub, err = s.engine.SubscribePull(wc.topic, opts)
	}
	if err != nil {
		s.forget(st)
		reason := "shutting down"
		if errors.Is(err, hub.ErrTooManySubscribers) {
			reason = errTooMany
		}
		fail(ctx, fasthttp.StatusServiceUnavailable, reason)
		return false
	}
	st.SetSubscription(sub)
	wc.st, wc.sub = st, sub
	if resume != nil {
		ctx.Response.Header.Set("Msgbus-Recovered", strconv.FormatBool(resumed.Recovered))
		sub.Start(nil) // the 101 answer is the head
	}
	ss := wc.session
	ctx.Response.Header.Set("Msgbus-Session", ss.ID)
	ss.sub, ss.Remote, ss.Since = sub, ctx.RemoteAddr().String(), time.Now()
	if wc.pattern != patternSub {
		ss.name = opts.Name // a /bus/ peer or a puller hears its one topic
	}
	s.openSession(ss, wc.pattern == patternSub)
	// If the connection dies before the handshake's hijack runs, nothing
	// else would unsubscribe.
	wc.orphan = time.AfterFunc(2*upgrader.HandshakeTimeout, wc.abandon)
	return true
}

// wsConn is one WebSocket connection of any pattern.
type wsConn struct {
	srv     *Server
	pattern pattern
	topic   string
	user    string
	who     identity // its rights and expiry, checked on each send
	echo    bool
	st      *flush.Stream     // nil for the sending patterns
	sub     *hub.Subscription // st's
	session *session          // st's
	orphan  *time.Timer

	once sync.Once // the subscription is given up once
}

// abandon gives up a subscription whose connection never arrived.
func (wc *wsConn) abandon() {
	wc.once.Do(func() {
		wc.unsubscribe(nil)
		wc.srv.closeSession(wc.session)
		wc.st.Abandon()
		wc.srv.forget(wc.st)
	})
}

func (wc *wsConn) unsubscribe(unsent [][]byte) {
	if wc.pattern == patternPull {
		wc.srv.engine.UnsubscribePull(wc.sub, unsent)
	} else {
		wc.srv.engine.Unsubscribe(wc.sub)
	}
}

// serve runs on the hijacked connection for its whole life: it reads
// frames, publishing what the sending patterns send, until the peer goes
// away, then cleans up.
func (wc *wsConn) serve(c *websocket.Conn) {
	if wc.st == nil && !wc.srv.trackSender(c) {
		c.Close()
		return
	}
	if wc.st != nil {
		if !wc.orphan.Stop() {
			c.Close()
			return // abandon ran, or is running
		}
		wc.once.Do(func() {}) // abandon may no longer run
		conn := c.NetConn()
		if u, ok := conn.(interface{ UnsafeConn() net.Conn }); ok {
			conn = u.UnsafeConn()
		}
		wc.st.Attach(conn)
		// Control frames go through the queue too, so one writer writes
		// everything on the socket.
		c.SetPingHandler(func(data string) error {
			wc.sub.Send(wire.WSFrame(wire.OpPong, []byte(data)))
			return c.SetReadDeadline(time.Now().Add(pongWait))
		})
		c.SetCloseHandler(func(code int, _ string) error {
			// Echo the peer's code (RFC 6455 §5.5.1); a close without one
			// (1005 is never on the wire) is answered without one.
			reply := wire.WSFrame(wire.OpClose, nil)
			if code != websocket.CloseNoStatusReceived {
				reply = wire.WSClose(code, "")
			}
			wc.sub.Finish(reply)
			return nil
		})
		wc.st.Wake() // what was published since the subscription
	}
	c.SetReadDeadline(time.Now().Add(pongWait))
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(pongWait)) })
	var heartbeat *time.Timer
	heartbeat = time.AfterFunc(pingInterval, func() {
		if wc.st != nil {
			if !wc.sub.Send(wsPingFrame) {
				return
			}
		} else if c.WriteControl(websocket.PingMessage, nil, time.Now().Add(pongWait)) != nil {
			return
		}
		heartbeat.Reset(pingInterval)
	})

	wc.readLoop(c)

	heartbeat.Stop()
	if wc.st == nil {
		c.Close()
		wc.srv.forgetSender(c)
		return
	}
	// The subscription has ended (readLoop saw to it): the flusher writes
	// what is queued, a close frame last, and closes the socket. A peer
	// that stopped reading gets a few seconds.
	select {
	case <-wc.st.Done():
	case <-time.After(closeWait):
		wc.st.Close()
		<-wc.st.Done()
	}
	wc.unsubscribe(wc.st.Unsent())
	wc.srv.closeSession(wc.session)
	wc.srv.forget(wc.st)
}

// closeWait is how long a closing WebSocket's last frames may take.
const closeWait = 5 * time.Second

// readLoop reads messages until the connection ends. A message over the
// size limit closes with 1009, a push into a full backlog with 1013.
func (wc *wsConn) readLoop(c *websocket.Conn) {
	max := wc.srv.cfg.MaxMessageBytes
	var buf bytes.Buffer
	for {
		typ, r, err := c.NextReader()
		if err != nil {
			if wc.st != nil {
				wc.sub.Finish(nil)
			}
			return
		}
		c.SetReadDeadline(time.Now().Add(pongWait))
		var n int64
		if wc.pattern == patternSub || wc.pattern == patternPull {
			// Receivers' messages are ignored, but a text frame must
			// still be UTF-8 (RFC 6455 §8.1).
			v := utf8Checker{}
			scratch := copyBuffers.Get().(*[]byte)
			n, err = io.CopyBuffer(&v, io.LimitReader(r, int64(max)+1), *scratch)
			copyBuffers.Put(scratch)
			if err == nil && n <= int64(max) && typ == websocket.TextMessage && !v.valid() {
				wc.close(c, wire.CloseInvalidPayload, "a text frame must be valid UTF-8")
				return
			}
		} else {
			buf.Reset()
			n, err = buf.ReadFrom(io.LimitReader(r, int64(max)+1))
		}
		if err != nil {
			// The connection broke inside a frame: what arrived is not a
			// message, so nothing of it is published.
			if wc.st != nil {
				wc.sub.Finish(nil)
			}
			return
		}
		if n > int64(max) {
			wc.close(c, wire.CloseTooBig, "message too large: the limit is "+strconv.Itoa(max)+" bytes")
			return
		}
		if wc.pattern == patternSub || wc.pattern == patternPull {
			continue
		}
		if wc.who.expired(time.Now()) {
			wc.close(c, wire.CloseTokenExpired, "token expired: reconnect with a new one")
			return
		}
		if !wc.who.canPublish(wc.topic) { // a /bus/ peer may hear without the right to speak
			wc.close(c, wire.ClosePolicyViolation, "forbidden: the token may not publish to "+wc.topic)
			return
		}
		// The engine keeps the body (history): it gets a copy of buf.
		m := &message.Message{Channel: wc.topic, Type: wsBinaryType, Sender: wc.user, Body: bytes.Clone(buf.Bytes())}
		if typ == websocket.TextMessage {
			if !utf8.Valid(m.Body) {
				wc.close(c, wire.CloseInvalidPayload, "a text frame must be valid UTF-8: send binary frames for other bytes")
				return
			}
			m.Type = wsTextType
		}
		switch wc.pattern {
		case patternBus:
			m.Channel = busKey(wc.topic)
			var except *hub.Subscription
			if !wc.echo {
				except = wc.sub
			}
			wc.srv.engine.PublishExact(m, except)
		case patternPub:
			if _, err := wc.srv.engine.Publish(m); err != nil {
				wc.close(c, wire.CloseTryAgainLater, "unavailable: "+firstLine(err.Error())+"; try again later")
				return
			}
		case patternPush: // Push frames the body at once: the backlog keeps the frame
			if _, err := wc.srv.engine.Push(m, wire.WebSocket); err != nil {
				wc.close(c, wire.CloseTryAgainLater, "push backlog full: no puller is taking messages, try again later")
				return
			}
		}
		if buf.Cap() > keepBodyBytes {
			buf = bytes.Buffer{} // the hub copied the message: do not keep its size
		}
	}
}

// copyBuffers are the scratch buffers receivers read ignored frames with.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}

// utf8Checker is an io.Writer that discards what it is given and checks
// that it is UTF-8, a rune split between writes included.
type utf8Checker struct {
	tail [utf8.UTFMax]byte // the start of a rune cut by the last write
	n    int
	bad  bool
}

func (v *utf8Checker) Write(p []byte) (int, error) {
	written := len(p)
	for !v.bad && v.n > 0 && len(p) > 0 {
		v.tail[v.n] = p[0]
		v.n++
		p = p[1:]
		if utf8.FullRune(v.tail[:v.n]) {
			r, size := utf8.DecodeRune(v.tail[:v.n])
			v.bad = r == utf8.RuneError && size <= 1
			v.n = 0
		} else if v.n == utf8.UTFMax {
			v.bad = true
		}
	}
	if v.bad || len(p) == 0 {
		return written, nil
	}
	// Keep an incomplete rune at the end for the next write.
	cut := len(p)
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				cut = i
			}
			break
		}
	}
	v.bad = !utf8.Valid(p[:cut])
	v.n = copy(v.tail[:], p[cut:])
	return written, nil
}

// valid reports whether everything written was UTF-8.
func (v *utf8Checker) valid() bool { return !v.bad && v.n == 0 }

// close ends the connection with a close frame: through the queue when a
// flusher owns the socket, directly otherwise.
func (wc *wsConn) close(c *websocket.Conn, code int, reason string) {
	if wc.st != nil {
		wc.sub.Finish(wire.WSClose(code, reason))
		return
	}
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
}

// trackSender registers a connection of a sending pattern (/pub/, /push/),
// which has no stream, so that Shutdown can close it. It reports false when
// the server is shutting down.
func (s *Server) trackSender(c *websocket.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.senders[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) forgetSender(c *websocket.Conn) {
	s.mu.Lock()
	delete(s.senders, c)
	s.mu.Unlock()
	s.wg.Done()
}

// closeSenders says goodbye (1001) to every sending WebSocket; their read
// loops then end.
func (s *Server) closeSenders() {
	s.mu.Lock()
	senders := make([]*websocket.Conn, 0, len(s.senders))
	for c := range s.senders {
		senders = append(senders, c)
	}
	s.mu.Unlock()
	for _, c := range senders {
		c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(wire.CloseGoingAway, "server shutting down"),
			time.Now().Add(time.Second))
		c.NetConn().Close()
	}
}
