package server

import (
	"net/url"
	"path"
	"strings"
)

// An originPattern is one --allow-origin entry: scheme, host and port
// patterns where '*' is a wildcard within its part and an empty part
// matches anything. A bare host ("example.com") matches that host and its
// subdomains. Matching is anchored, so "example.com" never accepts
// "example.com.evil.net" (Mercury's unanchored regex did).
type originPattern struct {
	scheme, host, port string
	bare               bool
}

func parseOriginPattern(entry string) originPattern {
	e := strings.ToLower(strings.TrimSpace(entry))
	var p originPattern
	if scheme, rest, ok := strings.Cut(e, "://"); ok {
		p.scheme, e = scheme, rest
	}
	e = strings.TrimSuffix(e, "/")
	if i := strings.LastIndexByte(e, ':'); i >= 0 && !strings.HasSuffix(e, "]") {
		p.port, e = e[i+1:], e[:i]
	}
	if strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]") {
		e = e[1 : len(e)-1] // an IPv6 literal; url.Hostname drops the brackets too
	}
	p.host = e
	p.bare = p.scheme == "" && p.port == "" && !strings.ContainsAny(e, "*?[")
	return p
}

// match reports whether the Origin header value origin fits p.
func (p originPattern) match(scheme, host, port string) bool {
	if p.scheme != "" && !globPart(p.scheme, scheme) {
		return false
	}
	if p.port != "" && !globPart(p.port, port) {
		return false
	}
	if p.bare {
		return host == p.host || strings.HasSuffix(host, "."+p.host)
	}
	return p.host == "" || globPart(p.host, host)
}

func globPart(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return ok && err == nil
}

// originAllowed reports whether an Origin header value matches one of
// the patterns. A value that is not an origin URL matches nothing.
func originAllowed(patterns []originPattern, origin string) bool {
	u, err := url.Parse(strings.ToLower(origin))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return false
	}
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "http", "ws":
			port = "80"
		case "https", "wss":
			port = "443"
		}
	}
	for _, p := range patterns {
		if p.match(u.Scheme, u.Hostname(), port) {
			return true
		}
	}
	return false
}
