package server

// Tests of the Origin allow-list of PROTOCOL.md §4: the pattern matcher
// alone, then every route of a real server.

import (
	"net/http"
	"strings"
	"testing"
)

func TestOriginPatternsMatchAnchoredAtDotBoundaries(t *testing.T) {
	cases := []struct {
		pattern string
		origin  string
		want    bool
	}{
		// The four examples of PROTOCOL.md §4.
		{"example.com", "http://www.example.com:3000", true},
		{"*.example.com", "http://www.example.com:3000", true},
		{"*://www.example.com", "http://www.example.com:3000", true},
		{"http://www.example.com:*", "http://www.example.com:3000", true},

		// A bare host: itself and its subdomains, any scheme and port.
		{"example.com", "http://example.com", true},
		{"example.com", "https://a.b.example.com", true},
		{"example.com", "https://example.com:8443", true},
		{"example.com", "http://example.com.evil.net", false},
		{"example.com", "http://notexample.com", false},
		{"example.com", "http://example.org", false},
		{"example.com", "http://example.com@evil.net", false},
		{"example.com", "http://evil.net/example.com", false},
		{"example.com", "http://evil.net?example.com", false},
		{"EXAMPLE.com", "http://WWW.Example.COM", true},

		// Wildcards stay within their part.
		{"*.example.com", "http://www.example.com.evil.net", false},
		{"*.example.com", "http://wwwexample.com", false},
		{"*://www.example.com", "https://www.example.com", true},
		{"*://www.example.com", "http://www.example.org", false},

		// Schemes.
		{"https://example.com", "https://example.com", true},
		{"https://example.com", "http://example.com", false},
		{"http://www.example.com:*", "https://www.example.com:3000", false},
		{"http://www.example.com:*", "http://example.com:3000", false},

		// Ports, with the scheme's default when the origin gives none.
		{"example.com:3000", "http://example.com:3000", true},
		{"example.com:3000", "http://example.com:3001", false},
		{"example.com:3000", "http://example.com", false},
		{"example.com:80", "http://example.com", true},
		{"example.com:443", "https://example.com", true},
		{"example.com:443", "http://example.com", false},
		{"http://localhost:*", "http://localhost:8080", true},
		{"http://localhost:*", "http://localhost", true},
		{"http://localhost:30*", "http://localhost:3000", true},
		{"http://localhost:30*", "http://localhost:4000", false},

		// IP literals.
		{"127.0.0.1", "http://127.0.0.1:8888", true},
		{"[::1]", "http://[::1]:3000", true},
		{"http://[::1]:*", "http://[::1]:3000", true},

		// Malformed Origins never match, even a catch-all.
		{"*", "http://anything.example:1", true},
		{"*", "", false},
		{"*", "null", false},
		{"*", "example.com", false},
		{"*", "http://", false},
		{"*", "://example.com", false},
		{"*", "http://exa mple.com", false},
		{"*", "http://%zz", false},
		{"example.com", "www.example.com", false},

		// Strict origins: no user info, only http and https, ports in range,
		// nothing after the port.
		{"*", "http://user@example.com", false},
		{"*", "http://user:pw@example.com", false},
		{"example.com", "http://example.com@example.com", false},
		{"*", "file://", false},
		{"*", "file:///etc/passwd", false},
		{"*", "ftp://example.com", false},
		{"*", "chrome-extension://abc", false},
		{"*", "http://example.com:99999", false},
		{"*", "http://example.com:0", false},
		{"*", "http://example.com:65535", true},
		{"*", "http://example.com:", false},
		{"*", "http://example.com/", false},
		{"*", "http://example.com/path", false},
		{"*", "http://example.com?q", false},
		{"*", "http://example.com#f", false},
		{"*", "http://[::1", false},
		{"*", "http://ex_ample.com", false},

		// A bare IP address matches itself, never as a "subdomain".
		{"0.1", "http://127.0.0.1", false},
		{"0.0.1", "http://127.0.0.1:8888", false},
		{"127.0.0.1", "http://127.0.0.1", true},
		{"::1", "http://[::1]", true},
	}
	for _, tc := range cases {
		got := originAllowed([]originPattern{mustOriginPattern(t, tc.pattern)}, tc.origin)
		if got != tc.want {
			t.Errorf("pattern %q, Origin %q: allowed = %v, want %v", tc.pattern, tc.origin, got, tc.want)
		}
	}
}

func TestOriginAllowedMatchesAnyPatternOfTheList(t *testing.T) {
	list := []originPattern{mustOriginPattern(t, "https://app.example.com"), mustOriginPattern(t, "localhost:3000")}
	cases := []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"http://app.example.com", false},
		{"http://localhost:3000", true},
		{"http://localhost:3001", false},
		{"https://example.com", false},
	}
	for _, tc := range cases {
		if got := originAllowed(list, tc.origin); got != tc.want {
			t.Errorf("Origin %q: allowed = %v, want %v", tc.origin, got, tc.want)
		}
	}
	if originAllowed(nil, "http://example.com") {
		t.Errorf("an empty list allowed an Origin (the server skips the check when it has no list)")
	}
}

func mustOriginPattern(t *testing.T, entry string) originPattern {
	t.Helper()
	p, err := parseOriginPattern(entry)
	if err != nil {
		t.Fatalf("parseOriginPattern(%q): %v", entry, err)
	}
	return p
}

