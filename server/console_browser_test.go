package server

// The operators' console (server/console, PROTOCOL.md §9) in headless
// Chromium against a real server with its admin listener: channels appear
// and their counts and rates move as messages flow, a "log out" button ends
// a subscriber's stream, the publish form publishes and shows the server's
// refusals, polling pauses in a hidden tab, and an --admin-token is asked
// for once.

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// consoleURL is the address of the console on as's admin listener.
func consoleURL(t *testing.T, as *adminServer, _ string) string {
	t.Helper()
	return "http://" + as.adminAddr + "/"
}

// consoleLive is true once the console's last poll succeeded.
const consoleLive = "document.getElementById('status').classList.contains('live')"

// consoleCell is a JavaScript expression for the text of a channel's row's
// cell (1: subscribers), "" while the row is not there.
func consoleCell(channel string, cell int) string {
	sel := `#channels tr[data-channel="` + channel + `"]`
	return "(document.querySelector(" + jsString(sel) + ")?.cells[" + itoa(cell) + "].textContent.trim() ?? '')"
}

// consoleRate is a JavaScript expression for the rate a chart shows now.
func consoleRate(id string) string {
	return "(parseFloat(" + text("#"+id) + ".replace(/,/g, '')) || 0)"
}

// publishing publishes to channel through the admin API every 20 ms until
// the returned stop is called, and returns how many it published.
func publishing(t *testing.T, as *adminServer, channel string) (stop func() int) {
	var (
		wg   sync.WaitGroup
		done = make(chan struct{})
		n    int
	)
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			resp, err := as.client.Post("http://"+as.adminAddr+"/admin/publish/"+channel, "text/plain", strings.NewReader("tick "+itoa(n)))
			if err != nil {
				t.Errorf("publishing: %v", err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Errorf("publishing: %d", resp.StatusCode)
				return
			}
			n++
		}
	})
	var once sync.Once
	stop = func() int {
		once.Do(func() { close(done); wg.Wait() })
		return n
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestConsoleBrowserShowsChannelsMovingAndLogsOutASession(t *testing.T) {
	as := startAdmin(t, Config{TokenSecret: testSecret, MaxMessageBytes: 1000})
	now := time.Now()
	rights := []string{"console/demo", "console/new"}
	alice := mint(t, "alice", nil, rights, now, "1h")
	bob := mint(t, "bob", nil, rights, now, "1h")
	phone := openDevice(t, as.Addr, "/msgbus/console/demo", alice)
	laptop := openDevice(t, as.Addr, "/msgbus/console/demo", alice)
	bobs := openDevice(t, as.Addr, "/msgbus/console/demo", bob)

	b := newBrowser(t)
	ctx := b.ctx
	b.run(ctx, "opening the console", chromedp.Navigate(consoleURL(t, as, "")))
	b.wait(ctx, "the first poll", consoleLive, 5*time.Second)
	b.wait(ctx, "console/demo with 3 subscribers", consoleCell("console/demo", 1)+" === '3'", 5*time.Second)
	b.wait(ctx, "alice's two sessions", "document.querySelectorAll('#users .user[data-user=alice] li').length === 2", 5*time.Second)

	// A channel that appears while the page is open is drawn, highlighted.
	fresh := openDevice(t, as.Addr, "/msgbus/console/new", bob)
	b.wait(ctx, "console/new appearing", consoleCell("console/new", 1)+" === '1'", 5*time.Second)
	if got := eval[string](b, ctx, text("#channels tr[data-channel='console/new'] td.name")); got != "/console/new" {
		t.Errorf("the new channel is shown as %q, want /console/new", got)
	}

	// Messages flow: the counters, the rates and the charts move;
	// deliveries (three subscribers) outrun messages.
	before := pagesNumber(eval[string](b, ctx, text("#n-published")))
	stop := publishing(t, as, "console/demo")
	b.wait(ctx, "messages/s moving", consoleRate("r-published")+" >= 10", 10*time.Second)
	b.wait(ctx, "deliveries/s above messages/s", consoleRate("r-delivered")+" > "+consoleRate("r-published"), 5*time.Second)
	b.wait(ctx, "a chart of a few points", "Number(document.getElementById('c-published').dataset.points) >= 3", 10*time.Second)
	sent := stop()
	bobs.waitFor(t, "tick "+itoa(sent-1))
	b.wait(ctx, "the published count", jsNumber("#n-published")+" >= "+itoa(before+sent), 5*time.Second)
	if d, p := eval[float64](b, ctx, jsNumber("#n-delivered")), eval[float64](b, ctx, jsNumber("#n-published")); d < 3*float64(sent) || p < float64(sent) {
		t.Errorf("the page counts %v published, %v delivered, after %d messages to 3 subscribers", p, d, sent)
	}
	if n := eval[int](b, ctx, "document.querySelectorAll('#c-published path.line').length"); n != 1 {
		t.Errorf("the messages/s chart draws %d lines, want 1", n)
	}
	// Once the flow stops, the rate falls back to zero.
	b.wait(ctx, "messages/s back to 0", consoleRate("r-published")+" === 0", 5*time.Second)

	// Log out one of alice's devices: its stream ends, the other's not.
	b.run(ctx, "log out the phone", chromedp.Click(chromedp.CSS("#users li[data-id='"+phone.session+"'] button")))
	phone.ended(t)
	b.wait(ctx, "the phone gone from the list", "!document.querySelector(\"#users li[data-id='"+phone.session+"']\")", 5*time.Second)
	b.wait(ctx, "the phone's channel count", consoleCell("console/demo", 1)+" === '2'", 5*time.Second)
	if got := eval[string](b, ctx, text("#sessions-result")); !strings.HasPrefix(got, "Logged out alice’s session "+phone.session) {
		t.Errorf("after logging out: %q", got)
	}

	// The publish form publishes as the server, From as given; the laptop
	// still receives.
	b.run(ctx, "publishing from the form",
		chromedp.Click(chromedp.CSS("#channels tr[data-channel='console/demo'] button")), // fills the channel
		chromedp.SetValue(chromedp.ID("p-from"), "ops"),
		chromedp.SetValue(chromedp.ID("p-body"), "from the console"),
		chromedp.Click(chromedp.ID("p-send")))
	laptop.waitFor(t, "From: ops\r\n")
	laptop.waitFor(t, "from the console")
	b.wait(ctx, "the form's answer", text("#p-result")+".startsWith('Published #')", 5*time.Second)
	if got := eval[string](b, ctx, text("#p-result")); !strings.Contains(got, "to /console/demo · 2 subscribers") {
		t.Errorf("the form says %q", got)
	}
	// The server's refusal is shown as it says it; a name with a dot
	// segment is refused before it is sent.
	b.run(ctx, "publishing too much", chromedp.SetValue(chromedp.ID("p-body"), strings.Repeat("x", 1001)), chromedp.Click(chromedp.ID("p-send")))
	b.wait(ctx, "the 413", text("#p-result.err")+".startsWith('413: ')", 5*time.Second)
	b.run(ctx, "publishing to a/../b", chromedp.SetValue(chromedp.ID("p-channel"), "a/../b"), chromedp.SetValue(chromedp.ID("p-body"), "x"),
		chromedp.Click(chromedp.ID("p-send")))
	b.wait(ctx, "the refusal", text("#p-result.err")+".includes('segment')", 5*time.Second)

	// Log out everywhere asks once more, then ends the laptop's stream;
	// bob's stays.
	all := chromedp.CSS("#users .user[data-user=alice] button.all")
	b.run(ctx, "log out alice everywhere", chromedp.Click(all))
	b.wait(ctx, "the confirmation", text("#users .user[data-user=alice] button.all")+" === 'End 1 session?'", time.Second)
	b.run(ctx, "confirming", chromedp.Click(all))
	laptop.ended(t)
	b.wait(ctx, "alice gone", "!document.querySelector('#users .user[data-user=alice]')", 5*time.Second)
	b.wait(ctx, "bob alone on console/demo", consoleCell("console/demo", 1)+" === '1'", 5*time.Second)
	as.call(t, "POST", "/admin/publish/console/demo", "bob stays")
	bobs.waitFor(t, "bob stays")

	// A channel whose last subscriber leaves is dropped from the table.
	fresh.Close()
	b.wait(ctx, "console/new gone", consoleCell("console/new", 1)+" === ''", 5*time.Second)
}

func TestConsoleBrowserPausesInAHiddenTab(t *testing.T) {
	as := startAdmin(t, Config{})
	b := newBrowser(t)
	ctx := b.ctx
	b.run(ctx, "opening the console", chromedp.Navigate(consoleURL(t, as, "")))
	b.wait(ctx, "the first poll", consoleLive, 5*time.Second)
	eval[bool](b, ctx, `(() => {
		window.polls = 0;
		const f = window.fetch;
		window.fetch = (...a) => { window.polls++; return f(...a); };
		window.hide = (h) => {
			Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
			document.dispatchEvent(new Event('visibilitychange'));
		};
		return true;
	})()`)
	eval[bool](b, ctx, "hide(true), true")
	b.wait(ctx, "the pill saying paused", text("#status")+" === 'paused'", time.Second)
	start := eval[int](b, ctx, "window.polls") // a poll under way may finish
	time.Sleep(2500 * time.Millisecond)
	if n := eval[int](b, ctx, "window.polls") - start; n != 0 {
		t.Errorf("a hidden tab polled %d times in 2.5 s, want none", n)
	}
	eval[bool](b, ctx, "hide(false), true")
	b.wait(ctx, "polling again", "window.polls > "+itoa(start)+" && "+consoleLive, 2*time.Second)
}

func TestConsoleBrowserAsksForTheAdminTokenOnce(t *testing.T) {
	as := startAdmin(t, Config{AdminToken: "operators-only"})
	b := newBrowser(t)
	ctx := b.ctx
	u := consoleURL(t, as, "operators-only")
	// A browser sends no bearer token with a navigation: the page and its
	// assets are served without it, and only the API asks for it.
	for _, p := range []string{"/", "/console/console.js", "/console/console.css", "/_msgbus/ui.css"} {
		if code, _, err := as.tryGet(p, ""); strings.HasPrefix(u, "http://"+as.adminAddr) && (err != nil || code != http.StatusOK) {
			t.Errorf("GET %s without the admin token = %d %v, want 200: the page must load before it can ask for the token", p, code, err)
		}
	}
	b.run(ctx, "opening the console", chromedp.Navigate(u))
	b.wait(ctx, "the token form", "!document.getElementById('auth').hidden", 5*time.Second)
	if got := eval[string](b, ctx, text("#status")); got != "token needed" {
		t.Errorf("the pill says %q, want token needed", got)
	}
	b.run(ctx, "a wrong token", chromedp.SetValue(chromedp.ID("token"), "guess"), chromedp.Click(chromedp.CSS("#auth-form button")))
	b.wait(ctx, "the refusal", text("#auth-note")+".includes('refused')", 5*time.Second)
	b.run(ctx, "the token", chromedp.SetValue(chromedp.ID("token"), "operators-only"), chromedp.Click(chromedp.CSS("#auth-form button")))
	b.wait(ctx, "the first poll", consoleLive+" && document.getElementById('auth').hidden", 5*time.Second)
	if got := eval[string](b, ctx, "sessionStorage.getItem('msgbus-admin-token')"); got != "operators-only" {
		t.Errorf("sessionStorage holds %q", got)
	}
	// A reload in the same tab does not ask again.
	b.run(ctx, "reloading", chromedp.Navigate(u))
	b.wait(ctx, "the first poll", consoleLive, 5*time.Second)
	if eval[bool](b, ctx, "!document.getElementById('auth').hidden") {
		t.Errorf("the token form shows again after a reload")
	}
}
