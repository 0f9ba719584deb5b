package server

// The chat demo in login mode (chatdemo/login), in headless Chromium: two
// people log in, in two browser contexts (two cookie jars), through the
// backend, which gets each a token from the admin listener; each sees the
// other's lines under the bus's From. A page that forges a name in the
// body still shows as its user, a request with an edited token or to a
// room not joined is refused and the page says so, a name someone holds is
// refused at login, and tokens are renewed under an open page without a
// break. See browser_test.go for how the browser is run.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/msgbus/msgbus/chatdemo/login/backend"
	"github.com/msgbus/msgbus/server/bustest"
)

// A chatLoginSetup is a bus with tokens and its admin listener, and the
// login backend serving the chat page on another port, whose origin the
// bus allows.
type chatLoginSetup struct {
	bus      *adminServer
	page     string       // the backend's URL
	renewals atomic.Int64 // GET /session calls: the page renewing its token
}

func startChatLogin(t *testing.T, ttl time.Duration, rooms ...string) *chatLoginSetup {
	t.Helper()
	ln := bustest.Listen(t, "127.0.0.1:0")
	origin := "http://" + ln.Addr().String()
	cs := &chatLoginSetup{page: origin}
	cs.bus = startAdmin(t, Config{TokenSecret: testSecret, AdminToken: "admin token", AllowOrigins: []string{origin}})
	be, err := backend.New(backend.Config{Bus: cs.bus.URL(""), Admin: "http://" + cs.bus.adminAddr,
		AdminToken: "admin token", Rooms: rooms, TTL: ttl, Dir: "../chatdemo"})
	if err != nil {
		t.Fatal(err)
	}
	hs := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/session" {
			cs.renewals.Add(1)
		}
		be.ServeHTTP(w, r)
	})}}
	hs.Start()
	t.Cleanup(hs.Close)
	return cs
}

// person opens a tab in a browser context of its own (its own cookies: one
// person), at screen s when given.
func (b *browser) person(s *pagesScreen) context.Context {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("new browser context: %v", err)
	}
	if s != nil {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulatePortrait}
		if s.width < 600 {
			opts = append(opts, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)
		}
		b.run(ctx, "sizing the viewport", chromedp.EmulateViewport(s.width, s.height, opts...))
	}
	return ctx
}

// chatLoginForm opens the login page in tab ctx, and fills in name (unless
// "") and the rooms to join.
func chatLoginForm(b *browser, ctx context.Context, url, name string, rooms ...string) {
	b.t.Helper()
	b.run(ctx, "opening the login page", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("name")))
	b.wait(ctx, "the rooms offered", "document.querySelectorAll('#offered input').length > 0", 5*time.Second)
	want, _ := json.Marshal(rooms)
	eval[bool](b, ctx, `(() => { const want = `+string(want)+`;
		for (const i of document.querySelectorAll('#offered input')) i.checked = want.includes(i.value);
		return true })()`)
	if name != "" {
		b.run(ctx, "typing "+name, chromedp.SetValue(chromedp.ID("name"), name))
	}
}

// chatLoginAs logs in as name with rooms in tab ctx and waits for its
// streams.
func chatLoginAs(b *browser, ctx context.Context, url, name string, rooms ...string) {
	b.t.Helper()
	chatLoginForm(b, ctx, url, name, rooms...)
	b.run(ctx, "logging in as "+name, chromedp.Click(chromedp.CSS("#login button")), chromedp.WaitVisible(chromedp.ID("text")))
	b.wait(ctx, name+"'s streams", text("#status")+" === 'connected'", 5*time.Second)
}

// A tamperer edits the chat's POSTs to the bus in one tab before they
// leave the browser, as a person in the developer tools (or a script with
// the page's token) would: the body, the token, the room.
type tamperer struct {
	mu   sync.Mutex
	edit func(url, body string, headers map[string]string) (string, string, map[string]string) // nil: none
	seen int                                                                                   // POSTs edited
}

