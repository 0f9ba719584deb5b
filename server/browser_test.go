package server

// Real browser tests (PROTOCOL.md §3): headless Chromium, driven with
// chromedp, against a real server on 127.0.0.1. They skip when no Chromium
// binary is found, except under CI (CI set), where one must be: .ci/run
// installs Debian's chromium. Each test saves screenshots to its temporary
// folder and to /tmp/msgbus-shots/ for a person to look at.

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/msgbus/msgbus/server/bustest"
)

// browserShots is where screenshots are copied for people to look at.
const browserShots = "/tmp/msgbus-shots"

// browserBinary finds Chromium: $MSGBUS_CHROMIUM, else the usual names on
// PATH.
func browserBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("MSGBUS_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium binary (chromium, chromium-browser, google-chrome or $MSGBUS_CHROMIUM): " +
		"install Debian's chromium package (apt-get install chromium) to run the browser tests"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + "; CI must have one")
	}
	t.Skip(msg)
	return ""
}

// A browser is one headless Chromium with a fresh profile, and a folder for
// its test's screenshots.
type browser struct {
	t     *testing.T
	ctx   context.Context // the first tab's; NewContext(ctx) opens more
	shots string
}

// newBrowser starts Chromium for the rest of the test. It is closed, and its
// process waited for, when the test ends.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	// chromedp's defaults: --headless, --no-first-run,
	// --disable-background-networking, --disable-sync, no throttling of
	// background tabs' timers, and more.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browserBinary(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 720),
	)
	// A whole test's deadline: nothing a browser does here takes long.
	// Chromium now and then fails to launch on a loaded machine (its
	// wrapper script, crashpad): try three times before failing.
	var ctx context.Context
	var err error
	for range 3 {
		base, stop := context.WithTimeout(context.Background(), 60*time.Second)
		alloc, allocCancel := chromedp.NewExecAllocator(base, opts...)
		c, cancel := chromedp.NewContext(alloc)
		t.Cleanup(func() {
			cancel()      // closes the browser
			allocCancel() // waits for its process
			stop()
		})
		if err = chromedp.Do(c); err == nil {
			ctx = c
			break
		}
	}
	if err != nil {
		t.Fatalf("starting %s: %v", browserBinary(t), err)
	}
	return &browser{t: t, ctx: ctx, shots: t.TempDir()}
}

// tab opens another tab in the same browser, closed at the end of the test.
func (b *browser) tab() context.Context {
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("new tab: %v", err)
	}
	return ctx
}

// run runs actions in tab ctx, failing the test on error.
func (b *browser) run(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// wait polls a JavaScript expression in tab ctx until it is truthy, failing
// after timeout, and returns how long it took.
func (b *browser) wait(ctx context.Context, what, expr string, timeout time.Duration) time.Duration {
	b.t.Helper()
	start := time.Now()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout),
		chromedp.WithPollingInterval(10*time.Millisecond))); err != nil {
		b.t.Fatalf("waiting %v for %s (%s): %v", timeout, what, expr, err)
	}
	return time.Since(start)
}

