package server

import (
	"net"
	"net/url"
	"strings"
	"testing"
)

// FuzzOriginAllowed checks the --allow-origin matcher never panics and that
// a bare host never accepts an origin outside that host and its subdomains.
func FuzzOriginAllowed(f *testing.F) {
	for _, seed := range [][2]string{
		{"example.com", "http://www.example.com:3000"},
		{"example.com", "http://example.com.evil.net"},
		{"*.example.com", "https://a.b.example.com"},
		{"http://www.example.com:*", "http://www.example.com:3000"},
		{"*://www.example.com", "ws://www.example.com"},
		{"[::1]", "http://[::1]:3000"},
		{"[", "http://[::1"},
		{"a:b:c", "null"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, entry, origin string) {
		p, err := parseOriginPattern(entry)
		if err != nil {
			return
		}
		ok := originAllowed([]originPattern{p}, origin)
		if !ok {
			return
		}
		o, parsed := parseOrigin(origin)
		if !parsed {
			t.Fatalf("accepted unparsable origin %q", origin)
		}
		if o.scheme != "http" && o.scheme != "https" {
			t.Fatalf("%q accepted scheme %q of %q", entry, o.scheme, origin)
		}
		if u, err := url.Parse(strings.ToLower(origin)); err != nil || u.User != nil || u.Path != "" || u.RawQuery != "" ||
			u.Hostname() != o.host {
			t.Fatalf("%q accepted %q, which is not a plain origin (host %q)", entry, origin, o.host)
		}
		if !p.bare {
			return
		}
		if h := o.host; h != p.host && !strings.HasSuffix(h, "."+p.host) {
			t.Fatalf("bare %q accepted host %q of %q", entry, h, origin)
		}
	})
}

// FuzzListenAddress checks that every accepted -l form is a host:port that
// net can split, with a port in range.
func FuzzListenAddress(f *testing.F) {
	for _, seed := range []string{"", "*", "127.0.0.1", "127.0.0.1:9000", "http://*:4000", "[::1]:80", "ftp://x", "a:b:c", "::1"} {
		f.Add(seed, 8888)
	}
	f.Fuzz(func(t *testing.T, spec string, port int) {
		addr, err := ListenAddress(spec, port)
		if err != nil {
			return
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			t.Fatalf("ListenAddress(%q, %d) = %q, which net cannot split: %v", spec, port, addr, err)
		}
	})
}
