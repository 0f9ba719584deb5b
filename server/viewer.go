package server

import (
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/msgbus/msgbus/server/viewer"
)

// What a GET on a channel answers with, chosen by Accept (PROTOCOL.md §3).
type representation int

const (
	wantMultipart representation = iota // curl, <img src>, test-sub: the original protocol
	wantSSE                             // EventSource
	wantViewer                          // a browser navigation: the viewer page
)

// negotiate picks the representation for an Accept header. Server-Sent
// Events and the viewer must be asked for by name (text/event-stream,
// text/html); each of the three gets the q of the most specific range that
// matches it (RFC 9110 §12.5.1), and the highest q wins. On equal q the
// one named more specifically wins, so a browser's "text/html, */*" gets the
// page, and on a full tie (or no Accept, or nothing acceptable) multipart,
// the original protocol, does.
func negotiate(accept string) representation {
	type score struct {
		q    float64
		spec int // 0 unmatched, 1 */*, 2 type/*, 3 exact
	}
	var mixed, sse, html score
	better := func(s *score, q float64, spec int) {
		if spec > s.spec {
			*s = score{q, spec}
		}
	}
	for n, r := range strings.Split(accept, ",") {
		if n == 64 {
			break // enough: no client lists more
		}
		typ, params, _ := strings.Cut(r, ";")
		typ = strings.ToLower(strings.TrimSpace(typ))
		q := acceptQ(params)
		switch typ {
		case "*/*":
			better(&mixed, q, 1)
			better(&sse, q, 1)
			better(&html, q, 1)
		case "multipart/*":
			better(&mixed, q, 2)
		case "text/*":
			better(&sse, q, 2)
			better(&html, q, 2)
		case "multipart/x-mixed-replace":
			better(&mixed, q, 3)
		case "text/event-stream":
			better(&sse, q, 3)
		case "text/html":
			better(&html, q, 3)
		}
	}
	if mixed.spec == 0 {
		mixed = score{1, 0} // not acceptable, but what we fall back to
	}
	beats := func(a, b score) bool { return a.q > b.q || a.q == b.q && a.spec > b.spec }
	switch {
	case sse.spec == 3 && sse.q > 0 && beats(sse, mixed) && !beats(html, sse):
		return wantSSE
	case html.spec == 3 && html.q > 0 && beats(html, mixed):
		return wantViewer
	}
	return wantMultipart
}

// acceptQ returns the q parameter among params (";q=0.8"), 1 when absent
// or unreadable.
func acceptQ(params string) float64 {
	for n, p := range strings.Split(params, ";") {
		if n == 16 {
			break
		}
		k, v, ok := strings.Cut(p, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
			if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q >= 0 && q <= 1 {
				return q
			}
		}
	}
	return 1
}

// serveViewer answers a browser navigation to a channel with the viewer
// page, which then subscribes to the same URL with Accept:
// text/event-stream.
func serveViewer(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set(fasthttp.HeaderVary, "Accept")
	h.Set(fasthttp.HeaderCacheControl, "no-cache")
	h.Set(fasthttp.HeaderContentSecurityPolicy, viewer.CSP)
	h.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
	h.Set(fasthttp.HeaderReferrerPolicy, "no-referrer")
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(viewer.Page)
}
