package hub

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/msgbus/msgbus/server/message"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// subscribePull registers a puller on topic with f, failing the test on
// error.
func subscribePull(t testing.TB, h *Hub, topic string, f message.Format) *testSub {
	t.Helper()
	ts := &testSub{}
	s, err := h.SubscribePull(topic, SubscribeOptions{Format: f, Wake: func() { ts.wakes.Add(1) }})
	if err != nil {
		t.Fatalf("SubscribePull(%q): %v", topic, err)
	}
	ts.Subscription = s
	return ts
}

// push pushes body to topic in f.
func push(h *Hub, topic, body string, f message.Format) (int, error) {
	return pushMsg(h, &message.Message{Channel: topic, Type: "text/plain", Body: []byte(body)}, f)
}

// mustPush pushes and fails unless the message reached want pullers.
func mustPush(t testing.TB, h *Hub, topic, body string, f message.Format, want int) {
	t.Helper()
	n, err := push(h, topic, body, f)
	if err != nil || n != want {
		t.Fatalf("Push(%q, %q) = %d, %v; want %d, nil", topic, body, n, err, want)
	}
}

func TestPushTakesTurnsInConnectOrder(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	a := subscribePull(t, h, "t", f)
	b := subscribePull(t, h, "t", f)
	c := subscribePull(t, h, "t", f)
	other := subscribePull(t, h, "u", f)
	var lastID message.ID
	for i := 1; i <= 7; i++ {
		m := &message.Message{Channel: "t", Type: "text/plain", Body: []byte(fmt.Sprint(i))}
		if n, err := pushMsg(h, m, f); n != 1 || err != nil {
			t.Fatalf("Push %d = %d, %v; want 1, nil", i, n, err)
		}
		if !lastID.Less(m.ID) {
			t.Fatalf("Push %d: ID %v after %v, want increasing", i, m.ID, lastID)
		}
		lastID = m.ID
	}
	wantFrames(t, a, "f-:1", "f-:4", "f-:7")
	wantFrames(t, b, "f-:2", "f-:5")
	wantFrames(t, c, "f-:3", "f-:6")
	wantFrames(t, other)
	if st := h.Stats(); st.Published != 7 || st.Delivered != 7 || st.Subscribers != 4 {
		t.Fatalf("Stats = %+v, want 7 published, 7 delivered, 4 subscribers", st)
	}
	if got := f.encodes.Load(); got != 7 {
		t.Fatalf("Encode ran %d times for 7 pushes, want 7", got)
	}
}

func TestPushWakesAWaitingPuller(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	a := subscribePull(t, h, "t", f)
	if frames, err := a.Take(nil); len(frames) != 0 || err != nil {
		t.Fatalf("Take before any push = %q, %v", frames, err)
	}
	mustPush(t, h, "t", "1", f, 1)
	mustPush(t, h, "t", "2", f, 1)
	if got := a.wakes.Load(); got != 1 {
		t.Fatalf("woken %d times for two pushes to an empty queue, want 1", got)
	}
	wantFrames(t, a, "f-:1", "f-:2")
}

func TestPushPassesOverAPullerWhoseQueueIsFull(t *testing.T) {
	frameLen := len("f-:0")
	h := newTestHub(Config{MaxQueueBytes: 2 * frameLen})
	f := &testFormat{name: "f"}
	a := subscribePull(t, h, "t", f) // never drained until the end
	b := subscribePull(t, h, "t", f) // drained after every push
	for i, want := range []*testSub{a, b, a, b, b, b} {
		mustPush(t, h, "t", fmt.Sprint(i), f, 1)
		if want == b {
			wantFrames(t, b, fmt.Sprint("f-:", i))
		}
	}
	// Passed over, not dropped: a is live, and gets its turn again once
	// it has room.
	if err := a.Err(); err != nil {
		t.Fatalf("full puller ended: %v", err)
	}
	if st := h.Stats(); st.SlowDisconnects != 0 {
		t.Fatalf("SlowDisconnects = %d, want 0: a full puller is passed over", st.SlowDisconnects)
	}
	wantFrames(t, a, "f-:0", "f-:2")
	mustPush(t, h, "t", "6", f, 1)
	mustPush(t, h, "t", "7", f, 1)
	wantFrames(t, a, "f-:6")
	wantFrames(t, b, "f-:7")
}

