package server

// Tests that the web root's folder redirects are relative (PROTOCOL.md §5):
// fasthttp built them from the Host header, so "Host: evil.example" made the
// server send its visitors to http://evil.example/.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestWebRootFolderRedirectIsRelativeWhateverTheHost(t *testing.T) {
	f := staticSetup(t)
	staticWrite(t, f.root, "docs/sub/index.html", "<h1>sub</h1>")
	staticWrite(t, f.root, "sp ace/index.html", "<h1>space</h1>")
	staticWrite(t, f.root, "x:y/index.html", "<h1>colon</h1>")
	ts := startServer(t, Config{WebRoot: f.root})
	tests := []struct {
		method, target, host string
		location             string // wanted Location
		folder               string // the folder's path, for following it
		body                 string // the folder's index
	}{
		{"GET", "/docs", "evil.example", "./docs/", "/docs/", "<h1>docs</h1>"},
		{"HEAD", "/docs", "evil.example", "./docs/", "/docs/", "<h1>docs</h1>"},
		{"GET", "/docs", "evil.example:8443", "./docs/", "/docs/", "<h1>docs</h1>"},
		{"GET", "/docs?next=//evil.example", "evil.example", "./docs/", "/docs/", "<h1>docs</h1>"},
		{"GET", "http://evil.example/docs", "evil.example", "./docs/", "/docs/", "<h1>docs</h1>"},
		{"GET", "/docs/sub", "evil.example", "./sub/", "/docs/sub/", "<h1>sub</h1>"},
		{"GET", "/sp%20ace", "evil.example", "./sp%20ace/", "/sp%20ace/", "<h1>space</h1>"},
		{"GET", "/x:y", "evil.example", "./x:y/", "/x:y/", "<h1>colon</h1>"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target+" Host "+tt.host, func(t *testing.T) {
			c := ts.dial(t, tt.method+" "+tt.target+" HTTP/1.1\r\nHost: "+tt.host+"\r\nConnection: close\r\n\r\n")
			r := limRead(t, c, tt.method)
			if r.status < 300 || r.status > 399 {
				t.Fatalf("status %d (%q), want a redirect", r.status, r.body)
			}
			loc := r.header.Get("Location")
			if loc != tt.location {
				t.Errorf("Location %q, want %q", loc, tt.location)
			}
			u, err := url.Parse(loc)
			if err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(loc, "//") || strings.Contains(loc, "evil") {
				t.Fatalf("Location %q names a scheme or host (%v): an open redirect", loc, err)
			}
			// A browser resolves it against the URL it asked for.
			base, err := url.Parse("http://" + ts.Addr + strings.TrimPrefix(tt.target, "http://evil.example"))
			if err != nil {
				t.Fatal(err)
			}
			next := base.ResolveReference(u)
			if next.Host != ts.Addr || next.EscapedPath() != tt.folder {
				t.Fatalf("Location %q from %s leads to %s, want http://%s%s", loc, base, next, ts.Addr, tt.folder)
			}
			if got := staticGet(t, ts, "GET", next.RequestURI()); got.status != http.StatusOK || got.body != tt.body {
				t.Fatalf("GET %s: %d %q, want 200 %q", next.RequestURI(), got.status, got.body, tt.body)
			}
		})
	}
}

func TestWebRootFilesAndMissingPathsAreNotRedirected(t *testing.T) {
	f := staticSetup(t)
	ts := startServer(t, Config{WebRoot: f.root})
	for _, target := range []string{"/page.html", "/docs/", "/nope", "/"} {
		c := ts.dial(t, "GET "+target+" HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
		r := limRead(t, c, "GET")
		if r.status >= 300 && r.status <= 399 || r.header.Get("Location") != "" {
			t.Errorf("GET %s: status %d, Location %q; want no redirect", target, r.status, r.header.Get("Location"))
		}
	}
}
