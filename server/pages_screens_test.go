package server

// Every page (the viewer, its flood dashboard, the example app's tabs, the
// chat demo) at a desktop's and a phone's width in headless Chromium, with
// screenshots for a person to look at (in the test's folder and
// /tmp/msgbus-shots) and checks that fail on what a person would see as
// broken: a page wider than the screen, controls of a row that wrap or
// misalign, a squeezed chat column, a chart that does not fill its card or
// whose labels sit on its lines, counts that disagree.

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/msgbus/msgbus/server/bustest"
)

// A pagesScreen is a viewport to check every page at.
type pagesScreen struct {
	name          string
	width, height int64
}

var pagesScreens = []pagesScreen{{"1280", 1280, 800}, {"390", 390, 844}}

// tabAt opens a tab with s's viewport (a phone emulated as one, at twice
// the pixel density), closed when the test ends.
func (b *browser) tabAt(s pagesScreen) context.Context {
	b.t.Helper()
	ctx := b.tab()
	opts := []chromedp.EmulateViewportOption{chromedp.EmulatePortrait}
	if s.width < 600 {
		opts = append(opts, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	b.run(ctx, "sizing the viewport", chromedp.EmulateViewport(s.width, s.height, opts...))
	return ctx
}

// dark switches tab ctx to the dark colour scheme, as a system in dark
// mode asks for with prefers-color-scheme.
func (b *browser) dark(ctx context.Context) {
	b.t.Helper()
	b.run(ctx, "dark mode", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		})
		return err
	}))
	b.wait(ctx, "dark mode", "matchMedia('(prefers-color-scheme: dark)').matches", time.Second)
}

// pagesLayoutProblems lists what is broken in the page's layout at width:
// the document wider than the screen (naming the elements that stick out),
// and every visible .row or .tabs whose children do not share one line.
const pagesLayoutProblems = `((W) => {
	const out = [];
	const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
		(typeof e.className === 'string' && e.className.trim() ? '.' + e.className.trim().split(/\s+/).join('.') : '');
	const sw = document.documentElement.scrollWidth;
	if (sw > W) {
		const wide = [...document.querySelectorAll('body *')]
			.filter((e) => e.getBoundingClientRect().right > W + 1)
			.slice(0, 6).map((e) => name(e) + ' (right edge ' + Math.round(e.getBoundingClientRect().right) + ')');
		out.push('the page is ' + sw + ' px wide on a ' + W + ' px screen: ' + wide.join(', '));
	}
	for (const row of document.querySelectorAll('.row, .tabs')) {
		if (row.getClientRects().length === 0) continue; // hidden
		const kids = [...row.children].filter((k) => k.getClientRects().length > 0);
		const mids = kids.map((k) => { const r = k.getBoundingClientRect(); return r.top + r.height / 2; });
		if (mids.length > 1 && Math.max(...mids) - Math.min(...mids) > 2) {
			out.push(name(row) + ' wraps or misaligns: its controls are centred at ' + mids.map(Math.round).join(', '));
		}
		const rr = row.getBoundingClientRect();
		for (const k of kids) {
			const r = k.getBoundingClientRect();
			if (getComputedStyle(row).overflowX === 'visible' && (r.right > rr.right + 1 || r.left < rr.left - 1)) {
				out.push(name(k) + ' sticks out of ' + name(row));
			}
		}
	}
	return JSON.stringify(out);
})`

// checkLayout fails the test for every layout problem of tab ctx at s.
func (b *browser) checkLayout(ctx context.Context, page string, s pagesScreen) {
	b.t.Helper()
	var problems []string
	raw := eval[string](b, ctx, pagesLayoutProblems+"("+strconv.FormatInt(s.width, 10)+")")
	if err := json.Unmarshal([]byte(raw), &problems); err != nil {
		b.t.Fatalf("layout check: %v", err)
	}
	for _, p := range problems {
		b.t.Errorf("%s at %s px: %s", page, s.name, p)
	}
}

// pagesNumber is the first number in a text, thousands separators
// skipped ("1,234 messages" → 1234), -1 when there is none.
func pagesNumber(s string) int {
	n, seen := 0, false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			n, seen = n*10+int(r-'0'), true
		case seen && strings.ContainsRune(",.\u202f\u00a0", r):
		case seen:
			return n
		}
	}
	if !seen {
		return -1
	}
	return n
}

// jsNumber is a JavaScript expression for the number in a selector's text,
// thousands separators skipped.
func jsNumber(selector string) string {
	return "Number(" + text(selector) + ".replace(/[^0-9]/g, ''))"
}

