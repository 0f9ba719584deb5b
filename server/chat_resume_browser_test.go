package server

// The chat demo and the viewer with history (PROTOCOL.md §6), in headless
// Chromium: a room shows its last 50 lines on entering and earlier ones on
// scrolling up, and a page open through a server restart shows what was
// published while it was away, each line once. See browser_test.go for how
// the browser is run and where screenshots go.

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func TestBrowserChatShowsLast50OnJoinAndOlderOnScrollUp(t *testing.T) {
	ts := startServer(t, Config{WebRoot: "../chatdemo"}) // history keeps the last 100 of each room
	for n := 1; n <= 120; n++ {
		chatPost(t, ts, "lobby", "ann", chatNumbered(n))
		if n%40 == 0 {
			chatPost(t, ts, "random", "bo", "random "+itoa(n/40)) // another room, not the lobby's
		}
	}
	var want []string
	for n := 1; n <= 120; n++ {
		want = append(want, "ann: "+chatNumbered(n))
	}

	b := newBrowser(t)
	chatLogin(b, b.ctx, ts.URL("/#lobby"), "cy")
	chatWait(b, b.ctx, "the lobby's last 50 lines", chatLineCount+" === 50", 5*time.Second)
	sameLines(t, "on entering", chatLines(b, b.ctx), want[70:])
	const ol = "document.getElementById('messages')"
	if gap := eval[float64](b, b.ctx, ol+".scrollHeight - "+ol+".scrollTop - "+ol+".clientHeight"); gap > 2 {
		t.Errorf("on entering, the list is scrolled %.0f px above its end, want at the newest line", gap)
	}
	if s := eval[string](b, b.ctx, ol+".dataset.older"); s != "Scroll up for earlier messages" {
		t.Errorf("above the first line: %q, want the hint to scroll up", s)
	}

	// Scrolling to the top loads the 50 before: the 100 the server keeps.
	// The line that was at the top stays near the top, where the reader saw
	// it, rather than the list jumping to its new first line.
	top := "[...document.querySelectorAll('#messages li')].find((li) => li.textContent.endsWith(" + jsString(chatNumbered(71)) + "))"
	eval[bool](b, b.ctx, ol+".scrollTop = 0, true")
	chatWait(b, b.ctx, "50 earlier lines", chatLineCount+" === 100", 5*time.Second)
	sameLines(t, "after scrolling up", chatLines(b, b.ctx), want[20:])
	if at := eval[float64](b, b.ctx, top+".getBoundingClientRect().top - "+ol+".getBoundingClientRect().top"); at < 0 || at > 80 {
		t.Errorf("after earlier lines loaded, the line that was at the top is %.0f px from the list's top, want within 80", at)
	}
	chatWait(b, b.ctx, "the start of what is kept", ol+".dataset.older === 'No earlier messages'", 5*time.Second)
	eval[bool](b, b.ctx, ol+".scrollTop = 0, true")
	b.shot(b.ctx, "chat-history-top")

	// A new line goes at the end, once.
	ts.waitSubscribers(t, 1)
	chatPost(t, ts, "lobby", "dee", "a new one")
	chatWait(b, b.ctx, "the new line", lastLine+".endsWith('deea new one')", 5*time.Second)
	sameLines(t, "after a new line", chatLines(b, b.ctx), append(want[20:], "dee: a new one"))

	// Another room shows its own lines only.
	b.run(b.ctx, "entering #random", chromedp.Click(chromedp.CSS("#rooms a[href='#random']")))
	chatWait(b, b.ctx, "#random's lines", chatLineCount+" === 3", 5*time.Second)
	sameLines(t, "in #random", chatLines(b, b.ctx), []string{"bo: random 1", "bo: random 2", "bo: random 3"})
	chatWait(b, b.ctx, "nothing earlier in #random", ol+".dataset.older === 'No earlier messages'", 5*time.Second)

	// Both widths, scrolled up part of the way.
	for _, s := range pagesScreens {
		ctx := b.tabAt(s)
		chatLogin(b, ctx, ts.URL("/#lobby"), "cy")
		chatWait(b, ctx, "the lobby's last 50 lines", chatLineCount+" === 50", 5*time.Second)
		eval[bool](b, ctx, ol+".scrollTop = 0, true")
		chatWait(b, ctx, "earlier lines", chatLineCount+" === 100", 5*time.Second)
		eval[bool](b, ctx, ol+".scrollTop = 0, true")
		chatWait(b, ctx, "the start", ol+".dataset.older === 'No earlier messages'", 5*time.Second)
		b.checkLayout(ctx, "chat with history", s)
		b.shot(ctx, "chat-history-"+s.name)
	}
}