// tamper intercepts tab ctx's fetches of /msgbus/chat/… until the test
// ends, and applies the tamperer's edit, when set, to each POST.
func (b *browser) tamper(ctx context.Context) *tamperer {
	b.t.Helper()
	tp := &tamperer{}
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	b.run(ctx, "intercepting the chat's posts", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
			{URLPattern: "*/msgbus/chat/*", ResourceType: network.ResourceTypeFetch}}})
		return err
	}))
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			p := fetch.ContinueRequestParams{RequestID: ev.RequestID}
			tp.mu.Lock()
			if edit := tp.edit; edit != nil && ev.Request.Method == http.MethodPost {
				headers := map[string]string{}
				for k, v := range ev.Request.Headers {
					headers[k], _ = v.(string)
				}
				body := ""
				for _, e := range ev.Request.PostDataEntries {
					body += string(e.Bytes)
				}
				url, body, headers := edit(ev.Request.URL, body, headers)
				p.URL, p.PostData = url, []byte(body)
				for k, v := range headers {
					p.Headers = append(p.Headers, &fetch.HeaderEntry{Name: k, Value: v})
				}
				tp.seen++
			}
			tp.mu.Unlock()
			chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				_, err := cdp.Call(ctx, t, fetch.ContinueRequest, p)
				return err
			}))
		}
	}()
	return tp
}

func (tp *tamperer) set(edit func(url, body string, headers map[string]string) (string, string, map[string]string)) {
	tp.mu.Lock()
	tp.edit, tp.seen = edit, 0
	tp.mu.Unlock()
}

func (tp *tamperer) edited() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.seen
}

// authorization returns the header map's Authorization, whatever its case.
func authorization(headers map[string]string) (string, string) {
	for k, v := range headers {
		if strings.EqualFold(k, "Authorization") {
			return k, v
		}
	}
	return "Authorization", ""
}

