package server

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// An origin is a parsed Origin header value (RFC 6454): a web page's scheme,
// host and port, lower case, the port filled in from the scheme.
type origin struct {
	scheme, host, port string
	ip                 bool // host is an IP address, which has no subdomains
}

// parseOrigin reads an Origin header value strictly: "http" or "https",
// "://", a host name or an IP literal, an optional port from 1 to 65535,
// and nothing else. Browsers send exactly this; "null" (a sandboxed frame,
// a file:// page), user info, a path or a query are refused, so that no
// odd form can slip past a pattern.
func parseOrigin(v string) (origin, bool) {
	v = strings.ToLower(v)
	scheme, rest, ok := strings.Cut(v, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return origin{}, false
	}
	host, port, ok := splitHostPort(rest)
	if !ok || !validHost(host) {
		return origin{}, false
	}
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
		return origin{}, false
	}
	_, err := netip.ParseAddr(host)
	return origin{scheme, host, port, err == nil}, true
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port", dropping
// an IPv6 literal's brackets.
func splitHostPort(hp string) (host, port string, ok bool) {
	if rest, isV6 := strings.CutPrefix(hp, "["); isV6 {
		host, rest, ok = strings.Cut(rest, "]")
		if !ok {
			return "", "", false
		}
		if rest == "" {
			return host, "", true
		}
		port, ok = strings.CutPrefix(rest, ":")
		return host, port, ok && port != ""
	}
	host, port, hasPort := strings.Cut(hp, ":")
	if hasPort && port == "" {
		return "", "", false
	}
	return host, port, true
}

// validHost reports whether h is an IP literal or a DNS name of letters,
// digits, '-' and '.'.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// An originPattern is one --allow-origin entry: scheme, host and port
// patterns where '*' is a wildcard within its part and an empty part
// matches anything. A bare host name ("example.com") matches that host and
// its subdomains; a bare IP address only itself. Matching is anchored, so
// "example.com" never accepts "example.com.evil.net" (Mercury's unanchored
// regex did).
type originPattern struct {
	scheme, host, port string
	bare               bool // a host name alone: itself and its subdomains
	any                bool // "*": every well-formed origin
}

// parseOriginPattern compiles an --allow-origin entry, or says what is
// wrong with it.
func parseOriginPattern(entry string) (originPattern, error) {
	e := strings.ToLower(strings.TrimSpace(entry))
	bad := func(why string) (originPattern, error) {
		return originPattern{}, fmt.Errorf("--allow-origin %q: %s (write a host, as example.com, or scheme://host:port with * wildcards)", entry, why)
	}
	if e == "*" {
		return originPattern{any: true}, nil
	}
	var p originPattern
	if scheme, rest, ok := strings.Cut(e, "://"); ok {
		if scheme == "" || strings.Trim(scheme, "abcdefghijklmnopqrstuvwxyz*?") != "" {
			return bad("the scheme is not a name")
		}
		p.scheme, e = scheme, rest
	}
	e = strings.TrimSuffix(e, "/")
	if strings.ContainsAny(e, "/@?#") {
		return bad("an origin has no user, path or query")
	}
	host, port, ok := splitHostPort(e)
	if a, err := netip.ParseAddr(e); err == nil && a.Is6() {
		host, port, ok = e, "", true // a bare IPv6 address, without brackets
	}
	if !ok || host == "" {
		return bad("no host")
	}
	if port != "" && strings.Trim(port, "0123456789*?") != "" {
		return bad("the port is not a number or a wildcard")
	}
	_, ipErr := netip.ParseAddr(host)
	if ipErr != nil && strings.Trim(host, "abcdefghijklmnopqrstuvwxyz0123456789-.*?") != "" {
		return bad("the host holds characters no host name has")
	}
	for _, part := range []string{p.scheme, host, port} {
		if _, err := path.Match(part, ""); err != nil {
			return bad("a malformed wildcard")
		}
	}
	p.host, p.port = host, port
	p.bare = p.scheme == "" && p.port == "" && ipErr != nil && !strings.ContainsAny(host, "*?")
	return p, nil
}

// parseOriginPatterns compiles the whole --allow-origin list.
func parseOriginPatterns(entries []string) ([]originPattern, error) {
	var list []originPattern
	for _, e := range entries {
		p, err := parseOriginPattern(e)
		if err != nil {
			return nil, errors.New("server: " + err.Error())
		}
		list = append(list, p)
	}
	return list, nil
}

// match reports whether origin o fits p.
func (p originPattern) match(o origin) bool {
	if p.any {
		return true
	}
	if p.scheme != "" && !globPart(p.scheme, o.scheme) {
		return false
	}
	if p.port != "" && !globPart(p.port, o.port) {
		return false
	}
	if p.bare {
		return o.host == p.host || !o.ip && strings.HasSuffix(o.host, "."+p.host)
	}
	return globPart(p.host, o.host)
}

func globPart(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return ok && err == nil
}

// originAllowed reports whether an Origin header value matches one of
// the patterns. A value that is not an origin matches nothing.
func originAllowed(patterns []originPattern, v string) bool {
	o, ok := parseOrigin(v)
	if !ok {
		return false
	}
	for _, p := range patterns {
		if p.match(o) {
			return true
		}
	}
	return false
}

// What a request's Origin header allows it (PROTOCOL.md §4).
type originVerdict int

const (
	originNone    originVerdict = iota // no Origin: curl, a backend, a same-origin GET
	originSame                         // the page is served by this server (Origin = Host)
	originListed                       // another origin that --allow-origin accepts
	originRefused                      // another origin, or a malformed one
)