func TestPagesViewerWithMessages(t *testing.T) {
	b := newBrowser(t)
	for _, s := range pagesScreens {
		ts := startServer(t, Config{})
		ctx := b.tabAt(s)
		b.run(ctx, "opening the viewer", chromedp.Navigate(ts.URL("/msgbus/demo")))
		b.wait(ctx, "the viewer's stream", viewerLive, 5*time.Second)
		ts.waitSubscribers(t, 1)

		// What the page's own hint sends (curl -d, a form type) is text.
		hint := eval[string](b, ctx, text("#hint"))
		if !strings.HasPrefix(hint, "curl -d 'hello' ") {
			t.Errorf("hint %q", hint)
		}
		ts.publish(t, "/msgbus/demo", "application/x-www-form-urlencoded", "hello")
		b.wait(ctx, "curl -d's message as text", text("#current pre")+" === 'hello'", 5*time.Second)
		ts.publish(t, "/msgbus/demo/sensors", "application/json", `{"sensor":"kitchen","celsius":21.5,"ok":true}`)
		b.wait(ctx, "the JSON message, indented", text("#current pre")+".includes('\"celsius\": 21.5')", 5*time.Second)
		ts.publish(t, "/msgbus/demo/cam", "image/png", string(testPNG(t, 480, 180)))
		b.wait(ctx, "the image", "document.querySelector('#current img')?.naturalWidth === 480", 5*time.Second)
		b.wait(ctx, "three log rows", "document.querySelectorAll('#log tbody tr').length === 3", time.Second)
		if head := pagesNumber(eval[string](b, ctx, text("#count"))); head != 3 {
			t.Errorf("header count %d, want 3", head)
		}
		b.checkLayout(ctx, "viewer", s)
		b.shot(ctx, "viewer-"+s.name)
		if s.width > 600 {
			b.dark(ctx)
			b.shot(ctx, "viewer-"+s.name+"-dark")
		}
	}
}

func TestPagesViewerFloodDashboard(t *testing.T) {
	b := newBrowser(t)
	ts := startServer(t, Config{})
	tabs := make([]context.Context, len(pagesScreens))
	for i, s := range pagesScreens {
		tabs[i] = b.tabAt(s)
		b.run(tabs[i], "opening /msgbus/flood", chromedp.Navigate(ts.URL("/msgbus/flood")))
		b.wait(tabs[i], "the viewer's stream", viewerLive, 5*time.Second)
	}
	ts.waitSubscribers(t, int64(len(tabs)))

	// Three workers for about 3 s, at a rate that rises, so the chart has
	// a few seconds of lines.
	sent := 0
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for seq := range 600 {
		<-tick.C
		for w := range 1 + seq/200 {
			stamp := "LOAD 5eed " + itoa(w) + " " + itoa(seq) + " " + strconv.FormatInt(time.Now().UnixNano(), 10) + "\n"
			ts.publish(t, "/msgbus/flood", "text/plain", stamp+strings.Repeat("x", 64))
			sent++
		}
	}
	for i, s := range pagesScreens {
		ctx := tabs[i]
		b.wait(ctx, "every stamp counted", jsNumber("#f-total")+" === "+itoa(sent), 5*time.Second)
		b.wait(ctx, "a chart with a few seconds", "Number(document.getElementById('f-chart').dataset.plotTop) > 0", 3*time.Second)
		if head, got := pagesNumber(eval[string](b, ctx, text("#count"))), pagesNumber(eval[string](b, ctx, text("#f-total"))); head != got || got != sent {
			t.Errorf("at %s px: the header counts %d messages, the dashboard %d received, of %d sent", s.name, head, got, sent)
		}
		// The chart fills its card's width, and its labels sit above the
		// plot.
		var chart struct{ Canvas, Card, LabelBottom, PlotTop float64 }
		json.Unmarshal([]byte(eval[string](b, ctx, `JSON.stringify((() => {
			const c = document.getElementById('f-chart'), card = document.getElementById('flood');
			const cs = getComputedStyle(card);
			return {Canvas: c.getBoundingClientRect().width,
				Card: card.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight),
				LabelBottom: Number(c.dataset.labelBottom), PlotTop: Number(c.dataset.plotTop)};
		})())`)), &chart)
		if chart.Canvas < chart.Card-1 {
			t.Errorf("at %s px: the chart is %.0f px wide in a card %.0f px wide", s.name, chart.Canvas, chart.Card)
		}
		if chart.LabelBottom <= 0 || chart.LabelBottom > chart.PlotTop {
			t.Errorf("at %s px: the chart's labels end at %.0f px, its plot starts at %.0f px", s.name, chart.LabelBottom, chart.PlotTop)
		}
		if w := eval[float64](b, ctx, "document.getElementById('f-chart').width"); w < chart.Canvas {
			t.Errorf("at %s px: the chart draws %.0f pixels across %.0f px: stretched", s.name, w, chart.Canvas)
		}
		b.checkLayout(ctx, "flood dashboard", s)
		b.shot(ctx, "viewer-flood-"+s.name)
		if s.width < 600 {
			b.dark(ctx)
			b.wait(ctx, "the chart in dark colours", "document.getElementById('f-chart').dataset.scheme === 'dark'", time.Second)
			b.shot(ctx, "viewer-flood-"+s.name+"-dark")
		}
	}
}

