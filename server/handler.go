package server

import (
	"bytes"
	"encoding/base64"
	"errors"
	"github.com/msgbus/msgbus/server/message"
	"strconv"
	"strings"

	"net"

	"github.com/valyala/fasthttp"

	"github.com/msgbus/msgbus/multipart"
	"github.com/msgbus/msgbus/server/engine"
	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/ui"
	"github.com/msgbus/msgbus/server/wire"
)

const defaultType = "application/octet-stream"

// handle routes one request: a CORS preflight on the bus first (it carries
// no credentials), then auth, the bus under /msgbus/ and the WebSocket
// patterns, the shared stylesheet, then the web root.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Request.URI().PathOriginal()
	r := routeOf(path)
	if r.kind != routeOther {
		cors := ""
		if len(s.origins) > 0 {
			ctx.Response.Header.Set(fasthttp.HeaderVary, "Origin") // answers differ by Origin
			cors = s.corsHeaders(ctx)
			setCORS(ctx, cors)
		}
		if ctx.IsOptions() {
			s.preflight(ctx, cors)
			return
		}
	}
	who, ok := s.authenticate(ctx)
	if !ok {
		return
	}
	switch {
	case r.kind == routeBus:
		s.handleBus(ctx, r.raw, who)
	case r.kind == routePattern:
		s.handlePattern(ctx, r.pattern, r.raw, who)
	case r.kind == routeHistory:
		s.handleHistory(ctx, r.raw, who)
	case string(path) == ui.Path && (ctx.IsGet() || ctx.IsHead()):
		ui.Serve(ctx)
	case s.static == nil:
		fail(ctx, fasthttp.StatusNotFound, "not found: the bus is at /msgbus/<channel>")
	case !ctx.IsGet() && !ctx.IsHead():
		methodNotAllowed(ctx, "GET, HEAD")
	default:
		s.static(ctx)
	}
}

// A route is where a path leads: the bus, with its raw (still escaped)
// channel, a WebSocket pattern, with its raw topic, or elsewhere.
type route struct {
	kind    int
	pattern pattern
	raw     string
}

const (
	routeOther   = iota // the stylesheet, the web root, 404
	routeBus            // /msgbus/<channel>
	routePattern        // /bus/, /pub/, /sub/, /push/, /pull/
	routeHistory        // /history/<channel>
)

const historyPrefix = "/history/"

func routeOf(path []byte) route {
	if raw, ok := bytes.CutPrefix(path, []byte(busPrefix)); ok {
		return route{kind: routeBus, raw: string(raw)}
	}
	if string(path) == busPrefix[:len(busPrefix)-1] {
		return route{kind: routeBus}
	}
	if raw, ok := bytes.CutPrefix(path, []byte(historyPrefix)); ok {
		return route{kind: routeHistory, raw: string(raw)}
	}
	if string(path) == historyPrefix[:len(historyPrefix)-1] {
		return route{kind: routeHistory}
	}
	for _, pp := range patternPrefixes {
		if raw, ok := bytes.CutPrefix(path, []byte(pp.prefix)); ok {
			return route{kind: routePattern, pattern: pp.p, raw: string(raw)}
		} else if string(path) == pp.prefix[:len(pp.prefix)-1] {
			return route{kind: routePattern, pattern: pp.p}
		}
	}
	return route{kind: routeOther}
}