func TestPushWhileEveryPullerIsFullReachesAPullerOnceOneHasRoom(t *testing.T) {
	frameLen := len("f-:0")
	h := newTestHub(Config{MaxQueueBytes: frameLen})
	f := &testFormat{name: "f"}
	a := subscribePull(t, h, "t", f)
	b := subscribePull(t, h, "t", f)
	mustPush(t, h, "t", "0", f, 1)
	mustPush(t, h, "t", "1", f, 1)
	// Both are full: the message is accepted and waits.
	mustPush(t, h, "t", "2", f, 0)
	// Both drain; the pushes go on. The waiting message must not wait
	// for a puller that may never come while these two sit idle.
	got, _ := drain(t, a)
	gotB, _ := drain(t, b)
	for i := 3; i <= 4; i++ {
		if _, err := push(h, "t", fmt.Sprint(i), f); err != nil {
			t.Fatalf("Push %d: %v", i, err)
		}
		ga, _ := drain(t, a)
		gb, _ := drain(t, b)
		got = append(got, ga...)
		gotB = append(gotB, gb...)
	}
	all := append(got, gotB...)
	slices.Sort(all)
	want := []string{"f-:0", "f-:1", "f-:2", "f-:3", "f-:4"}
	if strings.Join(all, "|") != strings.Join(want, "|") {
		t.Fatalf("the connected pullers got %q, want each of %q once", all, want)
	}
}

func TestUnsubscribePullHandsItsFramesToTheOtherPullers(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	a := subscribePull(t, h, "t", f)
	b := subscribePull(t, h, "t", f)
	c := subscribePull(t, h, "t", f)
	for i := 1; i <= 6; i++ {
		mustPush(t, h, "t", fmt.Sprint(i), f, 1)
	}
	// b's writer had taken "f-:u" but could not write it; 2 and 5 wait
	// in its queue. All three go on, in that order, to the others.
	h.UnsubscribePull(b.Subscription, [][]byte{[]byte("f-:u")})
	if frames, err := b.Take(nil); len(frames) != 0 || !errors.Is(err, ErrUnsubscribed) {
		t.Fatalf("after UnsubscribePull, Take = %q, %v; want nothing and ErrUnsubscribed", frames, err)
	}
	wantFrames(t, a, "f-:1", "f-:4", "f-:u", "f-:5")
	wantFrames(t, c, "f-:3", "f-:6", "f-:2")
	if st := h.Stats(); st.Subscribers != 2 {
		t.Fatalf("Subscribers = %d, want 2", st.Subscribers)
	}
	h.UnsubscribePull(b.Subscription, nil) // a second time is harmless
	if st := h.Stats(); st.Subscribers != 2 {
		t.Fatalf("second UnsubscribePull: Subscribers = %d, want 2", st.Subscribers)
	}
}

func TestUnsubscribePullPassesTheTurnToTheNextPuller(t *testing.T) {
	cases := []struct {
		name  string
		leave int      // which puller leaves, after the first push
		want  []string // who gets the next three pushes
	}{
		{"the one whose turn is next", 1, []string{"C", "A", "C"}},
		{"one after it", 2, []string{"B", "A", "B"}},
		{"the one that just had its turn", 0, []string{"B", "C", "B"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHub(Config{})
			f := &testFormat{name: "f"}
			names := []string{"A", "B", "C"}
			subs := map[string]*testSub{}
			for _, n := range names {
				subs[n] = subscribePull(t, h, "t", f)
			}
			mustPush(t, h, "t", "0", f, 1)
			wantFrames(t, subs["A"], "f-:0")
			h.UnsubscribePull(subs[names[tc.leave]].Subscription, nil)
			for i, who := range tc.want {
				body := fmt.Sprint(i + 1)
				mustPush(t, h, "t", body, f, 1)
				wantFrames(t, subs[who], "f-:"+body)
			}
		})
	}
}

