package console

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/msgbus/msgbus/server/ui"
)

// get sends method path to Handler and returns the response, its body read.
func get(t *testing.T, method, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, req)
	resp := w.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestConsoleHandlerServesThePageItsAssetsAndTheSharedStylesheet(t *testing.T) {
	for _, tc := range []struct {
		path, typ, holds string
	}{
		{"/", "text/html; charset=utf-8", "<title>msgbus console</title>"},
		{"/console", "text/html; charset=utf-8", "<title>msgbus console</title>"},
		{"/console/", "text/html; charset=utf-8", "<title>msgbus console</title>"},
		{ScriptPath, "text/javascript; charset=utf-8", "/admin/channels"},
		{StylePath, "text/css; charset=utf-8", ".charts"},
		{ui.Path, "text/css; charset=utf-8", string(ui.CSS)},
	} {
		resp, body := get(t, http.MethodGet, tc.path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", tc.path, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != tc.typ {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.typ)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", tc.path, got)
		}
		if !strings.Contains(body, tc.holds) {
			t.Errorf("GET %s: the body does not hold %q", tc.path, tc.holds)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if page := strings.HasPrefix(tc.typ, "text/html"); page != (csp == CSP) {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
	}
}

func TestConsoleHandlerAnswersHeadAndRevalidatesWithItsETag(t *testing.T) {
	resp, body := get(t, http.MethodHead, "/console")
	if resp.StatusCode != http.StatusOK || body != "" || resp.Header.Get("Content-Length") == "0" {
		t.Errorf("HEAD /console = %d, %d bytes, Content-Length %s", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
	}
	resp, _ = get(t, http.MethodGet, ScriptPath)
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET %s: ETag %q, Cache-Control %q", ScriptPath, etag, resp.Header.Get("Cache-Control"))
	}
	if resp, _ := get(t, http.MethodGet, ScriptPath, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET %s with its ETag = %d, want 304", ScriptPath, resp.StatusCode)
	}
}

func TestConsoleHandlerRefusesOtherPathsAndMethods(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/console/nothing.js", http.StatusNotFound},
		{http.MethodGet, "/index.html", http.StatusNotFound},
		{http.MethodGet, "/console/console.go", http.StatusNotFound},
		{http.MethodGet, "/console.js", http.StatusNotFound},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodDelete, ScriptPath, http.StatusMethodNotAllowed},
	} {
		if resp, _ := get(t, tc.method, tc.path); resp.StatusCode != tc.code {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
		}
	}
}

// TestConsolePageLoadsNothingFromElsewhere: every URL the embedded files name is
// one the handler serves, and none points to another origin.
func TestConsolePageLoadsNothingFromElsewhere(t *testing.T) {
	external := regexp.MustCompile(`(?i)https?:|//[a-z0-9-]+\.[a-z]|\bcdn\b|@import|url\(\s*['"]?[a-z]+:|\bimport\s*\(|\bwss?:`)
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, _ := fs.ReadFile(files, e.Name())
		for i, line := range strings.Split(string(b), "\n") {
			if m := external.FindString(line); m != "" {
				t.Errorf("%s:%d names %q: %s", e.Name(), i+1, m, strings.TrimSpace(line))
			}
		}
	}
	// Each src= and href= of the page is served by the handler (or data:).
	page, _ := fs.ReadFile(files, "index.html")
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(string(page), -1)
	if len(refs) < 3 {
		t.Fatalf("the page names %d resources, want its script and two stylesheets", len(refs))
	}
	for _, r := range refs {
		if strings.HasPrefix(r[1], "data:") {
			continue
		}
		if resp, _ := get(t, http.MethodGet, r[1]); resp.StatusCode != http.StatusOK {
			t.Errorf("the page names %s, which the handler answers %d", r[1], resp.StatusCode)
		}
	}
}
