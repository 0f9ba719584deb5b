package server

// Tests of the static web root (PROTOCOL.md §2, -d DIR) against a real
// server over loopback. Helpers here are prefixed "static".

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

const staticSecret = "TOP-SECRET-7f3a91"

// staticFixture is a web root and, beside it, a folder it must never
// reveal.
type staticFixture struct {
	root    string
	outside string // holds secret.txt with staticSecret
}

// staticWrite writes content to root/name, making folders as needed.
func staticWrite(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// staticSetup builds the web root: index pages, typed files, a file with
// no extension, and symlinks that lead outside it.
func staticSetup(t *testing.T) staticFixture {
	t.Helper()
	base := t.TempDir()
	f := staticFixture{root: filepath.Join(base, "www"), outside: t.TempDir()}
	for name, content := range map[string]string{
		"index.html":      "<h1>home</h1>",
		"docs/index.html": "<h1>docs</h1>",
		"style.css":       "body { color: red }",
		"page.html":       "<p>page</p>",
		"README":          "no extension here",
		"a/keep.txt":      "inside a",
	} {
		staticWrite(t, f.root, name, content)
	}
	staticWrite(t, f.outside, "secret.txt", staticSecret)
	staticWrite(t, base, "secret.txt", staticSecret) // the root's parent
	for link, target := range map[string]string{
		"leak.txt":   filepath.Join(f.outside, "secret.txt"),
		"leakdir":    f.outside,
		"relative":   "../secret.txt",
		"a/up.txt":   "../../secret.txt",
		"docs/x.css": filepath.Join(f.outside, "secret.txt"),
	} {
		if err := os.Symlink(target, filepath.Join(f.root, filepath.FromSlash(link))); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// staticGet sends a raw request (so the path reaches the server unchanged)
// and reads the answer.
func staticGet(t *testing.T, ts *testServer, method, target string) limReply {
	t.Helper()
	c := ts.dial(t, method+" "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	defer c.Close()
	return limRead(t, c, method)
}

func TestStaticRootServesFilesWithTypeFromExtension(t *testing.T) {
	f := staticSetup(t)
	ts := startServer(t, Config{WebRoot: f.root})
	cases := []struct {
		name, target string
		body         string
		typ          string // wanted Content-Type prefix, "" for any
	}{
		{"index for the site root", "/", "<h1>home</h1>", "text/html"},
		{"index for a folder", "/docs/", "<h1>docs</h1>", "text/html"},
		{"index.html by name", "/index.html", "<h1>home</h1>", "text/html"},
		{"css", "/style.css", "body { color: red }", "text/css"},
		{"html", "/page.html", "<p>page</p>", "text/html"},
		{"file without an extension", "/README", "no extension here", ""},
		{"file in a folder", "/a/keep.txt", "inside a", "text/plain"},
		{"query string ignored", "/page.html?x=1", "<p>page</p>", "text/html"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := staticGet(t, ts, "GET", tc.target)
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: status %d (%q), want 200", tc.target, r.status, r.body)
			}
			if r.body != tc.body {
				t.Errorf("GET %s: body %q, want %q", tc.target, r.body, tc.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, tc.typ) || ct == "" {
				t.Errorf("GET %s: Content-Type %q, want %q", tc.target, ct, tc.typ)
			}
		})
	}
	// The server survived all of that, the extension-less file included.
	if r := staticGet(t, ts, "GET", "/README"); r.status != http.StatusOK {
		t.Fatalf("GET /README again: status %d, want 200", r.status)
	}
}

func TestStaticRootNeverServesAFileOutsideIt(t *testing.T) {
	f := staticSetup(t)
	ts := startServer(t, Config{WebRoot: f.root})
	targets := []string{
		"/../secret.txt",
		"/../../../../etc/passwd",
		"/../etc/passwd",
		"/%2e%2e/secret.txt",
		"/%2E%2E/%2e%2e/%2e%2e/etc/passwd",
		"/..%2fsecret.txt",
		"/%2e%2e%2fsecret.txt",
		"/a/../../secret.txt",
		"/a/../../x",
		"/a/%2e%2e/%2e%2e/secret.txt",
		"/a/..%5c..%5csecret.txt",
		"//secret.txt",
		"/.%2e/secret.txt",
		"/leak.txt",
		"/leakdir/secret.txt",
		"/relative",
		"/a/up.txt",
		"/docs/x.css",
		"/%6c%65%61%6b.txt", // "leak.txt", escaped
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			for _, method := range []string{"GET", "HEAD"} {
				r := staticGet(t, ts, method, target)
				if r.status < 400 || r.status > 499 {
					t.Errorf("%s %s: status %d (%q), want 4xx", method, target, r.status, r.body)
				}
				if strings.Contains(r.body, staticSecret) || strings.Contains(r.body, "root:") {
					t.Errorf("%s %s: body %q reveals a file outside the root", method, target, r.body)
				}
			}
		})
	}
	// Still serving after every attempt.
	if r := staticGet(t, ts, "GET", "/page.html"); r.status != http.StatusOK || r.body != "<p>page</p>" {
		t.Fatalf("GET /page.html after the attempts: %d %q, want 200", r.status, r.body)
	}
}

func TestStaticRootAnswersHEADWithoutBody(t *testing.T) {
	f := staticSetup(t)
	ts := startServer(t, Config{WebRoot: f.root})
	for _, target := range []string{"/style.css", "/", "/README"} {
		t.Run(target, func(t *testing.T) {
			get := staticGet(t, ts, "GET", target)
			head := staticGet(t, ts, "HEAD", target)
			if head.status != http.StatusOK {
				t.Fatalf("HEAD %s: status %d, want 200", target, head.status)
			}
			if head.body != "" {
				t.Errorf("HEAD %s: body %q, want none", target, head.body)
			}
			if got, want := head.header.Get("Content-Length"), itoa(len(get.body)); got != want {
				t.Errorf("HEAD %s: Content-Length %q, want %s", target, got, want)
			}
			if got, want := head.header.Get("Content-Type"), get.header.Get("Content-Type"); got != want {
				t.Errorf("HEAD %s: Content-Type %q, GET has %q", target, got, want)
			}
		})
	}
}

func TestStaticRootRefusesOtherMethodsWith405(t *testing.T) {
	f := staticSetup(t)
	ts := startServer(t, Config{WebRoot: f.root})
	for _, method := range []string{"POST", "PUT", "DELETE"} {
		t.Run(method, func(t *testing.T) {
			c := ts.dial(t, method+" /page.html HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nm")
			r := limRead(t, c, method)
			limCheckReason(t, r, http.StatusMethodNotAllowed)
			if got := r.header.Get("Allow"); got != "GET, HEAD" {
				t.Errorf("Allow %q, want %q", got, "GET, HEAD")
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(f.root, "page.html")); err != nil || string(b) != "<p>page</p>" {
		t.Errorf("page.html after the requests: %q, %v; want it unchanged", b, err)
	}
}

func TestStaticRootMissingFileIs404(t *testing.T) {
	f := staticSetup(t)
	ts := startServer(t, Config{WebRoot: f.root})
	limCheckReason(t, staticGet(t, ts, "GET", "/nope.html"), http.StatusNotFound)
}

func TestBusWorksAlongsideStaticRoot(t *testing.T) {
	f := staticSetup(t)
	// A file where the bus lives must not shadow it.
	staticWrite(t, f.root, "msgbus/news", "a file, not the bus")
	ts := startServer(t, Config{WebRoot: f.root})
	for _, http11 := range []bool{true, false} {
		sub := ts.subscribe(t, "/msgbus/news", http11)
		root := ts.subscribe(t, "/msgbus/", http11)
		ts.waitSubscribers(t, 2)
		if resp := ts.publish(t, "/msgbus/news", "text/plain", "hello"); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("publish: status %d, want 204", resp.StatusCode)
		}
		p := part("Content-Type: text/plain\r\n", "hello")
		pl := part("Content-Location: /msgbus/news\r\nContent-Type: text/plain\r\n", "hello")
		if http11 {
			sub.expect(chunkOf(p))
			root.expect(chunkOf(pl))
		} else {
			sub.expect(p)
			root.expect(pl)
		}
		sub.Close()
		root.Close()
		ts.waitSubscribers(t, 0)
	}
	if r := staticGet(t, ts, "GET", "/page.html"); r.status != http.StatusOK {
		t.Fatalf("GET /page.html: status %d, want 200", r.status)
	}
}

func TestNewRefusesMissingWebRoot(t *testing.T) {
	_, err := New(Config{WebRoot: filepath.Join(t.TempDir(), "missing")})
	if err == nil || !strings.Contains(err.Error(), "-d") {
		t.Fatalf("New with a missing web root: %v, want an error naming -d", err)
	}
}

func TestStaticRootLeavesNoGoroutineAfterShutdown(t *testing.T) {
	ignore := []goleak.Option{
		goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	}
	f := staticSetup(t)
	ts := startServer(t, Config{WebRoot: f.root})
	if r := staticGet(t, ts, "GET", "/page.html"); r.status != http.StatusOK {
		t.Fatalf("GET /page.html: status %d, want 200", r.status)
	}
	ts.stop(t)
	if err := goleak.Find(ignore...); err != nil {
		t.Errorf("after Shutdown of a server with a web root: %v", err)
	}
}
