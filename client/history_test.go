package client_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/msgbus/msgbus/client"
	"github.com/msgbus/msgbus/server"
)

// bodies returns a page's bodies, space-separated.
func bodies(p client.HistoryPage) string {
	var b []string
	for _, m := range p.Messages {
		b = append(b, string(m.Body))
	}
	return strings.Join(b, " ")
}

func TestHistoryPagesBackAndForth(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{})
	c := newClient(t, client.Config{URL: ts.URL()})
	ctx := testContext(t)
	ps := publishN(t, ctx, c, "log", "m", 7)

	tests := []struct {
		name string
		opts *client.HistoryOptions
		want string
		more bool
	}{
		{"newest", nil, "m0 m1 m2 m3 m4 m5 m6", false},
		{"newest 3", &client.HistoryOptions{Limit: 3}, "m4 m5 m6", true},
		{"before m4", &client.HistoryOptions{Before: ps[4].ID, Limit: 3}, "m1 m2 m3", true},
		{"before m1", &client.HistoryOptions{Before: ps[1].ID, Limit: 3}, "m0", false},
		{"after m0", &client.HistoryOptions{After: ps[0].ID, Limit: 3}, "m1 m2 m3", true},
		{"after m3", &client.HistoryOptions{After: ps[3].ID, Limit: 3}, "m4 m5 m6", false},
		{"after the newest", &client.HistoryOptions{After: ps[6].ID}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := c.History(ctx, "log", tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := bodies(page); got != tt.want || page.More != tt.more {
				t.Fatalf("page %q more %v, want %q more %v", got, page.More, tt.want, tt.more)
			}
		})
	}

	// Paging back from the newest with the first id of each page visits
	// every message once.
	var all []string
	opts := &client.HistoryOptions{Limit: 2}
	for {
		page, err := c.History(ctx, "log", opts)
		if err != nil {
			t.Fatal(err)
		}
		all = append([]string{bodies(page)}, all...)
		if !page.More {
			break
		}
		opts.Before = page.Messages[0].ID
	}
	if got := strings.Join(all, " "); got != "m0 m1 m2 m3 m4 m5 m6" {
		t.Fatalf("paged back: %q", got)
	}
}

func TestHistoryMessagesAreAsPublished(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{Secret: "pw"})
	alice := newClient(t, client.Config{URL: ts.URL(), User: "zoë", Password: "pw"})
	anon := newClient(t, client.Config{URL: ts.URL(), Password: "pw"})
	ctx := testContext(t)
	binary := []byte("\x89PNG\r\n\x1a\n\xff\x00--00MsgBus00")
	before := time.Now().Add(-time.Second)
	p1 := publish(t, ctx, alice, "a/b", "image/png", binary)
	p2 := publish(t, ctx, anon, "a", "text/plain; charset=utf-8", []byte("héllo\n"))
	p3 := publish(t, ctx, alice, "a/c d", "application/json", []byte(`{"x":1}`))
	publish(t, ctx, alice, "ab", "text/plain", []byte("not below a"))

	page, err := anon.History(ctx, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []client.Message{
		{ID: p1.ID, Channel: "a/b", Type: "image/png", Sender: "zoë", Body: binary},
		{ID: p2.ID, Channel: "a", Type: "text/plain; charset=utf-8", Body: []byte("héllo\n")},
		{ID: p3.ID, Channel: "a/c d", Type: "application/json", Sender: "zoë", Body: []byte(`{"x":1}`)},
	}
	if len(page.Messages) != len(want) || page.More {
		t.Fatalf("page %+v, want %d messages", page, len(want))
	}
	for i, w := range want {
		m := page.Messages[i]
		if m.ID != w.ID || m.Channel != w.Channel || m.Type != w.Type || m.Sender != w.Sender || !bytes.Equal(m.Body, w.Body) {
			t.Errorf("message %d = %+v, want %+v", i, m, w)
		}
		if m.Time.Before(before) || m.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("message %d time %v, want about now", i, m.Time)
		}
	}

	// Filters, and the root.
	for _, tt := range []struct {
		channel string
		opts    *client.HistoryOptions
		want    string
	}{
		{"a", &client.HistoryOptions{Type: "text/*"}, "héllo\n"},
		{"a", &client.HistoryOptions{Sender: "zo*"}, string(binary) + ` {"x":1}`},
		{"", &client.HistoryOptions{Type: "text/plain"}, "héllo\n not below a"},
		{"nobody/here", nil, ""},
	} {
		page, err := anon.History(ctx, tt.channel, tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := bodies(page); got != tt.want {
			t.Errorf("History(%q, %+v) = %q, want %q", tt.channel, tt.opts, got, tt.want)
		}
	}
}

func TestHistoryErrorsSayWhatHappened(t *testing.T) {
	ts := startServer(t, "127.0.0.1:0", server.Config{Secret: "pw"})
	ctx := testContext(t)
	anon := newClient(t, client.Config{URL: ts.URL()})
	_, err := anon.History(ctx, "x", nil)
	wantStatus(t, err, 401, "client: history /history/x: 401 Unauthorized")

	c := newClient(t, client.Config{URL: ts.URL(), Password: "pw"})
	_, err = c.History(ctx, "a/../b", nil)
	wantStatus(t, err, 400, "client: history /history/a/../b: 400 Bad Request")
	_, err = c.History(ctx, "x", &client.HistoryOptions{Before: "1-0", After: "2-0"})
	var oe *client.OpError
	if !errors.As(err, &oe) || err.Error() != "client: history /history/x: give Before or After, not both" {
		t.Fatalf("History with Before and After = %v", err)
	}
}