func TestUnsubscribeLastPullerKeepsItsFramesForTheNext(t *testing.T) {
	h := newTestHub(Config{MaxBacklogMessages: 1})
	f := &testFormat{name: "f"}
	a := subscribePull(t, h, "t", f)
	mustPush(t, h, "t", "1", f, 1)
	mustPush(t, h, "t", "2", f, 1)
	h.UnsubscribePull(a.Subscription, [][]byte{[]byte("f-:0")})
	// Three frames over a backlog limit of one: accepted once, so kept.
	if _, err := push(h, "t", "refused", f); !errors.Is(err, ErrBacklogFull) {
		t.Fatalf("Push into the over-full backlog: %v, want ErrBacklogFull", err)
	}
	next := subscribePull(t, h, "t", f)
	wantFrames(t, next, "f-:0", "f-:1", "f-:2")
	h.UnsubscribePull(next.Subscription, nil)
	if st := h.Stats(); st.Subscribers != 0 || len(h.pulls) != 0 {
		t.Fatalf("after the last puller left: %+v, %d rotations", st, len(h.pulls))
	}
}

func TestBacklogGoesToTheFirstPullerInOrder(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	for i := 1; i <= 3; i++ {
		mustPush(t, h, "t", fmt.Sprint(i), f, 0)
	}
	mustPush(t, h, "u", "other topic", f, 0)
	first, err := h.SubscribePull("t", SubscribeOptions{Format: f, Head: []byte("head"), Wake: func() {}})
	if err != nil {
		t.Fatal(err)
	}
	second := subscribePull(t, h, "t", f)
	wantFrames(t, &testSub{Subscription: first}, "head", "f-:1", "f-:2", "f-:3")
	wantFrames(t, second)
	// The rotation then starts with the first puller.
	mustPush(t, h, "t", "4", f, 1)
	mustPush(t, h, "t", "5", f, 1)
	wantFrames(t, &testSub{Subscription: first}, "f-:4")
	wantFrames(t, second, "f-:5")
	onU := subscribePull(t, h, "u", f)
	wantFrames(t, onU, "f-:other topic")
	if st := h.Stats(); st.Published != 6 || st.Delivered != 2 {
		t.Fatalf("Stats = %+v, want 6 published, 2 delivered by Push", st)
	}
}

func TestPushFailsWithErrBacklogFullAtTheLimits(t *testing.T) {
	frame := len("f-:12345")
	cases := []struct {
		name   string
		cfg    Config
		accept int
	}{
		{"messages", Config{MaxBacklogMessages: 3}, 3},
		{"bytes", Config{MaxBacklogBytes: 2 * frame}, 2},
		{"bytes, one short", Config{MaxBacklogBytes: 2*frame - 1}, 1},
		{"both", Config{MaxBacklogMessages: 2, MaxBacklogBytes: 10 * frame}, 2},
		{"default messages", Config{MaxBacklogBytes: 1 << 30}, DefaultMaxBacklogMessages},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHub(tc.cfg)
			f := &testFormat{name: "f"}
			for i := range tc.accept {
				mustPush(t, h, "t", fmt.Sprintf("%05d", i), f, 0)
			}
			m := &message.Message{Channel: "t", Type: "text/plain", Body: []byte("99999")}
			if n, err := pushMsg(h, m, f); n != 0 || !errors.Is(err, ErrBacklogFull) {
				t.Fatalf("Push past the limit = %d, %v; want 0, ErrBacklogFull", n, err)
			}
			if st := h.Stats(); st.Published != uint64(tc.accept) {
				t.Fatalf("Published = %d, want %d: a refused push is not published", st.Published, tc.accept)
			}
			// Another topic has a backlog of its own.
			mustPush(t, h, "u", "12345", f, 0)
			// A puller takes the backlog and makes room.
			p := subscribePull(t, h, "t", f)
			got, _ := drain(t, p)
			if len(got) != tc.accept {
				t.Fatalf("puller got %d frames, want %d", len(got), tc.accept)
			}
			mustPush(t, h, "t", "after", f, 1)
		})
	}
}