// basicAuth parses an Authorization header of the Basic scheme.
func basicAuth(h []byte) (user, pass string, ok bool) {
	const prefix = "basic "
	if len(h) < len(prefix) || !strings.EqualFold(string(h[:len(prefix)]), prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(string(h[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	return user, pass, ok
}

// handleBus serves /msgbus/<raw>: GET subscribes, POST and PUT publish.
func (s *Server) handleBus(ctx *fasthttp.RequestCtx, raw string, who identity) {
	if !s.checkOrigin(ctx, false, !ctx.IsGet() && !ctx.IsHead()) {
		return
	}
	switch {
	case ctx.IsGet():
		channel, err := parseChannel(raw, true)
		if err != nil {
			fail(ctx, fasthttp.StatusBadRequest, err.Error())
			return
		}
		s.subscribe(ctx, channel, who)
	case ctx.IsPost() || ctx.IsPut():
		channel, err := parseChannel(raw, false)
		if err != nil {
			fail(ctx, fasthttp.StatusBadRequest, err.Error())
			return
		}
		if !who.canPublish(channel) {
			s.deny(ctx, who, "publish to", channel)
			return
		}
		s.publish(ctx, channel, who.user)
	default:
		methodNotAllowed(ctx, "GET, POST, PUT")
	}
}

// publish hands the body to the hub and answers 204 once every current
// subscriber has it queued, with the message's id and how many subscribers
// it reached.
func (s *Server) publish(ctx *fasthttp.RequestCtx, channel, user string) {
	m, ok := messageFromRequest(ctx, channel, user)
	if !ok {
		return
	}
	key, ok := idempotencyKey(ctx)
	if !ok {
		return
	}
	m.Key = key
	p, err := s.engine.Publish(m)
	releaseBody(ctx)
	if err != nil {
		s.unavailable(ctx, err)
		return
	}
	answerPublished(ctx, p)
}

// MaxIdempotencyKeyBytes is the longest Idempotency-Key (PROTOCOL.md §6).
const MaxIdempotencyKeyBytes = 128

// idempotencyKey returns the request's Idempotency-Key, "" when there is
// none, answering 400 itself and reporting false for one that is too long
// or not printable ASCII.
func idempotencyKey(ctx *fasthttp.RequestCtx) (string, bool) {
	k := ctx.Request.Header.Peek("Idempotency-Key")
	if len(k) > MaxIdempotencyKeyBytes || !multipart.ValidContentType(string(k)) {
		fail(ctx, fasthttp.StatusBadRequest, "Idempotency-Key must be printable ASCII of at most 128 bytes")
		return "", false
	}
	return string(k), true
}

// unavailable answers 503 for a publish the engine could not take (its
// store failed): nothing was published and the client may retry.
func (s *Server) unavailable(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, hub.ErrClosed) {
		fail(ctx, fasthttp.StatusServiceUnavailable, "shutting down: try another server or later")
		return
	}
	s.log.Error("publish refused", "err", err)
	ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	fail(ctx, fasthttp.StatusServiceUnavailable, "unavailable: "+firstLine(err.Error())+"; retry later")
}

// messageFromRequest makes a message of a publish request's body and
// Content-Type. It answers 400 itself and reports false for a type that
// cannot go on a header line. The body is copied: the engine keeps it in
// history, and fasthttp reuses its buffer.
func messageFromRequest(ctx *fasthttp.RequestCtx, channel, user string) (*message.Message, bool) {
	if !ctx.Request.Header.IsHTTP11() && !hasContentLength(ctx.Request.Header.RawHeaders()) {
		// HTTP/1.0 has no chunking: without a length the body would be
		// read as empty and the message silently lost.
		fail(ctx, fasthttp.StatusLengthRequired, "length required: an HTTP/1.0 publish needs a Content-Length")
		ctx.SetConnectionClose()
		return nil, false
	}
	typ := string(ctx.Request.Header.ContentType())
	if typ == "" {
		typ = defaultType
	}
	if !multipart.ValidContentType(typ) {
		fail(ctx, fasthttp.StatusBadRequest, "Content-Type must be printable ASCII")
		return nil, false
	}
	body := bytes.Clone(ctx.PostBody())
	if body == nil {
		body = []byte{}
	}
	return &message.Message{Channel: channel, Type: typ, Sender: user, Body: body}, true
}

// hasContentLength reports whether raw request headers name a
// Content-Length (fasthttp fills in 0 when there is none).
func hasContentLength(raw []byte) bool {
	for line := range bytes.SplitSeq(raw, []byte("\n")) {
		if name, _, ok := bytes.Cut(line, []byte(":")); ok &&
			bytes.EqualFold(bytes.TrimSpace(name), []byte(fasthttp.HeaderContentLength)) {
			return true
		}
	}
	return false
}

// keepBodyBytes is the largest request body buffer a keep-alive connection
// keeps for its next request; a larger one is given back once its message
// is published, so idle publishers do not hold message-sized buffers.
const keepBodyBytes = 16 << 10

// releaseBody gives back a large request body buffer: the message has its
// own copy.
func releaseBody(ctx *fasthttp.RequestCtx) {
	ctx.Request.ReleaseBody(keepBodyBytes)
}

// answerPublished answers 204 with the message's id and how many
// subscribers it reached.
func answerPublished(ctx *fasthttp.RequestCtx, p engine.Published) {
	ctx.Response.Header.Set("Msgbus-Id", p.ID.String())
	ctx.Response.Header.Set("Msgbus-Subscribers", strconv.Itoa(p.Reached))
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// subscribe takes over the connection for a multipart stream, or for
// Server-Sent Events when the Accept header asks for them; a browser
// navigation gets the viewer page instead (PROTOCOL.md §3). The
// subscription is made before the response head is written, so a message
// published once the client has seen the head is never missed.
func (s *Server) subscribe(ctx *fasthttp.RequestCtx, channel string, who identity) {
	filter, ok := parseFilter(ctx)
	if !ok {
		return
	}
	want := negotiate(string(ctx.Request.Header.Peek(fasthttp.HeaderAccept)))
	if want == wantViewer {
		serveViewer(ctx) // the page holds no messages; its stream is checked
		return
	}
	if !who.canSubscribe(channel) {
		s.deny(ctx, who, "subscribe to", channel)
		return
	}
	resume, ok := s.parseResume(ctx)
	if !ok {
		return
	}
	if max := s.cfg.MaxSubscribers; max > 0 && s.engine.Stats().Subscribers >= int64(max) {
		fail(ctx, fasthttp.StatusServiceUnavailable, errTooMany)
		return
	}
	ss := &session{ID: newSessionID(), User: who.user, Kind: kindMultipart, expires: who.expires}
	format, head := wire.Multipart(ctx.Request.Header.IsHTTP11())
	if want == wantSSE {
		format, head = wire.SSE(ctx.Request.Header.IsHTTP11(), string(ctx.QueryArgs().Peek("envelope")) == "json")
		ss.Kind = kindSSE
	}
	head = withHeaderLines(head, "Msgbus-Session: "+ss.ID+"\r\n")
	cors := ""
	if len(s.origins) > 0 {
		cors = s.corsHeaders(ctx)
		head = withHeaderLines(head, cors)
	}
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		s.startStream(c, channel, cors, hub.SubscribeOptions{Format: format, Filter: filter, Head: head, Name: busPrefix + channel}, resume, ss)
	})
}

// parseResume reads what a subscriber wants replayed (PROTOCOL.md §6):
// ?since=<id>, else the Last-Event-ID header, else ?last=N; nil for none.
// It answers 400 itself and reports false for a malformed ?since or
// ?last. A malformed Last-Event-ID (a browser's, from another server) is
// an unknown id: nothing is replayed and the stream says not recovered.
func (s *Server) parseResume(ctx *fasthttp.RequestCtx) (*engine.Resume, bool) {
	args := ctx.QueryArgs()
	r := &engine.Resume{Max: s.cfg.ResumeMax}
	if v := args.Peek("since"); len(v) > 0 {
		id, err := message.ParseID(string(v))
		if err != nil {
			fail(ctx, fasthttp.StatusBadRequest, "since: "+err.Error())
			return nil, false
		}
		r.After, r.Since = id, true
		return r, true
	}
	if v := ctx.Request.Header.Peek("Last-Event-ID"); len(v) > 0 {
		id, err := message.ParseID(string(v))
		if err != nil {
			id = message.ID{Ms: ^uint64(0)} // after every id: unknown
		}
		r.After, r.Since = id, true
		return r, true
	}
	if v := args.Peek("last"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 {
			fail(ctx, fasthttp.StatusBadRequest, "last: want a count of messages, 0 or more")
			return nil, false
		}
		r.Last = min(n, s.cfg.ResumeMax)
		return r, true
	}
	return nil, true
}

// parseFilter compiles the request's ?type= and ?sender= lists, answering
// 400 itself and reporting false when one is over the limits.
func parseFilter(ctx *fasthttp.RequestCtx) (*message.Filter, bool) {
	args := ctx.QueryArgs()
	f, err := message.ParseFilter(string(args.Peek("type")), string(args.Peek("sender")))
	if err != nil {
		fail(ctx, fasthttp.StatusBadRequest, err.Error())
		return nil, false
	}
	return f, true
}

const errTooMany = "too many subscribers: the server is at its --max-subscribers limit, try again later"

// handleError answers what fasthttp could not parse, with one-line reasons.
func (s *Server) handleError(ctx *fasthttp.RequestCtx, err error) {
	if len(s.origins) > 0 {
		setCORS(ctx, s.corsHeaders(ctx)) // so that a page can read why
	}
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		fail(ctx, fasthttp.StatusRequestEntityTooLarge, tooLarge(s.cfg.MaxMessageBytes))
	case errors.As(err, &small):
		fail(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge,
			"request header too large: the limit is "+strconv.Itoa(s.cfg.MaxHeaderBytes)+" bytes")
	default:
		var te interface{ Timeout() bool }
		if errors.As(err, &te) && te.Timeout() {
			fail(ctx, fasthttp.StatusRequestTimeout, "request timeout: the request took too long to arrive")
			return
		}
		fail(ctx, fasthttp.StatusBadRequest, "malformed request: "+firstLine(err.Error()))
	}
	ctx.SetConnectionClose()
}

func tooLarge(limit int) string {
	return "message too large: the limit is " + strconv.Itoa(limit) + " bytes (--max-message-bytes)"
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// fail answers status with a one-line plain-text reason.
func fail(ctx *fasthttp.RequestCtx, status int, reason string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(reason + "\n")
}

func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set(fasthttp.HeaderAllow, allow)
	fail(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed: use "+allow)
}
