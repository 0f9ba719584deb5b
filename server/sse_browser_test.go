package server

// Server-Sent Events as a real EventSource reads them (PROTOCOL.md §3), in
// headless Chromium: the data of a text message is its body, so
// JSON.parse(ev.data) works; a binary body comes as a "binary" event in
// base64; ?envelope=json gives one JSON object per message.

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// sseBrowserEvent is what the page records of an event.
type sseBrowserEvent struct {
	Type, Data, ID string
	JSON           json.RawMessage // JSON.parse(data), or null if it threw
}

func TestBrowserEventSourceGetsBodiesAndEnvelopes(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("<!doctype html><title>sse</title>"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{WebRoot: root})
	b := newBrowser(t)
	b.run(b.ctx, "opening a page of the server", chromedp.Navigate(ts.URL("/")))
	// Two EventSources on the parent a: the bodies, and the envelopes.
	eval[bool](b, b.ctx, `(() => {
		window.got = {raw: [], env: []};
		const record = (list) => (ev) => {
			let json = null;
			try { json = JSON.parse(ev.data); } catch {}
			list.push({Type: ev.type, Data: ev.data, ID: ev.lastEventId, JSON: json});
		};
		for (const [name, url] of [['raw', '/msgbus/a'], ['env', '/msgbus/a?envelope=json']]) {
			const es = new EventSource(url);
			es.onmessage = record(got[name]);
			es.addEventListener('binary', record(got[name]));
			window[name] = es;
		}
		return true;
	})()`)
	b.wait(b.ctx, "both streams open", "raw.readyState === 1 && env.readyState === 1", 5*time.Second)
	ts.waitSubscribers(t, 2)

	png := testPNG(t, 4, 4)
	msgs := []struct{ typ, body string }{
		{"application/x-www-form-urlencoded", "hello"},
		{"text/plain", "one\r\ntwo\nthree\rfour"},
		{"application/json", `{"name":"ann","text":"line\nbreak","n":[1,2]}`},
		{"image/png", string(png)},
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = ts.publish(t, "/msgbus/a/b", m.typ, m.body).Header.Get("Msgbus-Id")
	}
	b.wait(b.ctx, "every event", "got.raw.length === 4 && got.env.length === 4", 5*time.Second)
	var got struct{ Raw, Env []sseBrowserEvent }
	if err := json.Unmarshal([]byte(eval[string](b, b.ctx, "JSON.stringify(got)")), &got); err != nil {
		t.Fatal(err)
	}

	wantRaw := []struct{ typ, data string }{
		{"message", "hello"},
		{"message", "one\ntwo\nthree\nfour"}, // EventSource's line ends
		{"message", msgs[2].body},
		{"binary", base64.StdEncoding.EncodeToString(png)},
	}
	for i, w := range wantRaw {
		if e := got.Raw[i]; e.Type != w.typ || e.Data != w.data || e.ID != ids[i] {
			t.Errorf("event %d: %s %q id %q, want %s %q id %q", i, e.Type, e.Data, e.ID, w.typ, w.data, ids[i])
		}
	}
	var chat struct {
		Name, Text string
		N          []int
	}
	if err := json.Unmarshal(got.Raw[2].JSON, &chat); err != nil || chat.Text != "line\nbreak" || len(chat.N) != 2 {
		t.Errorf("JSON.parse(ev.data) of a JSON message gave %s (%v)", got.Raw[2].JSON, err)
	}

	for i, e := range got.Env {
		var env sseEnvelope
		if err := json.Unmarshal(e.JSON, &env); err != nil {
			t.Fatalf("envelope %d: JSON.parse(ev.data) gave %s: %v", i, e.JSON, err)
		}
		body := env.Body
		if env.Encoding == "base64" {
			b, _ := base64.StdEncoding.DecodeString(env.Body)
			body = string(b)
		}
		wantEnc := "utf-8"
		if i == 3 {
			wantEnc = "base64"
		}
		if e.Type != "message" || e.ID != ids[i] || env.ID != ids[i] || env.Channel != "a/b" ||
			env.Type != msgs[i].typ || env.Encoding != wantEnc || body != msgs[i].body || env.From != nil ||
			!sseTimeShape.MatchString(env.Time) {
			t.Errorf("envelope %d: %s id %q %s, want message %d of a/b, %s, %s", i, e.Type, e.ID, e.Data, i, msgs[i].typ, wantEnc)
		}
	}
}