func TestBrowserChatLoginEachPostsAsThemselvesOnly(t *testing.T) {
	const ttl = 10 * time.Second // the shortest the backend allows: the page renews twice during the test
	cs := startChatLogin(t, ttl, "lobby", "random")
	b := newBrowser(t)
	alice, bob := b.person(nil), b.person(nil)
	chatLoginAs(b, alice, cs.page+"/#lobby", "alice", "lobby")
	loggedIn := time.Now()
	chatLoginAs(b, bob, cs.page+"/#lobby", "bob", "lobby", "random")
	cs.bus.waitSubscribers(t, 3) // alice's lobby, bob's lobby and random

	if got := eval[string](b, alice, "[...document.querySelectorAll('#rooms a')].map((a) => a.textContent).join(' ')"); got != "#lobby" {
		t.Errorf("alice's rooms: %q, want only the lobby she joined", got)
	}
	if got := eval[string](b, alice, text("#me")); got != "as alice" {
		t.Errorf("alice's page says %q", got)
	}

	// Each sees the other's lines under the name they logged in with.
	chatSay(b, alice, "hi bob")
	chatSay(b, bob, "hello alice")
	for name, tab := range map[string]context.Context{"alice": alice, "bob": bob} {
		chatWait(b, tab, "both lines at "+name+"'s", chatLineCount+" === 2", 5*time.Second)
		sameLines(t, name+"'s lobby", chatLines(b, tab), []string{"alice: hi bob", "bob: hello alice"})
	}
	if mine := eval[string](b, alice, "[...document.querySelectorAll('#messages li.mine .text')].map((e) => e.textContent).join('|')"); mine != "hi bob" {
		t.Errorf("alice's own lines: %q, want hi bob", mine)
	}

	// A name someone holds is refused at login, whatever its case.
	mallory := b.person(nil)
	chatLoginForm(b, mallory, cs.page+"/", "Alice", "lobby")
	b.run(mallory, "logging in as Alice", chromedp.Click(chromedp.CSS("#login button")))
	b.wait(mallory, "the refusal", text("#login-error")+".includes('alice is here')", 5*time.Second)
	if eval[bool](b, mallory, "!document.getElementById('chat').hidden") {
		t.Errorf("the chat opened for a second alice")
	}

	// alice's page, edited, names bob in the body: the bus says alice.
	tp := b.tamper(alice)
	tp.set(func(url, body string, h map[string]string) (string, string, map[string]string) {
		return url, `{"name":"bob","text":"I am bob, honest"}`, h
	})
	chatSay(b, alice, "anything")
	want := []string{"alice: hi bob", "bob: hello alice", "alice: I am bob, honest"}
	for name, tab := range map[string]context.Context{"alice": alice, "bob": bob} {
		chatWait(b, tab, "the forged line at "+name+"'s", chatLineCount+" === 3", 5*time.Second)
		sameLines(t, name+"'s lobby after a forged name", chatLines(b, tab), want)
	}
	if tp.edited() != 1 {
		t.Fatalf("%d posts edited, want 1", tp.edited())
	}

	// Her token with the sub changed to bob, not signed again: 401, and
	// the page says it was not sent (it renews its token and tries once
	// more, edited again).
	tp.set(func(url, body string, h map[string]string) (string, string, map[string]string) {
		k, v := authorization(h)
		h[k] = "Bearer " + bustest.EditedToken(t, strings.TrimPrefix(v, "Bearer "), "bob")
		return url, body, h
	})
	chatSay(b, alice, "as bob?")
	chatWait(b, alice, "the refusal of an edited token", lastLine+".startsWith('not sent: 401 ')", 5*time.Second)
	if got := eval[string](b, alice, "document.getElementById('text').value"); got != "as bob?" {
		t.Errorf("after the refusal the message field holds %q, want the line to send again", got)
	}

	// Her token to a room she did not join: 403.
	tp.set(func(url, body string, h map[string]string) (string, string, map[string]string) {
		return strings.Replace(url, "/msgbus/chat/lobby", "/msgbus/chat/random", 1), body, h
	})
	chatSay(b, alice, "into random")
	chatWait(b, alice, "the refusal of a room not joined", lastLine+".startsWith('not sent: 403 ')", 5*time.Second)
	if got := eval[string](b, alice, lastLine); !strings.Contains(got, "chat/random") {
		t.Errorf("the refusal says %q, want it to name chat/random", got)
	}
	b.shot(alice, "chatlogin-refused")
	tp.set(nil)

	// Nothing of that reached bob, in either room; and what is said in
	// random does not reach alice.
	b.run(bob, "entering #random", chromedp.Click(chromedp.CSS("#rooms a[href='#random']")))
	chatSay(b, bob, "only for random")
	chatWait(b, bob, "bob's line in random", chatLineCount+" === 1", 5*time.Second)
	sameLines(t, "bob's random", chatLines(b, bob), []string{"bob: only for random"})
	b.run(bob, "back to the lobby", chromedp.Click(chromedp.CSS("#rooms a[href='#lobby']")))
	chatWait(b, bob, "the lobby again", chatLineCount+" === 3", 5*time.Second)
	sameLines(t, "bob's lobby", chatLines(b, bob), want)
	if n := eval[int](b, alice, "document.querySelectorAll('#rooms .unread').length"); n != 0 {
		t.Errorf("alice's page shows %d unread badges for a room she did not join", n)
	}

	// Past the first token's end (and the bus's leeway), the streams go on:
	// the page renewed its token and switched to it without a break.
	if wait := time.Until(loggedIn.Add(ttl + 6*time.Second)); wait > 0 {
		time.Sleep(wait) // the tokens' clock: nothing to wait for but time
	}
	if n := cs.renewals.Load(); n < 4 { // two pages' first GET and a renewal each
		t.Errorf("%d GET /session, want the pages to have renewed their tokens", n)
	}
	chatSay(b, alice, "still here")
	want = append(want, "alice: still here")
	for name, tab := range map[string]context.Context{"alice": alice, "bob": bob} {
		chatWait(b, tab, "a line after the first token ended, at "+name+"'s", lastLine+".endsWith('still here')", 5*time.Second)
		if got := eval[string](b, tab, text("#status")); got != "connected" {
			t.Errorf("%s's page is %q after renewing its token", name, got)
		}
	}
	for name, tab := range map[string]context.Context{"alice": alice, "bob": bob} {
		lines := chatLines(b, tab)
		if indexOf(lines, "* reconnected") >= 0 {
			t.Errorf("%s's stream broke when its token was renewed: %q", name, lines)
		}
		sameLines(t, name+"'s lobby at the end", chatOnly(lines), want)
	}
	b.shot(alice, "chatlogin-alice")
	b.shot(bob, "chatlogin-bob")

	// Logging out ends the chat and frees the name.
	b.run(alice, "logging out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("name")))
	chatLoginAs(b, mallory, cs.page+"/#lobby", "Alice", "lobby")
	chatSay(b, mallory, "the name was free")
	chatWait(b, bob, "the new Alice's line", lastLine+".endsWith('the name was free')", 5*time.Second)
	if got := chatLines(b, bob); got[len(got)-1] != "Alice: the name was free" {
		t.Errorf("bob's last line %q", got[len(got)-1])
	}
}