func TestPagesExampleAppTabs(t *testing.T) {
	b := newBrowser(t)
	for _, s := range pagesScreens {
		ts := startServer(t, Config{ExampleApp: true})
		ctx := b.tabAt(s)
		b.run(ctx, "opening the example app", chromedp.Navigate(ts.URL("/")), chromedp.WaitVisible(chromedp.ID("info")))
		if n := eval[int](b, ctx, "new Set([...document.querySelectorAll('[role=tab]')].map((t) => Math.round(t.getBoundingClientRect().top))).size"); n != 1 {
			t.Errorf("at %s px: the tabs are on %d lines", s.name, n)
		}
		b.checkLayout(ctx, "app Info", s)
		b.shot(ctx, "app-info-"+s.name)

		tab := func(name string) {
			b.run(ctx, "the "+name+" tab", chromedp.Click(chromedp.CSS("[role=tab][data-tab="+name+"]")),
				chromedp.WaitVisible(chromedp.ID(name)))
		}
		send := func(pattern, msg string) {
			form := `form.send[data-for="` + pattern + `"]`
			b.run(ctx, "sending on "+pattern, chromedp.WaitVisible(chromedp.CSS(form)),
				chromedp.SetValue(chromedp.CSS(form+" input"), msg), chromedp.Click(chromedp.CSS(form+" button")))
		}
		logged := func(id string, n int) {
			b.wait(ctx, itoa(n)+" messages in "+id, "document.querySelectorAll('#"+id+" li.in').length === "+itoa(n), 5*time.Second)
		}

		tab("bus")
		b.run(ctx, "joining the bus", chromedp.Click(chromedp.CSS(`form[data-pattern="bus"] input[name=echo]`)),
			chromedp.Click(chromedp.CSS(`form[data-pattern="bus"] button`)))
		send("bus", "hello, bus")
		logged("bus-log", 1)
		b.checkLayout(ctx, "app Bus", s)
		b.shot(ctx, "app-bus-"+s.name)

		tab("pubsub")
		eval[bool](b, ctx, `(() => { const v = document.querySelector('select[name=via]'); v.value = 'sse';
			v.dispatchEvent(new Event('change')); return true })()`)
		b.run(ctx, "subscribing", chromedp.Click(chromedp.CSS(`form[data-pattern="sub"] button`)))
		b.wait(ctx, "the subscription", "document.querySelector('#sub-log li')?.textContent.includes('connected')", 5*time.Second)
		b.run(ctx, "connecting the publisher", chromedp.Click(chromedp.CSS(`form[data-pattern="pub"] button`)))
		send("pub", "hello, subscribers")
		logged("sub-log", 1)
		if got := eval[string](b, ctx, text("#sub-log li.in")); !strings.Contains(got, "← /demo/news [text/plain; charset=utf-8] hello, subscribers") {
			t.Errorf("the SSE subscriber logged %q", got)
		}
		b.checkLayout(ctx, "app Pub/Sub", s)
		b.shot(ctx, "app-pubsub-"+s.name)

		tab("pushpull")
		for range 2 {
			b.run(ctx, "adding a puller", chromedp.Click(chromedp.CSS(`form[data-pattern="pull"] button`)))
		}
		b.wait(ctx, "two pullers", "document.querySelectorAll('#pull-log li').length === 2", 5*time.Second)
		b.run(ctx, "connecting the pusher", chromedp.Click(chromedp.CSS(`form[data-pattern="push"] button`)))
		send("push", "job 1")
		send("push", "job 2")
		logged("pull-log", 2)
		b.checkLayout(ctx, "app Push/Pull", s)
		b.shot(ctx, "app-pushpull-"+s.name)
	}
}

