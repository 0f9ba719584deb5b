package server

// Cross-origin pages in a real browser (PROTOCOL.md §4): a page served from
// a second origin (another port of 127.0.0.1) uses the bus with fetch,
// EventSource and WebSocket. Without --allow-origin the browser and the
// server keep it out; with it, CORS lets it publish and subscribe.

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// crossOriginPage serves, at a second origin, a page that tries the bus at
// busURL and records what happened in window.results.
func crossOriginPage(t *testing.T, busURL string) string {
	t.Helper()
	page := `<!doctype html><meta charset="utf-8"><title>elsewhere</title><script>
const bus = ` + jsString(busURL) + `;
window.results = {};
const r = window.results;
const ws = new WebSocket(bus.replace("http", "ws") + "/sub/cors");
ws.onopen = () => { r.wsOpen = true; };
ws.onerror = () => { r.wsError = true; };
const es = new EventSource(bus + "/msgbus/cors");
es.onerror = () => { r.sseError = true; };
es.onmessage = ev => { if (ev.data.startsWith("{")) r.sse = ev.data; };
async function publish() {
  // A "simple" request needs no preflight: the server itself must refuse it.
  fetch(bus + "/msgbus/cors", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
    body: "simple"}).then(() => { r.simpleSent = true; }, () => { r.simpleSent = true; });
  try {
    const res = await fetch(bus + "/msgbus/cors", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: '{"from":"elsewhere"}'});
    r.status = res.status;
    r.id = res.headers.get("Msgbus-Id");
  } catch (e) { r.fetchError = String(e); }
}
es.onopen = () => { r.sseOpen = true; publish(); };
setTimeout(() => { if (!r.sseOpen) publish(); }, 500);
</script>`
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(page))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func TestBrowserPageFromAnotherOriginIsKeptOutByDefault(t *testing.T) {
	// The server first, so that the browser is closed (cleanups run last
	// first) before Shutdown waits for its connections.
	ts := startServer(t, Config{})
	b := newBrowser(t)
	elsewhere := crossOriginPage(t, ts.URL(""))
	b.run(b.ctx, "opening the other origin's page", chromedp.Navigate(elsewhere))
	b.wait(b.ctx, "the attempts to fail", "window.results.wsError && (window.results.fetchError || window.results.status) && "+
		"window.results.sseError && window.results.simpleSent", 5*time.Second)
	if got := eval[bool](b, b.ctx, "!!window.results.wsOpen"); got {
		t.Error("a page from another origin opened a WebSocket subscription")
	}
	if st := ts.Stats(); st.Published != 0 {
		t.Errorf("a page from another origin published %d messages", st.Published)
	}
}

func TestBrowserPageFromAnAllowedOriginPublishesAndSubscribes(t *testing.T) {
	// The page's origin is known only once its server listens, and the
	// bus must list it: list the host, which any port of it matches.
	ts := startServer(t, Config{AllowOrigins: []string{"http://127.0.0.1:*"}})
	b := newBrowser(t)
	elsewhere := crossOriginPage(t, ts.URL(""))
	if !strings.HasPrefix(elsewhere, "http://127.0.0.1:") || elsewhere == ts.URL("") {
		t.Fatalf("the page's origin %s is not another origin of 127.0.0.1", elsewhere)
	}
	b.run(b.ctx, "opening the other origin's page", chromedp.Navigate(elsewhere))
	b.wait(b.ctx, "the page's publish", "window.results.status === 204", 5*time.Second)
	if id := eval[string](b, b.ctx, "window.results.id || ''"); id == "" {
		t.Error("the page cannot read Msgbus-Id: not exposed")
	}
	b.wait(b.ctx, "the WebSocket", "window.results.wsOpen === true", 5*time.Second)
	b.wait(b.ctx, "the page's EventSource to get its own message",
		`window.results.sse !== undefined && JSON.parse(window.results.sse).from === "elsewhere"`, 5*time.Second)
}