// judgeOrigin classifies the request's Origin.
func (s *Server) judgeOrigin(ctx *fasthttp.RequestCtx) originVerdict {
	v := ctx.Request.Header.Peek(fasthttp.HeaderOrigin)
	if len(v) == 0 {
		return originNone
	}
	o, ok := parseOrigin(string(v))
	if !ok {
		return originRefused
	}
	if s.sameOrigin(o, string(ctx.Host())) {
		return originSame
	}
	for _, p := range s.origins {
		if p.match(o) {
			return originListed
		}
	}
	return originRefused
}

// sameOrigin reports whether o is the origin the client reached this server
// at: its host and port are the Host header's, a Host without a port
// meaning the default port of the Origin's scheme (a proxy may speak TLS
// for us). Only a Host that names this machine unambiguously counts, an IP
// address or localhost: any other name may be an attacker's that now
// resolves to us (DNS rebinding), whose page would send that very name as
// both Host and Origin. Pages served under a DNS name are let in with
// --allow-origin.
func (s *Server) sameOrigin(o origin, hostHeader string) bool {
	host, port, ok := splitHostPort(strings.ToLower(hostHeader))
	if !ok || !isLocalName(host) {
		return false
	}
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[o.scheme]
	}
	return o.host == host && o.port == port
}

// isLocalName reports whether a Host's host part cannot be a name an
// attacker controls: an IP address, localhost or a name under .localhost
// (which resolvers keep on the loopback, RFC 6761).
func isLocalName(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// checkOrigin refuses, with 401 "Origin check failed", a request that a
// web page on another origin may not make. Without --allow-origin only the
// server's own pages may open a WebSocket or publish (mutating: a POST,
// PUT or WebSocket upgrade); with it, the listed origins may too, any
// request carrying an unlisted Origin is refused, and where required (the
// WebSocket patterns, as Mercury) so is one that carries none. Requests
// without Origin (curl, backends) are the secret's business, not this one's.
func (s *Server) checkOrigin(ctx *fasthttp.RequestCtx, required, mutating bool) bool {
	switch v := s.judgeOrigin(ctx); {
	case v == originSame, v == originListed:
		return true
	case v == originNone && (len(s.origins) == 0 || !required):
		return true
	case v == originRefused && len(s.origins) == 0 && !mutating:
		return true // a cross-origin GET: without CORS headers the page cannot read it
	}
	fail(ctx, fasthttp.StatusUnauthorized, "Origin check failed")
	return false
}

// The CORS answer (PROTOCOL.md §4) to a page of an allowed origin.
const (
	corsAllowMethods  = "GET, POST, PUT, OPTIONS"
	corsAllowHeaders  = "Content-Type, Authorization, Last-Event-ID, Idempotency-Key"
	corsExposeHeaders = "Msgbus-Id, Msgbus-Subscribers, Msgbus-Recovered, Msgbus-Session"
	corsMaxAge        = "600"
)

// corsHeaders returns the response header lines that let the page at the
// request's Origin read the answer, or "" when it may not (no list, no
// Origin, same origin, or not listed). Credentials (Basic auth, cookies)
// are allowed only for origins listed by name, never under "*".
func (s *Server) corsHeaders(ctx *fasthttp.RequestCtx) string {
	if len(s.origins) == 0 || s.judgeOrigin(ctx) != originListed {
		return ""
	}
	o := string(ctx.Request.Header.Peek(fasthttp.HeaderOrigin))
	h := "Access-Control-Allow-Origin: " + o + "\r\n" +
		"Vary: Origin\r\n" +
		"Access-Control-Expose-Headers: " + corsExposeHeaders + "\r\n"
	if !s.originsAny() {
		h += "Access-Control-Allow-Credentials: true\r\n"
	}
	return h
}

// originsAny reports whether the list holds the catch-all "*".
func (s *Server) originsAny() bool {
	for _, p := range s.origins {
		if p.any {
			return true
		}
	}
	return false
}

// setCORS adds the CORS header lines to a response fasthttp writes.
func setCORS(ctx *fasthttp.RequestCtx, lines string) {
	if lines == "" {
		return
	}
	for line := range strings.SplitSeq(strings.TrimSuffix(lines, "\r\n"), "\r\n") {
		k, v, _ := strings.Cut(line, ": ")
		ctx.Response.Header.Set(k, v)
	}
}

// preflight answers OPTIONS on a bus path: 204 with Allow for anyone, and
// for a page of an allowed origin the methods and request headers the bus
// accepts, so that its fetch and EventSource may go on.
func (s *Server) preflight(ctx *fasthttp.RequestCtx, cors string) {
	h := &ctx.Response.Header
	h.Set(fasthttp.HeaderAllow, corsAllowMethods)
	if cors != "" {
		h.Set("Access-Control-Allow-Methods", corsAllowMethods)
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", corsMaxAge)
	} else if len(ctx.Request.Header.Peek(fasthttp.HeaderOrigin)) > 0 && s.judgeOrigin(ctx) == originRefused {
		fail(ctx, fasthttp.StatusUnauthorized, "Origin check failed")
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// withHeaderLines inserts lines ("Name: value\r\n"…) at the end of a
// prebuilt response head, for a stream that needs more than the shared one.
func withHeaderLines(head []byte, lines string) []byte {
	if lines == "" {
		return head
	}
	i := strings.Index(string(head), "\r\n\r\n")
	out := make([]byte, 0, len(head)+len(lines))
	out = append(out, head[:i+2]...)
	out = append(out, lines...)
	return append(out, head[i+2:]...)
}