func TestPagesChatAtBothWidths(t *testing.T) {
	ts := startServer(t, Config{WebRoot: "../chatdemo"})
	b := newBrowser(t)
	desk, phone := b.tabAt(pagesScreens[0]), b.tabAt(pagesScreens[1])
	b.run(phone, "the login page", chromedp.Navigate(ts.URL("/#lobby")), chromedp.WaitVisible(chromedp.ID("name")))
	b.checkLayout(phone, "chat login", pagesScreens[1])
	b.shot(phone, "chat-login-390")
	chatLogin(b, desk, ts.URL("/#lobby"), "alice")
	chatLogin(b, phone, ts.URL("/#lobby"), "bob")
	ts.waitSubscribers(t, 2)

	lines := []struct {
		ctx  context.Context
		who  string
		text string
	}{
		{desk, "alice", "hi bob, the bus is up"},
		{phone, "bob", "hello alice! I'm on my phone"},
		{desk, "alice", "try a long one: " + strings.Repeat("messages wrap inside their bubble, ", 4)},
		{phone, "bob", "works ✓"},
	}
	for i, l := range lines {
		chatSay(b, l.ctx, l.text)
		for _, tab := range []context.Context{desk, phone} {
			b.wait(tab, "line "+itoa(i), "document.querySelectorAll('#messages li').length === "+itoa(i+1), 5*time.Second)
		}
	}
	ts.publish(t, "/msgbus/chat/random", "application/json", `{"name":"carol","text":"over here"}`)
	b.wait(phone, "the unread badge", text("#rooms a[href='#random'] .unread")+" === '1'", 5*time.Second)

	for i, s := range pagesScreens {
		ctx := []context.Context{desk, phone}[i]
		if w := eval[float64](b, ctx, "document.getElementById('messages').getBoundingClientRect().width"); w < 300 {
			t.Errorf("at %s px the message column is %.0f px wide, want at least 300", s.name, w)
		}
		b.checkLayout(ctx, "chat", s)
		b.shot(ctx, "chat-"+s.name)
	}
	b.dark(phone)
	b.shot(phone, "chat-390-dark")
	// On the phone, + opens the join form, in the rooms' bar.
	b.run(phone, "opening the join form", chromedp.Click(chromedp.ID("new-room")), chromedp.WaitVisible(chromedp.ID("room")))
	b.checkLayout(phone, "chat, joining", pagesScreens[1])
	b.shot(phone, "chat-join-390")
}

// TestPagesConsoleAtBothWidths: the operators' console on a small bus
// (three users, one on two devices, anonymous viewers, messages flowing
// at a rising rate), with a whole-page screenshot besides the screen's.
func TestPagesConsoleAtBothWidths(t *testing.T) {
	as := startAdmin(t, Config{TokenSecret: testSecret, AnonymousSubscribe: []string{"*"}})
	now := time.Now()
	for _, d := range []struct{ user, path, accept string }{
		{"alice", "/msgbus/chat/lobby", ""}, {"alice", "/msgbus/chat/random", "text/event-stream"},
		{"bob", "/msgbus/chat/lobby", ""}, {"carol.operations", "/msgbus/sensors/kitchen/temperature", "text/event-stream"},
		{"", "/msgbus/news", ""}, {"", "/msgbus/news", ""}, {"", "/msgbus/", ""},
	} {
		req := "GET " + d.path + " HTTP/1.1\r\nHost: x\r\n"
		if d.user != "" {
			req += "Authorization: Bearer " + mint(t, d.user, nil, []string{"*"}, now, "1h") + "\r\n"
		}
		if d.accept != "" {
			req += "Accept: " + d.accept + "\r\n"
		}
		bustest.Dial(t, as.Addr, req+"\r\n")
	}
	as.waitSubscribers(t, 7)
	b := newBrowser(t)
	tabs := make([]context.Context, len(pagesScreens))
	for i, s := range pagesScreens {
		tabs[i] = b.tabAt(s)
		b.run(tabs[i], "opening the console", chromedp.Navigate(consoleURL(t, as, "")))
		b.wait(tabs[i], "the first poll", consoleLive, 5*time.Second)
	}
	// About five seconds of messages at a rising rate, to news and the chat.
	tick := time.NewTicker(50 * time.Millisecond)
	for i := range 100 {
		<-tick.C
		for range 1 + i/25 {
			as.call(t, "POST", "/admin/publish/news", "headline "+itoa(i))
		}
		if i%4 == 0 {
			as.call(t, "POST", "/admin/publish/chat/lobby?from=bob", "hi")
		}
	}
	tick.Stop()
	for i, s := range pagesScreens {
		ctx := tabs[i]
		b.wait(ctx, "a chart of a few seconds", "Number(document.getElementById('c-delivered').dataset.points) >= 4", 5*time.Second)
		b.wait(ctx, "every session", "document.querySelectorAll('#users li').length === 7", 5*time.Second)
		if n := eval[int](b, ctx, "new Set([...document.querySelectorAll('.chart svg')].map((e) => Math.round(e.getBoundingClientRect().width))).size"); n != 1 {
			t.Errorf("at %s px: the two charts have different widths", s.name)
		}
		// The scale's labels end left of the plot.
		if g, l := eval[float64](b, ctx, "Number(document.getElementById('c-published').dataset.gutter)"),
			eval[float64](b, ctx, "Number(document.getElementById('c-published').dataset.plotLeft)"); g <= 0 || g >= l {
			t.Errorf("at %s px: the chart's labels end at %.0f px, its plot starts at %.0f px", s.name, g, l)
		}
		b.checkLayout(ctx, "console", s)
		b.shot(ctx, "console-"+s.name)
		full, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("whole-page screenshot: %v", err)
		}
		os.WriteFile(filepath.Join(browserShots, "console-"+s.name+"-full.png"), full, 0o644)
		if s.width < 600 {
			b.dark(ctx)
			b.shot(ctx, "console-"+s.name+"-dark")
		}
	}
}