func TestRefusedPushLeavesNoRotationBehind(t *testing.T) {
	h := newTestHub(Config{MaxBacklogBytes: 4})
	f := &testFormat{name: "f"}
	if _, err := push(h, "t", "longer than the backlog", f); !errors.Is(err, ErrBacklogFull) {
		t.Fatalf("Push: %v, want ErrBacklogFull", err)
	}
	if len(h.pulls) != 0 {
		t.Fatalf("%d rotations left for a topic with no puller and no backlog", len(h.pulls))
	}
}

func TestPullersCountAgainstMaxSubscribers(t *testing.T) {
	h := newTestHub(Config{MaxSubscribers: 1})
	f := &testFormat{name: "f"}
	a := subscribePull(t, h, "t", f)
	if _, err := h.SubscribePull("t", SubscribeOptions{Format: f, Wake: func() {}}); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("second SubscribePull: %v, want ErrTooManySubscribers", err)
	}
	if _, err := h.Subscribe("x", SubscribeOptions{Format: f, Wake: func() {}}); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("Subscribe beside a puller: %v, want ErrTooManySubscribers", err)
	}
	h.UnsubscribePull(a.Subscription, nil)
	b := subscribePull(t, h, "t", f)
	mustPush(t, h, "t", "1", f, 1)
	wantFrames(t, b, "f-:1")
}

func TestCloseEndsPullersAfterTheirEndBytes(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	a := subscribePull(t, h, "t", f)
	b := subscribePull(t, h, "t", f)
	idle := subscribePull(t, h, "u", f)
	mustPush(t, h, "t", "1", f, 1)
	h.Close()
	for _, tc := range []struct {
		s    *testSub
		want []string
	}{
		{a, []string{"f-:1", "f end"}},
		{b, []string{"f end"}},
		{idle, []string{"f end"}},
	} {
		got, err := drain(t, tc.s)
		if !errors.Is(err, ErrClosed) || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Fatalf("puller got %q, %v; want %q, ErrClosed", got, err, tc.want)
		}
	}
	if _, err := h.SubscribePull("t", SubscribeOptions{Format: f, Wake: func() {}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("SubscribePull after Close: %v, want ErrClosed", err)
	}
	for _, s := range []*testSub{a, b, idle} {
		h.UnsubscribePull(s.Subscription, nil)
		if !errors.Is(s.Err(), ErrClosed) {
			t.Fatalf("UnsubscribePull after Close replaced the reason: %v", s.Err())
		}
	}
	if st := h.Stats(); st.Subscribers != 0 {
		t.Fatalf("Subscribers = %d after Close and UnsubscribePull, want 0", st.Subscribers)
	}
}