func TestBrowserChatResumesAfterServerRestartWithNothingMissed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		store  bool
		before int // lines published before the page opens
	}{
		{"memory", false, 3},
		{"store", true, 3},
		// Nothing was ever said: the page has no id to resume from, and
		// still gets what the outage brought.
		{"memory, a quiet room", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{WebRoot: "../chatdemo"}
			if tc.store {
				cfg.Store = t.TempDir() // outlives the restart
			}
			ts := startServer(t, cfg)
			var want []string
			for n := 1; n <= tc.before; n++ {
				chatPost(t, ts, "lobby", "ann", "before "+itoa(n))
				want = append(want, "ann: before "+itoa(n))
			}
			b := newBrowser(t)
			chatLogin(b, b.ctx, ts.URL("/#lobby"), "dora")
			ts.waitSubscribers(t, 1)
			chatWait(b, b.ctx, "the lines from before", chatLineCount+" === "+itoa(len(want)), 5*time.Second)
			if tc.before > 0 {
				chatSay(b, b.ctx, "still here")
				want = append(want, "dora: still here")
				chatWait(b, b.ctx, "dora's line", lastLine+".endsWith('dorastill here')", 5*time.Second)
			}

			ts.stop(t)
			b.wait(b.ctx, "the page to see the server go", text("#status")+" !== 'connected'", 5*time.Second)
			ts2 := browserRestart(t, cfg, ts.Addr)
			restart := len(want)
			for n := 1; n <= 5; n++ {
				chatPost(t, ts2, "lobby", "eve", "outage "+itoa(n))
				want = append(want, "eve: outage "+itoa(n))
			}
			chatPost(t, ts2, "random", "eve", "meanwhile in random")
			if n := ts2.Stats().Subscribers; n != 0 {
				t.Fatalf("the page was back (%d subscribers) before the outage's lines were all published: "+
					"this run does not test resuming", n)
			}

			b.wait(b.ctx, "the page to reconnect", text("#status")+" === 'connected'", 10*time.Second)
			chatWait(b, b.ctx, "the outage's lines", lastLine+".endsWith('eveoutage 5')", 5*time.Second)
			b.wait(b.ctx, "the other room's unread line", text("#rooms a[href='#random'] .unread")+" === '1'", 5*time.Second)
			ts2.waitSubscribers(t, 1)
			chatPost(t, ts2, "lobby", "fay", "after")
			want = append(want, "fay: after")
			chatWait(b, b.ctx, "a line after the restart", lastLine+".endsWith('fayafter')", 5*time.Second)

			lines := chatLines(b, b.ctx)
			sameLines(t, "after the restart", chatOnly(lines), want)
			if i := indexOf(lines, "* reconnected"); i < 0 || i > indexOf(lines, "eve: outage 1") {
				t.Errorf("the 'reconnected' note should come before the outage's lines: %q", lines)
			}
			b.shot(b.ctx, "chat-resumed-"+strings.ReplaceAll(strings.ReplaceAll(tc.name, ",", ""), " ", "-"))

			// A page opened now shows the room's last lines from history:
			// with a store, those from before the restart too.
			later := want
			if !tc.store {
				later = want[restart:]
			}
			tab := b.tab()
			chatLogin(b, tab, ts2.URL("/#lobby"), "gus")
			chatWait(b, tab, "the room's history", chatLineCount+" === "+itoa(len(later)), 5*time.Second)
			sameLines(t, "a page opened after the restart", chatLines(b, tab), later)
		})
	}
}

func indexOf(list []string, s string) int {
	for i, l := range list {
		if l == s {
			return i
		}
	}
	return -1
}

func TestBrowserViewerResumesAfterServerRestart(t *testing.T) {
	cfg := Config{}
	ts := startServer(t, cfg)
	b := newBrowser(t)
	b.run(b.ctx, "opening the viewer", chromedp.Navigate(ts.URL("/msgbus/news")))
	b.wait(b.ctx, "the viewer's stream", viewerLive, 5*time.Second)
	// A second viewer on a channel where nothing was ever said: it has no
	// id to resume from, and still gets what the outage brought.
	quiet := b.tab()
	b.run(quiet, "opening a quiet channel's viewer", chromedp.Navigate(ts.URL("/msgbus/quiet")))
	b.wait(quiet, "the quiet viewer's stream", viewerLive, 5*time.Second)
	ts.waitSubscribers(t, 2)
	ts.publish(t, "/msgbus/news", "text/plain", "one")
	b.wait(b.ctx, "the first message", text("#current pre")+" === 'one'", 5*time.Second)

	ts.stop(t)
	b.wait(b.ctx, "the viewer to see the server go", "!"+viewerLive, 5*time.Second)
	b.wait(quiet, "the quiet viewer to see the server go", "!"+viewerLive, 5*time.Second)
	ts2 := browserRestart(t, cfg, ts.Addr)
	ts2.publish(t, "/msgbus/news", "text/plain", "two")
	ts2.publish(t, "/msgbus/news/local", "text/plain", "three")
	ts2.publish(t, "/msgbus/quiet", "text/plain", "at last")
	if n := ts2.Stats().Subscribers; n != 0 {
		t.Fatalf("a viewer was back (%d subscribers) before the outage's messages were published", n)
	}
	b.wait(b.ctx, "the viewer to reconnect", viewerLive, 10*time.Second)
	b.wait(b.ctx, "the outage's messages", text("#current pre")+" === 'three'", 5*time.Second)
	b.wait(quiet, "the quiet channel's message", text("#current pre")+" === 'at last'", 10*time.Second)
	ts2.waitSubscribers(t, 2)
	ts2.publish(t, "/msgbus/news", "text/plain", "four")
	b.wait(b.ctx, "a message after the restart", text("#current pre")+" === 'four'", 5*time.Second)

	const previews = "[...document.querySelectorAll('#log tbody td.preview')].map((td) => td.textContent).join(' ')"
	if got := eval[string](b, b.ctx, previews); got != "four three two one" {
		t.Errorf("the log (newest first) is %q, want %q", got, "four three two one")
	}
	if n := pagesNumber(eval[string](b, b.ctx, text("#count"))); n != 4 {
		t.Errorf("the header counts %d messages, want 4", n)
	}
	b.shot(b.ctx, "viewer-resumed")

	// ?last=N in the page's address replays the newest N on opening.
	tab := b.tab()
	b.run(tab, "opening the viewer with ?last=2", chromedp.Navigate(ts2.URL("/msgbus/news?last=2")))
	b.wait(tab, "the last two", "document.querySelectorAll('#log tbody tr').length === 2", 5*time.Second)
	if got := eval[string](b, tab, previews); got != "four three" {
		t.Errorf("with ?last=2 the log is %q, want %q", got, "four three")
	}
}