func TestPagesChatLoginAtBothWidths(t *testing.T) {
	cs := startChatLogin(t, time.Minute, "lobby", "random", "help")
	b := newBrowser(t)
	desk, phone := b.person(&pagesScreens[0]), b.person(&pagesScreens[1])
	for i, ctx := range []context.Context{desk, phone} {
		chatLoginForm(b, ctx, cs.page+"/#lobby", "", "lobby")
		b.checkLayout(ctx, "chat login form", pagesScreens[i])
		b.shot(ctx, "chatlogin-form-"+pagesScreens[i].name)
	}
	chatLoginAs(b, desk, cs.page+"/#lobby", "alice", "lobby", "help")
	// A name someone holds: the form says so.
	chatLoginForm(b, phone, cs.page+"/#lobby", "ALICE", "lobby", "random")
	b.run(phone, "logging in as ALICE", chromedp.Click(chromedp.CSS("#login button")))
	b.wait(phone, "the refusal", text("#login-error")+" !== ''", 5*time.Second)
	b.checkLayout(phone, "chat login refused", pagesScreens[1])
	b.shot(phone, "chatlogin-taken-390")
	chatLoginAs(b, phone, cs.page+"/#lobby", "bob", "lobby", "random")
	cs.bus.waitSubscribers(t, 4)

	lines := []struct {
		ctx  context.Context
		text string
	}{
		{desk, "hi bob, this one is signed"},
		{phone, "and the bus says it's me"},
		{desk, "a long one: " + strings.Repeat("the name above comes from the token, not the page; ", 3)},
		{phone, "works ✓"},
	}
	for i, l := range lines {
		chatSay(b, l.ctx, l.text)
		for _, tab := range []context.Context{desk, phone} {
			b.wait(tab, "line "+itoa(i), chatLineCount+" === "+itoa(i+1), 5*time.Second)
		}
	}
	// An operator's word to bob's address shows as a note in his room.
	req, _ := http.NewRequest("POST", "http://"+cs.bus.adminAddr+"/admin/publish/@bob?from=ops", strings.NewReader(`{"text":"the bus restarts at noon"}`))
	req.Header.Set("Authorization", "Bearer admin token")
	req.Header.Set("Content-Type", "application/json")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 204 {
		t.Fatalf("publishing to @bob: %v %v", res, err)
	}
	b.wait(phone, "the note to bob", lastLine+" === 'ops to you: the bus restarts at noon'", 5*time.Second)

	for i, s := range pagesScreens {
		ctx := []context.Context{desk, phone}[i]
		if w := eval[float64](b, ctx, "document.getElementById('messages').getBoundingClientRect().width"); w < 300 {
			t.Errorf("at %s px the message column is %.0f px wide, want at least 300", s.name, w)
		}
		b.checkLayout(ctx, "chat with login", s)
		b.shot(ctx, "chatlogin-"+s.name)
	}
	b.dark(phone)
	b.shot(phone, "chatlogin-390-dark")
}