// TestConcurrentPushAndPullersComingAndGoingLoseNothing: every accepted
// push reaches exactly one puller, whatever the pullers do meanwhile.
func TestConcurrentPushAndPullersComingAndGoingLoseNothing(t *testing.T) {
	const pushers, perPusher, pullers, rounds = 4, 500, 4, 100
	h := newTestHub(Config{MaxQueueBytes: 256, MaxBacklogMessages: 50})
	f := &testFormat{name: "f"}

	var mu sync.Mutex
	got := map[string]int{}
	record := func(frames []string) {
		mu.Lock()
		for _, fr := range frames {
			got[fr]++
		}
		mu.Unlock()
	}
	accepted := make(chan string, pushers*perPusher)

	var wg sync.WaitGroup
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perPusher {
				body := fmt.Sprintf("%d-%d", p, i)
				if _, err := push(h, "t", body, f); err == nil {
					accepted <- "f-:" + body
				} else if !errors.Is(err, ErrBacklogFull) {
					t.Errorf("Push: %v", err)
				}
			}
		}()
	}
	for w := range pullers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range rounds {
				s, err := h.SubscribePull("t", SubscribeOptions{Format: f, Wake: func() {}})
				if err != nil {
					t.Errorf("SubscribePull: %v", err)
					return
				}
				var unsent [][]byte
				for range rng.IntN(4) {
					frames, _ := s.Take(nil)
					var strs []string
					for _, fr := range frames {
						strs = append(strs, string(fr))
					}
					// Sometimes the last batch "fails to write" and is
					// handed back.
					if rng.IntN(3) == 0 {
						unsent = frames
						break
					}
					record(strs)
				}
				h.UnsubscribePull(s, unsent)
			}
		}()
	}
	wg.Wait()
	close(accepted)

	// Whatever is left waits in the backlog for the next puller.
	last := subscribePull(t, h, "t", f)
	rest, err := drain(t, last)
	if err != nil {
		t.Fatal(err)
	}
	record(rest)
	n := 0
	for fr := range accepted {
		n++
		if got[fr] != 1 {
			t.Errorf("%s delivered %d times, want once", fr, got[fr])
		}
	}
	if len(got) != n {
		t.Errorf("%d distinct frames delivered, %d accepted", len(got), n)
	}
	if n == 0 {
		t.Fatalf("no push was accepted: the test tested nothing")
	}
}

// ctrlFormat is a Redeliverer: frames starting "ctrl:" are a subscriber's
// own (as WebSocket pings and closes are), the rest are messages.
type ctrlFormat struct{ testFormat }

func (*ctrlFormat) Redeliverable(frame []byte) bool { return !bytes.HasPrefix(frame, []byte("ctrl:")) }

func TestLeavingPullerKeepsItsControlFramesAndHandsOnItsMessages(t *testing.T) {
	h := newTestHub(Config{})
	f := &ctrlFormat{testFormat{name: "f"}}
	a := subscribePull(t, h, "t", f)
	b := subscribePull(t, h, "t", f)
	a.Send([]byte("ctrl:ping-for-a"))
	if _, err := pushMsg(h, &message.Message{Channel: "t", Body: []byte("m1")}, f); err != nil { // a's turn
		t.Fatal(err)
	}
	a.Finish([]byte("ctrl:close-for-a"))
	h.UnsubscribePull(a.Subscription, [][]byte{[]byte("ctrl:pong-in-flight")})
	wantFrames(t, b, "f-:m1")
}

func TestBacklogLimitCountsWhatPullersHoldSoALeavingPullerCannotPassIt(t *testing.T) {
	frame := len("f-:1")
	h := newTestHub(Config{MaxBacklogBytes: 4 * frame})
	f := &testFormat{name: "f"}
	p := subscribePull(t, h, "t", f)
	for i := 1; i <= 4; i++ {
		mustPush(t, h, "t", strconv.Itoa(i), f, 1) // queued for p, not yet written
	}
	if _, err := push(h, "t", "5", f); !errors.Is(err, ErrBacklogFull) {
		t.Fatalf("Push with 4 frames held by a puller that does not write: %v, want ErrBacklogFull", err)
	}
	// p goes away: its four frames wait in the backlog, still within the limit.
	h.UnsubscribePull(p.Subscription, nil)
	if _, err := push(h, "t", "5", f); !errors.Is(err, ErrBacklogFull) {
		t.Fatalf("Push after the puller left its frames behind: %v, want ErrBacklogFull", err)
	}
	if _, held := h.PushTopics(); held != 4*(int64(frame)+pushOverhead) {
		t.Fatalf("held %d, want 4 frames' cost", held)
	}
	q := subscribePull(t, h, "t", f)
	wantFrames(t, q, "f-:1", "f-:2", "f-:3", "f-:4") // taken, and Take again: written
	if _, held := h.PushTopics(); held != 0 {
		t.Fatalf("held %d after the puller wrote everything, want 0", held)
	}
	mustPush(t, h, "t", "5", f, 1)
}

