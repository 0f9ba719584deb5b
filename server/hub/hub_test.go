package hub

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/msgbus/msgbus/server/message"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// testFormat is a Format that counts its Encode calls. Its frame is
// "<name><where>:<body>", where is "-" for a subscriber of the message's own
// channel and "@<channel>" for a parent or the root.
type testFormat struct {
	name    string
	encodes atomic.Int64
}

func (f *testFormat) Encode(m *message.Message, located bool) []byte {
	f.encodes.Add(1)
	where := "-"
	if located {
		where = "@" + m.Channel
	}
	return []byte(f.name + where + ":" + string(m.Body))
}

// End ends a stream cleanly on shutdown and cuts it otherwise, as the
// multipart framing does.
func (f *testFormat) End(err error) []byte {
	if err != ErrClosed {
		return nil
	}
	return []byte(f.name + " end")
}

var _ message.Format = (*testFormat)(nil)

// testSub is a subscription with a counted Wake.
type testSub struct {
	*Subscription
	wakes atomic.Int64
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestHub(cfg Config) *Hub {
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	return New(cfg)
}

// subscribe subscribes to channel with f, failing the test on error.
func subscribe(t testing.TB, h *Hub, channel string, f message.Format, filter *message.Filter) *testSub {
	t.Helper()
	ts := &testSub{}
	s, err := h.Subscribe(channel, SubscribeOptions{Format: f, Filter: filter, Wake: func() { ts.wakes.Add(1) }})
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", channel, err)
	}
	ts.Subscription = s
	return ts
}

// drain takes everything queued for s, as strings, and the end reason.
func drain(t testing.TB, s *testSub) ([]string, error) {
	t.Helper()
	var out []string
	for {
		frames, err := s.Take(nil)
		if len(frames) == 0 {
			return out, err
		}
		for _, f := range frames {
			out = append(out, string(f))
		}
	}
}