func TestOriginPatternsThatAreNotOriginsAreRefusedAtStart(t *testing.T) {
	for _, entry := range []string{"", "http://", "user@example.com", "http://example.com/path", "example.com:http",
		"exa mple.com", "[::1", "http://example.com?x", "ht tp://example.com", "example.com:[", "ex[ample.com"} {
		if _, err := New(Config{AllowOrigins: []string{entry}}); err == nil || !strings.Contains(err.Error(), "--allow-origin") {
			t.Errorf("New with --allow-origin %q: %v, want an error naming the flag", entry, err)
		}
	}
	for _, entry := range []string{"*", "example.com", "*.example.com", "https://*:8443", "http://localhost:*", "[::1]", "127.0.0.1:30*"} {
		if _, err := New(Config{AllowOrigins: []string{entry}}); err != nil {
			t.Errorf("New with --allow-origin %q: %v", entry, err)
		}
	}
}

// originHeader is a request header with Origin o, none when o is "".
func originHeader(o string) http.Header {
	if o == "" {
		return nil
	}
	return http.Header{"Origin": {o}}
}

var originCases = []struct {
	name, origin string
}{
	{"matching", "http://www.example.com:3000"},
	{"not matching", "http://example.com.evil.net"},
	{"missing", ""},
}

func TestOriginCheckGuardsEveryPatternRoute(t *testing.T) {
	ts := startServer(t, Config{AllowOrigins: []string{"example.com"}})
	for _, path := range []string{"/bus/t", "/pub/t", "/sub/t", "/push/t", "/pull/t", "/sub/"} {
		for _, oc := range originCases {
			t.Run("WebSocket "+path+" "+oc.name, func(t *testing.T) {
				c, resp, err := ts.wsTryDial(t, path, originHeader(oc.origin))
				if oc.name == "matching" {
					if err != nil {
						t.Fatalf("handshake: %v (%s), want 101", err, wsStatus(resp))
					}
					c.Close()
					return
				}
				if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("handshake: %v (%s), want 401", err, wsStatus(resp))
				}
				if body := strings.TrimSpace(wsBody(resp)); body != "Origin check failed" {
					t.Errorf("body %q, want %q", body, "Origin check failed")
				}
			})
		}
	}
	for _, path := range []string{"/bus/t", "/pub/t", "/push/t"} {
		for _, oc := range originCases {
			t.Run("POST "+path+" "+oc.name, func(t *testing.T) {
				r := ts.wsRequest(t, http.MethodPost, path, originHeader(oc.origin), "text/plain", "x")
				want := http.StatusUnauthorized
				if oc.name == "matching" {
					want = http.StatusNoContent
				}
				if r.status != want {
					t.Fatalf("status %d (%q), want %d", r.status, r.body, want)
				}
				if want == http.StatusUnauthorized && strings.TrimSpace(r.body) != "Origin check failed" {
					t.Errorf("body %q, want %q", r.body, "Origin check failed")
				}
			})
		}
	}
	ts.waitSubscribers(t, 0)
}

func TestOriginCheckOnMsgbusRefusesOnlyANonMatchingOrigin(t *testing.T) {
	ts := startServer(t, Config{AllowOrigins: []string{"example.com"}})
	sub := ts.wsConnectAs(t, "/sub/x", originHeader("https://example.com"))
	for _, oc := range originCases {
		t.Run(oc.name, func(t *testing.T) {
			want := http.StatusNoContent // curl and backends send no Origin
			if oc.name == "not matching" {
				want = http.StatusUnauthorized
			}
			r := ts.wsRequest(t, http.MethodPost, "/msgbus/x", originHeader(oc.origin), "text/plain", oc.name)
			if r.status != want {
				t.Fatalf("POST: status %d (%q), want %d", r.status, r.body, want)
			}
			if want == http.StatusNoContent {
				sub.expectText(oc.name)
			} else if strings.TrimSpace(r.body) != "Origin check failed" {
				t.Errorf("POST: body %q, want %q", r.body, "Origin check failed")
			}

			// A subscription the same way.
			hdr := ""
			if oc.origin != "" {
				hdr = "Origin: " + oc.origin + "\r\n"
			}
			c := ts.dial(t, "GET /msgbus/x HTTP/1.1\r\nHost: x\r\n"+hdr+"\r\n")
			if oc.name == "matching" {
				c.expect(string(withHeaderLines(chunkedHead, "Access-Control-Allow-Origin: "+oc.origin+"\r\n"+
					"Vary: Origin\r\nAccess-Control-Expose-Headers: "+corsExposeHeaders+"\r\n"+
					"Access-Control-Allow-Credentials: true\r\n")))
			} else if want == http.StatusNoContent {
				c.expect(string(chunkedHead))
			} else {
				c.expect("HTTP/1.1 401 ")
			}
			c.Close()
		})
	}
	// The refused publish did not get through: the next message is this.
	ts.wsPost(t, "/msgbus/x", "text/plain", "marker", http.StatusNoContent)
	sub.expectText("marker")
}

func TestSecretGuardsWebSocketHandshakes(t *testing.T) {
	ts := startServer(t, Config{Secret: "s3cret"})
	for _, path := range []string{"/bus/t", "/pub/t", "/sub/t", "/push/t", "/pull/t"} {
		_, resp, err := ts.wsTryDial(t, path, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without auth: %v (%s), want 401", path, err, wsStatus(resp))
		} else if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="msgbus"` {
			t.Errorf("%s without auth: WWW-Authenticate %q", path, got)
		}
		_, resp, err = ts.wsTryDial(t, path, wsBasic("u", "wrong"))
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with a wrong password: %v (%s), want 401", path, err, wsStatus(resp))
		}
		c := ts.wsConnectAs(t, path, wsBasic("u", "s3cret"))
		c.hangUp()
	}
	for _, path := range []string{"/bus/t", "/pub/t", "/push/t"} {
		if r := ts.wsRequest(t, http.MethodPost, path, nil, "text/plain", "x"); r.status != http.StatusUnauthorized {
			t.Errorf("POST %s without auth: status %d, want 401", path, r.status)
		}
	}
	ts.waitSubscribers(t, 0)
}