func TestBacklogTotalBoundsAllTopicsTogether(t *testing.T) {
	const total = 1 << 20
	h := newTestHub(Config{MaxBacklogTotal: total})
	f := &testFormat{name: "f"}
	accepted := 0
	for i := 0; ; i++ {
		if _, err := push(h, "t"+strconv.Itoa(i), "x", f); err != nil {
			if !errors.Is(err, ErrBacklogFull) {
				t.Fatal(err)
			}
			break
		}
		accepted++
	}
	topics, held := h.PushTopics()
	if held > total || topics != accepted {
		t.Fatalf("%d topics hold %d, want at most %d", topics, held, total)
	}
	if accepted > total/pushOverhead {
		t.Fatalf("%d one-byte pushes accepted: the per-push overhead is not counted", accepted)
	}
	// Pulling every topic empties it, and an empty topic is freed.
	for i := range accepted {
		p := subscribePull(t, h, "t"+strconv.Itoa(i), f)
		wantFrames(t, p, "f-:x")
		h.UnsubscribePull(p.Subscription, nil)
	}
	if topics, held := h.PushTopics(); topics != 0 || held != 0 {
		t.Fatalf("after pulling everything: %d topics holding %d, want none", topics, held)
	}
}

func TestStalledPullerIsDroppedAndWhatItHeldGoesToAReadingOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		frame := len("f-:1")
		h := newTestHub(Config{MaxBacklogBytes: 3 * frame, PullerStall: time.Second})
		f := &testFormat{name: "f"}
		var dropped atomic.Bool
		stalled, err := h.SubscribePull("t", SubscribeOptions{Format: f, Wake: func() {},
			Dropped: func() { dropped.Store(true) }})
		if err != nil {
			t.Fatal(err)
		}
		reader := subscribePull(t, h, "t", f)
		for i := 1; i <= 4; i += 2 { // in turns: 1, 3 the stalled puller's; 2, 4 the reader's
			mustPush(t, h, "t", strconv.Itoa(i), f, 1)
			mustPush(t, h, "t", strconv.Itoa(i+1), f, 1)
			wantFrames(t, reader, "f-:"+strconv.Itoa(i+1))
		}
		mustPush(t, h, "t", "5", f, 1) // the stalled puller's, which now holds 3: the limit
		if _, err := push(h, "t", "6", f); !errors.Is(err, ErrBacklogFull) {
			t.Fatalf("Push at the limit: %v, want ErrBacklogFull", err)
		}
		if dropped.Load() {
			t.Fatal("a puller was dropped before PullerStall passed")
		}
		time.Sleep(2 * time.Second) // the stalled puller's client reads nothing
		if _, err := push(h, "t", "6", f); !errors.Is(err, ErrBacklogFull) {
			t.Fatalf("Push: %v, want ErrBacklogFull until the stalled puller's pushes move", err)
		}
		if !dropped.Load() || !errors.Is(stalled.Err(), ErrSlowConsumer) {
			t.Fatalf("the stalled puller was not dropped: %v", stalled.Err())
		}
		if reader.Err() != nil {
			t.Fatalf("the reading puller, idle with nothing held, was dropped: %v", reader.Err())
		}
		// Its writer gives up: what it held goes to the reader, in order.
		h.UnsubscribePull(stalled, nil)
		wantFrames(t, reader, "f-:1", "f-:3", "f-:5")
		mustPush(t, h, "t", "6", f, 1)
		wantFrames(t, reader, "f-:6")
		if _, held := h.PushTopics(); held != 0 {
			t.Fatalf("held %d after everything was written, want 0", held)
		}
	})
}
