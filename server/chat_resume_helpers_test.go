package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chatLinesJS is a JavaScript expression for the lines the chat shows, in
// order, as JSON: "who: text" for a chat line, "* text" for a system note.
const chatLinesJS = `JSON.stringify([...document.querySelectorAll('#messages li')].map((li) =>
	li.classList.contains('system') ? '* ' + li.textContent :
	(li.querySelector('.who')?.textContent ?? '?') + ': ' + (li.querySelector('.text')?.textContent ?? '')))`

// chatLineCount is a JavaScript expression for how many chat lines (not
// system notes) the chat shows.
const chatLineCount = "document.querySelectorAll('#messages li:not(.system)').length"

// chatLines returns the lines tab ctx shows (see chatLinesJS).
func chatLines(b *browser, ctx context.Context) []string {
	b.t.Helper()
	var lines []string
	if err := json.Unmarshal([]byte(eval[string](b, ctx, chatLinesJS)), &lines); err != nil {
		b.t.Fatalf("reading the chat's lines: %v", err)
	}
	return lines
}

// chatOnly drops the system notes of lines.
func chatOnly(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "* ") {
			out = append(out, l)
		}
	}
	return out
}

// sameLines fails the test unless got is want, naming the first
// difference, a missing line or a repeated one.
func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, l := range got {
		seen[l]++
	}
	for l, n := range seen {
		if n > 1 {
			t.Errorf("%s: %q shown %d times", what, l, n)
		}
	}
	for _, l := range want {
		if seen[l] == 0 {
			t.Errorf("%s: %q is missing", what, l)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %d lines %q\nwant %d lines %q", what, len(got), got, len(want), want)
	}
}

// chatPost publishes one chat line to room as who, as the page sends it.
func chatPost(t *testing.T, ts *testServer, room, who, text string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": who, "text": text})
	if res := ts.publish(t, "/msgbus/chat/"+room, "application/json", string(body)); res.StatusCode != 204 {
		t.Fatalf("publishing %q to chat/%s: %s", text, room, res.Status)
	}
}

// chatNumbered is "line 001" … for n, the lines the history tests post.
func chatNumbered(n int) string { return fmt.Sprintf("line %03d", n) }

// chatWait polls a JavaScript condition in tab ctx until it is truthy, as
// browser.wait does, and on failure also says what the chat shows.
func chatWait(b *browser, ctx context.Context, what, expr string, timeout time.Duration) {
	b.t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout),
		chromedp.WithPollingInterval(10*time.Millisecond))); err != nil {
		b.t.Fatalf("waiting %v for %s (%s): %v; the chat shows %q", timeout, what, expr, err, chatLines(b, ctx))
	}
}