// wantFrames drains s and compares its frames with want.
func wantFrames(t testing.TB, s *testSub, want ...string) {
	t.Helper()
	got, err := drain(t, s)
	if err != nil {
		t.Fatalf("subscriber of %q: Take error %v", s.Channel(), err)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(got) != len(want) {
		t.Fatalf("subscriber of %q got %q, want %q", s.Channel(), got, want)
	}
}

func publish(h *Hub, channel, body string) int {
	return pub(h, &message.Message{Channel: channel, Type: "text/plain", Body: []byte(body)})
}

func TestPublishReachesChannelItsAncestorsAndRootOnly(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	subs := map[string]*testSub{}
	for _, ch := range []string{"", "a", "a/b", "a/b/c", "a/b/c/d", "ab", "a/bc", "a/b/cd", "b"} {
		subs[ch] = subscribe(t, h, ch, f, nil)
	}
	if n := publish(h, "a/b/c", "m1"); n != 4 {
		t.Fatalf("Publish reached %d subscribers, want 4", n)
	}
	wantFrames(t, subs[""], "f@a/b/c:m1")
	wantFrames(t, subs["a"], "f@a/b/c:m1")
	wantFrames(t, subs["a/b"], "f@a/b/c:m1")
	wantFrames(t, subs["a/b/c"], "f-:m1")
	for _, ch := range []string{"a/b/c/d", "ab", "a/bc", "a/b/cd", "b"} {
		wantFrames(t, subs[ch])
	}
}

func TestSegmentPrefixIsNotStringPrefix(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	a, ab, aSlashB := subscribe(t, h, "a", f, nil), subscribe(t, h, "ab", f, nil), subscribe(t, h, "a/b", f, nil)
	if n := publish(h, "a/b", "1"); n != 2 {
		t.Fatalf("Publish(a/b) reached %d, want 2", n)
	}
	if n := publish(h, "ab", "2"); n != 1 {
		t.Fatalf("Publish(ab) reached %d, want 1", n)
	}
	if n := publish(h, "a", "3"); n != 1 { // a child never sees its parent's messages
		t.Fatalf("Publish(a) reached %d, want 1", n)
	}
	wantFrames(t, a, "f@a/b:1", "f-:3")
	wantFrames(t, ab, "f-:2")
	wantFrames(t, aSlashB, "f-:1")
}

func TestEncodeRunsOncePerFormatAndLocationWhateverTheSubscribers(t *testing.T) {
	h := newTestHub(Config{})
	f1, f2 := &testFormat{name: "one"}, &testFormat{name: "two"}
	var all []*testSub
	for i := range 50 {
		f := message.Format(f1)
		if i%3 == 0 {
			f = f2 // interleaved, so the fan-out's last-format shortcut is not enough
		}
		all = append(all, subscribe(t, h, "", f1, nil), subscribe(t, h, "a", f, nil), subscribe(t, h, "a/b", f, nil))
	}
	for i := range 10 {
		if n := publish(h, "a/b", "body"); n != len(all) {
			t.Fatalf("publish %d reached %d, want %d", i, n, len(all))
		}
		// one and two, each located (root, "a") and not ("a/b").
		if got1, got2 := f1.encodes.Load(), f2.encodes.Load(); got1 != int64(2*(i+1)) || got2 != int64(2*(i+1)) {
			t.Fatalf("after %d publishes Encode ran %d and %d times, want %d each", i+1, got1, got2, 2*(i+1))
		}
	}
	// Every subscriber with the same (format, located) shares one frame.
	shared := map[string]*byte{}
	for _, s := range all {
		frames, err := s.Take(nil)
		if err != nil || len(frames) != 10 {
			t.Fatalf("Take: %d frames, %v; want 10", len(frames), err)
		}
		last := frames[9]
		if p, ok := shared[string(last)]; ok && p != &last[0] {
			t.Fatalf("frame %q was encoded into more than one slice", last)
		}
		shared[string(last)] = &last[0]
	}
	if len(shared) != 4 {
		t.Fatalf("%d distinct frames, want 4", len(shared))
	}
}

func TestPublishReturnsSubscribersReachedAndStatsCountThem(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	if n := publish(h, "nobody/here", "x"); n != 0 {
		t.Fatalf("Publish with no subscribers = %d, want 0", n)
	}
	subscribe(t, h, "", f, nil)
	subscribe(t, h, "a", f, nil)
	subscribe(t, h, "a", f, nil)
	subscribe(t, h, "a", f, message.NewFilter("image/*", ""))
	tests := []struct {
		channel string
		want    int
	}{
		{"a", 3}, {"a/b", 3}, {"b", 1}, {"ab", 1},
	}
	total := 0
	for _, tt := range tests {
		if n := publish(h, tt.channel, "x"); n != tt.want {
			t.Fatalf("Publish(%q) = %d, want %d", tt.channel, n, tt.want)
		}
		total += tt.want
	}
	st := h.Stats()
	if st.Published != uint64(len(tests)+1) || st.Delivered != uint64(total) || st.Subscribers != 4 || st.Channels != 2 {
		t.Fatalf("Stats = %+v, want Published %d, Delivered %d, Subscribers 4, Channels 2", st, len(tests)+1, total)
	}
}

func TestFiltersSkipSubscribers(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	everything := subscribe(t, h, "a", f, nil)
	text := subscribe(t, h, "a", f, message.NewFilter("text/*", ""))
	notImages := subscribe(t, h, "", f, message.NewFilter("!image/*,*", ""))
	alice := subscribe(t, h, "a", f, message.NewFilter("", "alice"))
	msgs := []struct {
		typ, sender, body string
		want              int
	}{
		{"text/plain; charset=utf-8", "", "t", 3},
		{"image/png", "", "i", 1},
		{"image/png", "alice", "ia", 2},
		{"Text/HTML", "alice", "ta", 4},
	}
	for _, m := range msgs {
		if n := pub(h, &message.Message{Channel: "a", Type: m.typ, Sender: m.sender, Body: []byte(m.body)}); n != m.want {
			t.Fatalf("Publish(%s from %q) reached %d, want %d", m.typ, m.sender, n, m.want)
		}
	}
	wantFrames(t, everything, "f-:t", "f-:i", "f-:ia", "f-:ta")
	wantFrames(t, text, "f-:t", "f-:ta")
	wantFrames(t, notImages, "f@a:t", "f@a:ta")
	wantFrames(t, alice, "f-:ia", "f-:ta")
}

func TestSubscriberGetsMessagesInPublishOrder(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	s := subscribe(t, h, "a", f, nil)
	var want []string
	var lastID message.ID
	for i := range 200 {
		ch := []string{"a", "a/b", "a/b/c"}[i%3]
		m := &message.Message{Channel: ch, Body: []byte(strconv.Itoa(i))}
		pub(h, m)
		if !lastID.Less(m.ID) {
			t.Fatalf("message %d got ID %v after %v", i, m.ID, lastID)
		}
		lastID = m.ID
		where := "-"
		if ch != "a" {
			where = "@" + ch
		}
		want = append(want, "f"+where+":"+strconv.Itoa(i))
		if i%17 == 0 { // take now and then, as a writer would
			got, _ := s.Take(nil)
			for j, fr := range got {
				if string(fr) != want[j] {
					t.Fatalf("frame %q, want %q", fr, want[j])
				}
			}
			want = want[len(got):]
		}
	}
	wantFrames(t, s, want...)
}

func TestTakeReturnsHeadBeforeAnyMessage(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	s, err := h.Subscribe("a", SubscribeOptions{Format: f, Head: []byte("HEAD"), Wake: func() {}})
	if err != nil {
		t.Fatal(err)
	}
	publish(h, "a", "1")
	wantFrames(t, &testSub{Subscription: s}, "HEAD", "f-:1")
}

func TestEmptyTakeArmsOneWakeForTheNextFrames(t *testing.T) {
	h := newTestHub(Config{})
	s := subscribe(t, h, "a", &testFormat{name: "f"}, nil)
	steps := []struct {
		do        string
		wantWakes int64
		wantTake  int
	}{
		{"take", 0, 0},    // empty: arms the wake
		{"publish", 1, 0}, // the first frame wakes
		{"publish", 1, 0}, // later ones do not
		{"publish", 1, 0},
		{"take", 1, 3},
		{"publish", 1, 0}, // not armed: the taker has not seen the queue empty
		{"take", 1, 1},
		{"take", 1, 0},
		{"publish", 2, 0},
		{"unsubscribe", 2, 0}, // not armed again, so no wake for the end
		{"take", 2, 1},
		{"take", 2, 0},
	}
	for i, st := range steps {
		switch st.do {
		case "take":
			frames, _ := s.Take(nil)
			if len(frames) != st.wantTake {
				t.Fatalf("step %d: Take returned %d frames, want %d", i, len(frames), st.wantTake)
			}
		case "publish":
			publish(h, "a", "x")
		case "unsubscribe":
			h.Unsubscribe(s.Subscription)
		}
		if got := s.wakes.Load(); got != st.wantWakes {
			t.Fatalf("step %d (%s): %d wakes, want %d", i, st.do, got, st.wantWakes)
		}
	}
}

func TestEndWakesAWaitingTaker(t *testing.T) {
	ends := []struct {
		name string
		end  func(h *Hub, s *testSub)
		want error
	}{
		{"unsubscribe", func(h *Hub, s *testSub) { h.Unsubscribe(s.Subscription) }, ErrUnsubscribed},
		{"close", func(h *Hub, s *testSub) { h.Close() }, ErrClosed},
	}
	for _, tt := range ends {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHub(Config{})
			s := subscribe(t, h, "a", &testFormat{name: "f"}, nil)
			if frames, err := s.Take(nil); len(frames) != 0 || err != nil {
				t.Fatalf("first Take = %d frames, %v", len(frames), err)
			}
			tt.end(h, s)
			if s.wakes.Load() != 1 {
				t.Fatalf("%d wakes after the end, want 1", s.wakes.Load())
			}
			if _, err := drain(t, s); err != tt.want {
				t.Fatalf("Take error %v, want %v", err, tt.want)
			}
			if err := s.Err(); err != tt.want {
				t.Fatalf("Err() = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestTakeSwapsInTheCallersStorage(t *testing.T) {
	h := newTestHub(Config{})
	s := subscribe(t, h, "a", &testFormat{name: "f"}, nil)
	bufA := make([][]byte, 0, 8)
	bufB := make([][]byte, 0, 8)

	// Nothing queued: dst stays the caller's.
	got, err := s.Take(bufA)
	if err != nil || len(got) != 0 || cap(got) != 8 || &got[:1][0] != &bufA[:1][0] {
		t.Fatalf("empty Take did not hand back dst: len %d cap %d err %v", len(got), cap(got), err)
	}
	publish(h, "a", "1")
	first, _ := s.Take(bufA) // the hub's own queue; bufA becomes the queue
	if len(first) != 1 {
		t.Fatalf("Take returned %d frames, want 1", len(first))
	}
	publish(h, "a", "2")
	publish(h, "a", "3")
	second, _ := s.Take(bufB)
	if len(second) != 2 || &second[0] != &bufA[:1][0] {
		t.Fatalf("second Take did not return frames in bufA's storage (len %d)", len(second))
	}
	publish(h, "a", "4")
	third, _ := s.Take(second)
	if len(third) != 1 || &third[0] != &bufB[:1][0] {
		t.Fatalf("third Take did not return frames in bufB's storage (len %d)", len(third))
	}
	if string(third[0]) != "f-:4" {
		t.Fatalf("third frame %q", third[0])
	}
}

func TestSlowSubscriberIsDroppedAndOthersGetEveryMessage(t *testing.T) {
	var logs bytes.Buffer
	frameLen := len("f-:0")
	h := New(Config{MaxQueueBytes: 3 * frameLen, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	f := &testFormat{name: "f"}
	slow := subscribe(t, h, "a", f, nil)
	fast := subscribe(t, h, "a", f, nil)
	if frames, _ := slow.Take(nil); len(frames) != 0 { // arm the wake
		t.Fatal("frames before any publish")
	}
	var want []string
	for i := range 10 {
		n := publish(h, "a", strconv.Itoa(i))
		wantN := 2
		if i >= 3 {
			wantN = 1
		}
		if n != wantN {
			t.Fatalf("publish %d reached %d, want %d", i, n, wantN)
		}
		want = append(want, "f-:"+strconv.Itoa(i))
		wantFrames(t, fast, want[len(want)-1])
	}
	frames, err := slow.Take(nil)
	if len(frames) != 0 || err != ErrSlowConsumer {
		t.Fatalf("slow Take = %d frames, %v; want its queue dropped and %v", len(frames), err, ErrSlowConsumer)
	}
	if slow.wakes.Load() != 1 {
		t.Fatalf("slow subscriber woken %d times, want 1", slow.wakes.Load())
	}
	if slow.Err() != ErrSlowConsumer || fast.Err() != nil {
		t.Fatalf("Err: slow %v, fast %v", slow.Err(), fast.Err())
	}
	if st := h.Stats(); st.SlowDisconnects != 1 {
		t.Fatalf("SlowDisconnects = %d, want 1", st.SlowDisconnects)
	}
	if !strings.Contains(logs.String(), "slow subscriber") || !strings.Contains(logs.String(), "channel=/a") {
		t.Fatalf("log does not name the slow subscriber's channel: %q", logs.String())
	}
	h.Unsubscribe(slow.Subscription)
	if err := slow.Err(); err != ErrSlowConsumer {
		t.Fatalf("Unsubscribe replaced the reason: %v", err)
	}
}

func TestFrameLargerThanQueueLimitIsQueuedWhenQueueIsEmpty(t *testing.T) {
	h := newTestHub(Config{MaxQueueBytes: 4})
	s := subscribe(t, h, "a", &testFormat{name: "f"}, nil)
	if n := publish(h, "a", "a body longer than four bytes"); n != 1 {
		t.Fatalf("Publish reached %d, want 1", n)
	}
	if n := publish(h, "a", "x"); n != 0 {
		t.Fatalf("second Publish reached %d, want 0: the queue was over its limit", n)
	}
	if _, err := drain(t, s); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Take error %v, want ErrSlowConsumer", err)
	}
}

func TestMaxSubscribersRefusesAndUnsubscribeFreesASlot(t *testing.T) {
	h := newTestHub(Config{MaxSubscribers: 2})
	f := &testFormat{name: "f"}
	a := subscribe(t, h, "a", f, nil)
	subscribe(t, h, "", f, nil)
	for range 3 {
		if _, err := h.Subscribe("b", SubscribeOptions{Format: f, Wake: func() {}}); err != ErrTooManySubscribers {
			t.Fatalf("Subscribe past the limit: %v, want ErrTooManySubscribers", err)
		}
	}
	if st := h.Stats(); st.Subscribers != 2 || st.Channels != 2 {
		t.Fatalf("refused subscriptions were counted: %+v", st)
	}
	h.Unsubscribe(a.Subscription)
	h.Unsubscribe(a.Subscription) // twice frees one slot only
	subscribe(t, h, "b", f, nil)
	if _, err := h.Subscribe("c", SubscribeOptions{Format: f, Wake: func() {}}); err != ErrTooManySubscribers {
		t.Fatalf("Subscribe past the limit after a double Unsubscribe: %v", err)
	}
}

func TestUnsubscribeIsIdempotentAndFreesTheChannel(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	subs := []*testSub{subscribe(t, h, "a/b", f, nil), subscribe(t, h, "a/b", f, nil), subscribe(t, h, "", f, nil)}
	if st := h.Stats(); st.Channels != 2 || st.Subscribers != 3 {
		t.Fatalf("Stats = %+v, want 2 channels, 3 subscribers", st)
	}
	publish(h, "a/b", "queued")
	for _, s := range subs {
		h.Unsubscribe(s.Subscription)
		h.Unsubscribe(s.Subscription)
	}
	if st := h.Stats(); st.Channels != 0 || st.Subscribers != 0 {
		t.Fatalf("after Unsubscribe Stats = %+v, want 0 channels, 0 subscribers", st)
	}
	if n := publish(h, "a/b", "gone"); n != 0 {
		t.Fatalf("Publish after Unsubscribe reached %d", n)
	}
	for _, s := range subs {
		got, err := drain(t, s) // what was queued still goes out
		if len(got) != 1 || err != ErrUnsubscribed {
			t.Fatalf("after Unsubscribe: %q, %v; want the queued frame then ErrUnsubscribed", got, err)
		}
	}
}

func TestUnsubscribeInAnyOrderKeepsTheOthersSubscribed(t *testing.T) {
	for _, order := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			h := newTestHub(Config{})
			f := &testFormat{name: "f"}
			subs := make([]*testSub, 4)
			for i := range subs {
				subs[i] = subscribe(t, h, "a", f, nil)
			}
			live := map[int]bool{0: true, 1: true, 2: true, 3: true}
			for step, i := range order {
				h.Unsubscribe(subs[i].Subscription)
				delete(live, i)
				body := strconv.Itoa(step)
				if n := publish(h, "a", body); n != len(live) {
					t.Fatalf("after removing %d: Publish reached %d, want %d", i, n, len(live))
				}
				for j := range live {
					wantFrames(t, subs[j], "f-:"+body)
				}
			}
			if h.Stats().Channels != 0 {
				t.Fatalf("channel left behind: %+v", h.Stats())
			}
		})
	}
}

func TestCloseEndsEverySubscriberAfterItsEndBytes(t *testing.T) {
	h := newTestHub(Config{})
	f1, f2 := &testFormat{name: "one"}, &testFormat{name: "two"}
	a := subscribe(t, h, "a", f1, nil)
	root := subscribe(t, h, "", f2, nil)
	idle := subscribe(t, h, "b", f1, nil)
	publish(h, "a", "1")
	h.Close()
	h.Close() // a second Close queues nothing more
	if n := publish(h, "a", "after"); n != 0 {
		t.Fatalf("Publish after Close reached %d", n)
	}
	tests := []struct {
		s    *testSub
		want []string
	}{
		{a, []string{"one-:1", "one end"}},
		{root, []string{"two@a:1", "two end"}},
		{idle, []string{"one end"}},
	}
	for _, tt := range tests {
		got, err := drain(t, tt.s)
		if err != ErrClosed || strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Fatalf("subscriber of %q: %q, %v; want %q, ErrClosed", tt.s.Channel(), got, err, tt.want)
		}
	}
	if _, err := h.Subscribe("a", SubscribeOptions{Format: f1, Wake: func() {}}); err != ErrClosed {
		t.Fatalf("Subscribe after Close: %v, want ErrClosed", err)
	}
	for _, tt := range tests {
		h.Unsubscribe(tt.s.Subscription)
		if tt.s.Err() != ErrClosed {
			t.Fatalf("Unsubscribe after Close replaced the reason: %v", tt.s.Err())
		}
	}
	if st := h.Stats(); st.Subscribers != 0 || st.Channels != 0 {
		t.Fatalf("after Close and Unsubscribe: %+v", st)
	}
}

// raceFormat's frame is "<channel> <sender> <seq> <located>", parsed back by
// the subscribers of TestConcurrentSubscribeUnsubscribeAndPublish.
type raceFormat struct{ encodes atomic.Int64 }

func (f *raceFormat) Encode(m *message.Message, located bool) []byte {
	f.encodes.Add(1)
	return fmt.Appendf(nil, "%s %s %s %t", m.Channel, m.Sender, m.Body, located)
}

func (f *raceFormat) End(error) []byte { return []byte("end") }

// raceSub records, per publisher, the sequence numbers it received.
type raceSub struct {
	channel string
	got     map[string][]int
	frames  int
}

func (r *raceSub) record(t testing.TB, frames [][]byte) {
	for _, fr := range frames {
		var ch, sender string
		var seq int
		var located bool
		if _, err := fmt.Sscanf(string(fr), "%s %s %d %t", &ch, &sender, &seq, &located); err != nil {
			t.Errorf("subscriber of %q: bad frame %q: %v", r.channel, fr, err)
			return
		}
		if !inHierarchy(r.channel, ch) || located != (ch != r.channel) {
			t.Errorf("subscriber of %q got %q", r.channel, fr)
		}
		r.got[sender] = append(r.got[sender], seq)
		r.frames++
	}
}

// inHierarchy reports whether a subscriber of sub receives publishes to ch.
func inHierarchy(sub, ch string) bool {
	return sub == "" || ch == sub || strings.HasPrefix(ch, sub+"/")
}

// TestConcurrentSubscribeUnsubscribeAndPublish: publishers, subscribers that
// stay, and subscribers that come and go, all at once (run it with -race).
// Every frame queued is taken exactly once, a subscriber that stayed gets
// every message in each publisher's order, and one that came and went gets
// an unbroken run of each publisher's messages.
func TestConcurrentSubscribeUnsubscribeAndPublish(t *testing.T) {
	const (
		publishers = 4
		churners   = 4
		ops        = 2000
	)
	channels := []string{"", "a", "a/b", "a/b/c", "x", "x/y"}
	targets := channels[1:]
	h := newTestHub(Config{MaxQueueBytes: 64 << 20})
	f := &raceFormat{}
	target := func(p, seq int) string { return targets[(seq*7+p)%len(targets)] }
	// expected[channel][sender] lists the seqs a subscriber of channel gets.
	expected := map[string]map[string][]int{}
	for _, ch := range channels {
		expected[ch] = map[string][]int{}
		for p := range publishers {
			for seq := range ops {
				if inHierarchy(ch, target(p, seq)) {
					sender := "p" + strconv.Itoa(p)
					expected[ch][sender] = append(expected[ch][sender], seq)
				}
			}
		}
	}

	// Subscribers that stay, each drained by its own goroutine on Wake.
	var takers sync.WaitGroup
	stayers := make([]*raceSub, len(channels))
	staySubs := make([]*Subscription, len(channels))
	for i, ch := range channels {
		r := &raceSub{channel: ch, got: map[string][]int{}}
		wake := make(chan struct{}, 1)
		s, err := h.Subscribe(ch, SubscribeOptions{Format: f, Wake: func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		stayers[i], staySubs[i] = r, s
		takers.Add(1)
		go func() {
			defer takers.Done()
			var buf [][]byte
			for {
				frames, err := s.Take(buf)
				if len(frames) > 0 {
					r.record(t, frames)
					buf = frames[:0]
					continue
				}
				if err != nil {
					return
				}
				<-wake
			}
		}()
	}

	var (
		wg        sync.WaitGroup
		reached   atomic.Int64
		churnSeen atomic.Int64
	)
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sender := "p" + strconv.Itoa(p)
			for seq := range ops {
				m := &message.Message{Channel: target(p, seq), Sender: sender, Body: []byte(strconv.Itoa(seq))}
				reached.Add(int64(pub(h, m)))
			}
		}()
	}
	for c := range churners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			var buf [][]byte
			for range ops {
				ch := channels[rng.IntN(len(channels))]
				s, err := h.Subscribe(ch, SubscribeOptions{Format: f, Wake: func() {}})
				if err != nil {
					t.Error(err)
					return
				}
				r := &raceSub{channel: ch, got: map[string][]int{}}
				for range rng.IntN(4) {
					frames, _ := s.Take(buf)
					r.record(t, frames)
					buf = frames[:0]
				}
				h.Unsubscribe(s)
				for {
					frames, err := s.Take(buf)
					r.record(t, frames)
					buf = frames[:0]
					if len(frames) == 0 {
						if err != ErrUnsubscribed {
							t.Errorf("churner Take after Unsubscribe: %v", err)
						}
						break
					}
				}
				churnSeen.Add(int64(r.frames))
				for sender, seqs := range r.got {
					if !isRunOf(seqs, expected[ch][sender]) {
						t.Errorf("subscriber of %q that came and went got %v from %s: not a run of its messages", ch, seqs, sender)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, s := range staySubs {
		h.Unsubscribe(s)
	}
	takers.Wait()

	stayed := 0
	for _, r := range stayers {
		stayed += r.frames
		for p := range publishers {
			sender := "p" + strconv.Itoa(p)
			if got, want := r.got[sender], expected[r.channel][sender]; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("subscriber of %q got %d messages from %s, want all %d in order", r.channel, len(got), sender, len(want))
			}
		}
	}
	st := h.Stats()
	if st.Published != publishers*ops || st.Delivered != uint64(reached.Load()) {
		t.Errorf("Stats %+v: want Published %d, Delivered %d", st, publishers*ops, reached.Load())
	}
	if taken := int64(stayed) + churnSeen.Load(); taken != reached.Load() {
		t.Errorf("subscribers took %d frames, Publish reported %d deliveries", taken, reached.Load())
	}
	if st.Subscribers != 0 || st.Channels != 0 || st.SlowDisconnects != 0 {
		t.Errorf("after everyone left: %+v", st)
	}
}

// isRunOf reports whether got is a contiguous run of want.
func isRunOf(got, want []int) bool {
	if len(got) == 0 {
		return true
	}
	for i, w := range want {
		if w == got[0] {
			return len(want)-i >= len(got) && fmt.Sprint(want[i:i+len(got)]) == fmt.Sprint(got)
		}
	}
	return false
}

// TestCloseDuringPublishEndsEveryStreamWithItsEndBytes: with publishers
// running, Close leaves each subscriber a queue whose last frame is End.
func TestCloseDuringPublishEndsEveryStreamWithItsEndBytes(t *testing.T) {
	h := newTestHub(Config{MaxQueueBytes: 64 << 20})
	f := &raceFormat{}
	var subs []*Subscription
	for _, ch := range []string{"", "a", "a/b", "a", "x"} {
		s, err := h.Subscribe(ch, SubscribeOptions{Format: f, Wake: func() {}})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range 1000 {
				ch := []string{"a", "a/b", "x"}[(seq+p)%3]
				pub(h, &message.Message{Channel: ch, Sender: "p", Body: []byte(strconv.Itoa(seq))})
				if p == 0 && seq == 300 {
					h.Close()
				}
			}
		}()
	}
	wg.Wait()
	for _, s := range subs {
		var all [][]byte
		for {
			frames, err := s.Take(nil)
			all = append(all, frames...)
			if len(frames) == 0 {
				if err != ErrClosed {
					t.Fatalf("subscriber of %q ended with %v", s.Channel(), err)
				}
				break
			}
		}
		if len(all) == 0 || string(all[len(all)-1]) != "end" {
			t.Fatalf("subscriber of %q: stream does not end with End bytes", s.Channel())
		}
		for _, fr := range all[:len(all)-1] {
			if string(fr) == "end" {
				t.Fatalf("subscriber of %q got End twice", s.Channel())
			}
		}
		h.Unsubscribe(s)
	}
}

// testIDs gives the tests' messages increasing ids, as an engine would.
var testIDs struct {
	sync.Mutex
	message.IDGen
}

// testOrder is the Order of the tests: an id and a time, nothing kept.
func testOrder(m *message.Message) error {
	testIDs.Lock()
	defer testIDs.Unlock()
	m.Time = time.Now()
	m.ID = testIDs.Next(m.Time)
	return nil
}

// pub publishes m with testOrder and returns how many subscribers got it.
func pub(h *Hub, m *message.Message) int {
	n, err := h.Publish(m, testOrder)
	if err != nil {
		panic(err)
	}
	return n
}

// pushMsg pushes m with testOrder.
func pushMsg(h *Hub, m *message.Message, f message.Format) (int, error) {
	return h.Push(m, f, testOrder)
}

// A publish the replay read can lock its nodes before the replay and fan
// out after Start; the subscriber must not get it twice. The test gives
// the live publish the replayed id, which is what such a late fan-out
// looks like to the subscription.
func TestReplayedMessageFannedOutAfterStartIsNotDuplicated(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	ts := &testSub{}
	s, err := h.Subscribe("w", SubscribeOptions{Format: f, Held: true, Wake: func() { ts.wakes.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	ts.Subscription = s
	replayed := &message.Message{Channel: "w", Body: []byte("r")}
	pub(h, replayed) // held: kept early, then dropped by Replay
	s.Replay([]*message.Message{replayed}, message.ID{})
	s.Start(nil)
	late := &message.Message{Channel: "w", Body: []byte("late")}
	if _, err := h.Publish(late, func(m *message.Message) error { m.ID = replayed.ID; return nil }); err != nil {
		t.Fatal(err)
	}
	pub(h, &message.Message{Channel: "w", Body: []byte("next")})
	wantFrames(t, ts, "f-:r", "f-:next")
}

// TestSubscriptionIsTwoCacheLines: a Subscription, what every delivery
// reads, is 128 bytes, a size class whose objects start on 64-byte
// boundaries (see the struct's comment).
func TestSubscriptionIsTwoCacheLines(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is planned for 64-bit platforms")
	}
	var s Subscription
	if size := unsafe.Sizeof(s); size > 128 {
		t.Errorf("a Subscription has %d bytes, want at most 128: move what deliveries do not read to subscriptionRest", size)
	}
}
