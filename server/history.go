package server

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/msgbus/msgbus/server/history"
	"github.com/msgbus/msgbus/server/message"
	"github.com/msgbus/msgbus/server/wire"
)

// DefaultHistoryLimit is how many messages a /history/ page has when the
// request does not say.
const DefaultHistoryLimit = 50

// handleHistory serves GET /history/<raw>: a page of the retained messages
// of the channel and below it, as JSON (PROTOCOL.md §6), under the same
// rules as subscribing.
func (s *Server) handleHistory(ctx *fasthttp.RequestCtx, raw string, who identity) {
	if !s.checkOrigin(ctx, false, false) {
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		methodNotAllowed(ctx, "GET, HEAD")
		return
	}
	channel, err := parseChannel(raw, true)
	if err != nil {
		fail(ctx, fasthttp.StatusBadRequest, err.Error())
		return
	}
	if !who.canSubscribe(channel) {
		s.deny(ctx, who, "read the history of", channel)
		return
	}
	filter, ok := parseFilter(ctx)
	if !ok {
		return
	}
	q, ok := parsePageQuery(ctx)
	if !ok {
		return
	}
	page, err := s.engine.History(channel, filter, q)
	if err != nil {
		s.unavailable(ctx, err)
		return
	}
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-cache")
	ctx.SetBody(appendPage(nil, page))
}

// parsePageQuery reads ?before=, ?after= and ?limit=, answering 400
// itself and reporting false for a malformed one.
func parsePageQuery(ctx *fasthttp.RequestCtx) (history.PageQuery, bool) {
	args := ctx.QueryArgs()
	q := history.PageQuery{Limit: DefaultHistoryLimit}
	for _, p := range []struct {
		name string
		id   *message.ID
		set  *bool
	}{{"before", &q.Before, &q.HasBefore}, {"after", &q.After, &q.HasAfter}} {
		v := args.Peek(p.name)
		if len(v) == 0 {
			continue
		}
		id, err := message.ParseID(string(v))
		if err != nil {
			fail(ctx, fasthttp.StatusBadRequest, p.name+": "+err.Error())
			return q, false
		}
		*p.id, *p.set = id, true
	}
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > history.MaxPage {
			fail(ctx, fasthttp.StatusBadRequest, "limit: want a count from 1 to "+strconv.Itoa(history.MaxPage))
			return q, false
		}
		q.Limit = n
	}
	return q, true
}

// appendPage appends page as {"messages":[envelope…],"more":bool}.
func appendPage(b []byte, page history.Page) []byte {
	b = append(b, `{"messages":[`...)
	for i, m := range page.Messages {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, wire.Envelope(m)...)
	}
	b = append(b, `],"more":`...)
	b = strconv.AppendBool(b, page.More)
	return append(b, "}\n"...)
}