// eval evaluates a JavaScript expression in tab ctx.
func eval[T any](b *browser, ctx context.Context, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// shot saves a screenshot of tab ctx as name.png in the test's folder and in
// browserShots.
func (b *browser) shot(ctx context.Context, name string) {
	b.t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	file := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(file, buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
	if err := os.MkdirAll(browserShots, 0o755); err == nil {
		os.WriteFile(filepath.Join(browserShots, name+".png"), buf, 0o644)
	}
	b.t.Logf("screenshot %s (copied to %s)", file, browserShots)
}

// viewerLive is true once the viewer's stream is open.
const viewerLive = "document.getElementById('status').classList.contains('live')"

// text is a JavaScript expression for the textContent of a selector's first
// match, "" when none.
func text(selector string) string {
	return "(document.querySelector(" + jsString(selector) + ")?.textContent ?? '')"
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestBrowserViewerShowsEachMessageInPlace(t *testing.T) {
	ts := startServer(t, Config{})
	b := newBrowser(t)
	b.run(b.ctx, "opening the viewer", chromedp.Navigate(ts.URL("/msgbus/news")))
	b.wait(b.ctx, "the viewer's stream", viewerLive, 5*time.Second)
	ts.waitSubscribers(t, 1)

	for i, msg := range []string{"Hello from curl", "The next one replaces it"} {
		ts.publish(t, "/msgbus/news", "text/plain; charset=utf-8", msg)
		d := b.wait(b.ctx, "message "+itoa(i), text("#current pre")+" === "+jsString(msg), 5*time.Second)
		if d > time.Second {
			t.Errorf("message %d took %v to show, want under a second", i, d)
		}
		rows := eval[int](b, b.ctx, "document.querySelectorAll('#log tbody tr').length")
		if rows != i+1 {
			t.Errorf("after message %d: %d log rows, want %d", i, rows, i+1)
		}
	}
	current := eval[string](b, b.ctx, text("#current"))
	if strings.Contains(current, "Hello") {
		t.Errorf("the first message is still shown: %q", current)
	}
	b.shot(b.ctx, "viewer-text")

	// HTML shows in a sandboxed iframe: its script does not run, here or
	// there.
	ts.publish(t, "/msgbus/news", "text/html",
		`<h1 style="color:#00897b">An HTML message</h1><p>with <b>markup</b></p>`+
			`<script>parent.document.title = 'pwned'; document.body.append('script ran')</script>`)
	b.wait(b.ctx, "the HTML message", "document.querySelector('#current iframe')?.getAttribute('sandbox') === ''", 5*time.Second)
	b.wait(b.ctx, "the iframe's document", "document.querySelector('#current iframe').srcdoc.includes('An HTML message')", time.Second)
	time.Sleep(200 * time.Millisecond) // a script, if it could run, would have by now
	title := eval[string](b, b.ctx, "document.title")
	if strings.Contains(title, "pwned") {
		t.Errorf("an HTML message's script ran in the viewer: title %q", title)
	}
	b.shot(b.ctx, "viewer-html")
}

// testPNG is a w×h PNG of a gradient.
func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(255 * x / w), uint8(255 * y / h), 160, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBrowserImageChannelRenders(t *testing.T) {
	root := t.TempDir()
	err := os.WriteFile(filepath.Join(root, "img.html"), []byte(`<!doctype html><body><script>
// Added after the load event, which an endless image would hold back.
addEventListener('load', () => { const i = new Image(); i.id = 'live'; i.src = '/msgbus/cam2'; document.body.append(i) })
</script>`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{WebRoot: root})
	b := newBrowser(t)
	const naturalWidth = "(() => { const i = document.querySelector(%q); return i && i.complete ? i.naturalWidth : 0 })()"

	// In the viewer, over SSE (the PNG arrives base64).
	b.run(b.ctx, "opening the viewer", chromedp.Navigate(ts.URL("/msgbus/cam")))
	b.wait(b.ctx, "the viewer's stream", viewerLive, 5*time.Second)
	ts.waitSubscribers(t, 1)
	ts.publish(t, "/msgbus/cam", "image/png", string(testPNG(t, 320, 120)))
	b.wait(b.ctx, "the image", strings.Replace(naturalWidth, "%q", jsString("#current img"), 1)+" === 320", 5*time.Second)
	src := eval[string](b, b.ctx, "document.querySelector('#current img').src")
	if !strings.HasPrefix(src, "blob:") {
		t.Errorf("image src %q, want an object URL", src)
	}
	b.shot(b.ctx, "viewer-image")

	// The next image replaces it.
	ts.publish(t, "/msgbus/cam", "image/png", string(testPNG(t, 200, 100)))
	b.wait(b.ctx, "the second image", strings.Replace(naturalWidth, "%q", jsString("#current img"), 1)+" === 200", 5*time.Second)

	// <img src> on the channel asks for image/*, so it gets multipart
	// natively, as MJPEG cameras always did.
	tab := b.tab()
	b.run(tab, "a page with <img src>", chromedp.Navigate(ts.URL("/img.html")))
	ts.waitSubscribers(t, 2)
	// Chromium shows a part once the next part's boundary arrives (our
	// parts start with their boundary), so an <img> is one frame behind:
	// the first image shows when the second begins.
	ts.publish(t, "/msgbus/cam2", "image/png", string(testPNG(t, 640, 240)))
	ts.publish(t, "/msgbus/cam2", "image/png", string(testPNG(t, 800, 240)))
	b.wait(tab, "the multipart image", "document.getElementById('live').naturalWidth === 640", 5*time.Second)
	b.shot(tab, "img-multipart")
}

// chatLogin opens the chat demo in tab ctx and enters as name.
func chatLogin(b *browser, ctx context.Context, url, name string) {
	b.t.Helper()
	b.run(ctx, "logging in as "+name,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), name),
		chromedp.Click(chromedp.CSS("#login button")),
		chromedp.WaitVisible(chromedp.ID("text")),
	)
	b.wait(ctx, name+"'s stream", text("#status")+" === 'connected'", 5*time.Second)
}

// chatSay sends a message from tab ctx.
func chatSay(b *browser, ctx context.Context, msg string) {
	b.t.Helper()
	b.run(ctx, "sending "+msg,
		chromedp.SetValue(chromedp.ID("text"), msg),
		chromedp.Click(chromedp.CSS("#compose button")),
	)
}

// lastLine is the text of the last message shown.
const lastLine = "(document.querySelector('#messages li:last-child')?.textContent ?? '')"

func TestBrowserChatTabsExchangeMessagesAsText(t *testing.T) {
	ts := startServer(t, Config{WebRoot: "../chatdemo"})
	b := newBrowser(t)
	alice, bob := b.ctx, b.tab()
	chatLogin(b, alice, ts.URL("/#lobby"), "alice")
	chatLogin(b, bob, ts.URL("/#lobby"), "bob")
	ts.waitSubscribers(t, 2)

	chatSay(b, alice, "hi bob")
	b.wait(bob, "alice's message at bob's", lastLine+".endsWith('alicehi bob')", 5*time.Second)
	chatSay(b, bob, "hello alice")
	b.wait(alice, "bob's message at alice's", lastLine+".endsWith('bobhello alice')", 5*time.Second)

	evil := `<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"><b>bold?</b>`
	chatSay(b, bob, evil)
	for name, tab := range map[string]context.Context{"alice": alice, "bob": bob} {
		b.wait(tab, "the <script> message at "+name+"'s", lastLine+".endsWith("+jsString("bob"+evil)+")", 5*time.Second)
		injected := eval[int](b, tab, "document.querySelectorAll('#messages script, #messages img, #messages b').length")
		if injected != 0 {
			t.Errorf("%s's page made %d elements of a message's markup", name, injected)
		}
	}
	time.Sleep(200 * time.Millisecond) // an onerror, had the <img> been made, would have fired
	for name, tab := range map[string]context.Context{"alice": alice, "bob": bob} {
		if eval[bool](b, tab, "window.pwned !== undefined") {
			t.Errorf("a chat message's script ran in %s's page", name)
		}
	}

	// Rooms are channels: a message in another room shows as unread.
	ts.publish(t, "/msgbus/chat/random", "application/json", `{"name":"carol","text":"over here"}`)
	b.wait(alice, "the unread badge", text("#rooms a[href='#random'] .unread")+" === '1'", 5*time.Second)
	b.shot(alice, "chat-alice")
	b.shot(bob, "chat-bob")
}

func TestBrowserChatReconnectsAfterServerRestart(t *testing.T) {
	cfg := Config{WebRoot: "../chatdemo"}
	ts := startServer(t, cfg)
	b := newBrowser(t)
	chatLogin(b, b.ctx, ts.URL("/#lobby"), "dora")
	ts.waitSubscribers(t, 1)
	ts.stop(t)
	b.wait(b.ctx, "the page to see the server go", text("#status")+" !== 'connected'", 5*time.Second)

	ts2 := browserRestart(t, cfg, ts.Addr)
	b.wait(b.ctx, "the page to reconnect", text("#status")+" === 'connected'", 10*time.Second)
	ts2.waitSubscribers(t, 1)
	ts2.publish(t, "/msgbus/chat/lobby", "application/json", `{"name":"eve","text":"welcome back"}`)
	b.wait(b.ctx, "a message after the restart", lastLine+".endsWith('evewelcome back')", 5*time.Second)
	b.shot(b.ctx, "chat-reconnected")
}

// browserRestart starts a server with cfg on addr, where one just stopped,
// so a page that knew the old one can find it again.
func browserRestart(t *testing.T, cfg Config, addr string) *testServer {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &testServer{Server: srv, Running: bustest.Serve(t, srv, addr)}
}

func TestBrowserViewerFloodDashboard(t *testing.T) {
	ts := startServer(t, Config{})
	b := newBrowser(t)
	b.run(b.ctx, "opening /msgbus/flood", chromedp.Navigate(ts.URL("/msgbus/flood")))
	b.wait(b.ctx, "the viewer's stream", viewerLive, 5*time.Second)
	b.wait(b.ctx, "the dashboard", "!document.getElementById('flood').hidden", time.Second)
	ts.waitSubscribers(t, 1)

	// test-pub's stamps (tools/internal/load): two workers for about 2.5 s,
	// worker 1 skipping sequence number 100.
	const perWorker = 250
	sent := 0
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for seq := range perWorker {
		<-tick.C
		for w := range 2 {
			if w == 1 && seq == 100 {
				continue
			}
			stamp := "LOAD 5eed " + itoa(w) + " " + itoa(seq) + " " + strconv.FormatInt(time.Now().UnixNano(), 10) + "\n"
			ts.publish(t, "/msgbus/flood", "text/plain", stamp+strings.Repeat("x", 64))
			sent++
		}
	}
	b.wait(b.ctx, "every stamp counted", text("#f-total")+" === "+jsString(itoa(sent)), 5*time.Second)
	b.wait(b.ctx, "a second's rate", text("#f-rate")+" !== '–'", 3*time.Second)
	if got := eval[string](b, b.ctx, text("#f-lost")); got != "1" {
		t.Errorf("missing: %q, want 1 (worker 1 skipped one)", got)
	}
	if got := eval[string](b, b.ctx, text("#f-pubs")); got != "2" {
		t.Errorf("publishers: %q, want 2", got)
	}
	if head, got := eval[string](b, b.ctx, text("#count")), eval[string](b, b.ctx, text("#f-total")); head != got+" messages" {
		t.Errorf("the header says %q, the dashboard %q received", head, got)
	}
	p50 := eval[string](b, b.ctx, text("#f-p50"))
	t.Logf("dashboard: rate %s, p50 %s, p99 %s", eval[string](b, b.ctx, text("#f-rate")), p50,
		eval[string](b, b.ctx, text("#f-p99")))
	if !strings.HasSuffix(p50, " ms") {
		t.Errorf("p50 latency %q, want a number of ms", p50)
	}
	b.shot(b.ctx, "viewer-flood")
}
