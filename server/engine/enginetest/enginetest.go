// Package enginetest is the conformance suite every engine.Engine passes:
// the behaviour of PROTOCOL.md §6 that does not depend on HTTP (ids, order,
// resume, history paging, idempotency), checked through the engine's own
// interface. An engine's test calls Run with a function that makes a fresh
// engine with the given history limits.
package enginetest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgbus/msgbus/server/engine"
	"github.com/msgbus/msgbus/server/history"
	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/message"
)

// A Factory makes a fresh, empty engine with history limits lim; the
// suite closes it.
type Factory func(t *testing.T, lim history.Limits) engine.Engine

// Run runs the suite.
func Run(t *testing.T, newEngine Factory) {
	tests := []struct {
		name string
		run  func(*testing.T, Factory)
	}{
		{"IDsIncreaseAlongEverySubscription", testIDsIncrease},
		{"ConcurrentPublishersKeepIDOrder", testConcurrentOrder},
		{"ResumeAtEveryPointGivesTheTail", testResumeEveryPoint},
		{"ResumeWhilePublishingHasNoGapNoDuplicate", testResumeWhilePublishing},
		{"LastN", testLastN},
		{"RecoveredForUnknownAndEvictedIDs", testRecovered},
		{"EvictionsElsewhereDoNotUnrecoverAChannel", testRecoveredQuietChannel},
		{"PagingAtTheExtremeIDs", testPagingExtremes},
		{"ResumeMaxKeepsTheNewest", testResumeMax},
		{"PagingWithFiltersAndHierarchy", testPaging},
		{"IdempotencyKey", testIdempotency},
		{"OneCopyPerMessage", testOneCopy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newEngine) })
	}
}

func open(t *testing.T, f Factory, lim history.Limits) engine.Engine {
	e := f(t, lim)
	t.Cleanup(func() { e.Close() })
	return e
}

func bigLimits() history.Limits {
	return history.Limits{Size: 100_000, TTL: time.Hour, MaxBytes: 1 << 30}
}

// idFormat encodes a message as "<id> <channel> <body>".
type idFormat struct{}

func (idFormat) Encode(m *message.Message, located bool) []byte {
	return []byte(m.ID.String() + " " + m.Channel + " " + string(m.Body))
}
func (idFormat) End(error) []byte { return nil }

// got is one received message.
type got struct {
	id            message.ID
	channel, body string
}

// sub is a subscription and its taker.
type sub struct {
	e    engine.Engine
	s    *hub.Subscription
	wake chan struct{}
	buf  [][]byte
}

func subscribe(t *testing.T, e engine.Engine, channel string, filter *message.Filter, r *engine.Resume) (*sub, engine.Resumed) {
	t.Helper()
	ts := &sub{e: e, wake: make(chan struct{}, 1)}
	s, res, err := e.Subscribe(channel, hub.SubscribeOptions{
		Format: idFormat{}, Filter: filter,
		Wake: func() {
			select {
			case ts.wake <- struct{}{}:
			default:
			}
		},
	}, r)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", channel, err)
	}
	if r != nil {
		s.Start(nil)
	}
	ts.s = s
	t.Cleanup(func() { e.Unsubscribe(s) })
	return ts, res
}

// take returns what is queued now, without waiting.
func (ts *sub) take(t *testing.T) []got {
	t.Helper()
	var out []got
	for {
		frames, err := ts.s.Take(ts.buf)
		if err != nil {
			t.Fatalf("Take: %v", err)
		}
		if len(frames) == 0 {
			return out
		}
		for _, f := range frames {
			out = append(out, parse(t, string(f)))
		}
		ts.buf = frames[:0]
	}
}

// wait takes until it has n messages, or fails after a deadline.
func (ts *sub) wait(t *testing.T, n int) []got {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var out []got
	for {
		out = append(out, ts.take(t)...)
		if len(out) >= n {
			return out
		}
		select {
		case <-ts.wake:
		case <-deadline:
			t.Fatalf("got %d messages, want %d", len(out), n)
		}
	}
}

func parse(t *testing.T, f string) got {
	parts := strings.SplitN(f, " ", 3)
	if len(parts) != 3 {
		t.Fatalf("bad frame %q", f)
	}
	id, err := message.ParseID(parts[0])
	if err != nil {
		t.Fatalf("frame %q: %v", f, err)
	}
	return got{id, parts[1], parts[2]}
}

func publish(t *testing.T, e engine.Engine, channel, body string) message.ID {
	t.Helper()
	p, err := e.Publish(&message.Message{Channel: channel, Type: "text/plain", Body: []byte(body)})
	if err != nil {
		t.Fatalf("Publish(%q): %v", channel, err)
	}
	return p.ID
}

func increasing(t *testing.T, what string, gs []got) {
	t.Helper()
	for i := 1; i < len(gs); i++ {
		if !gs[i-1].id.Less(gs[i].id) {
			t.Fatalf("%s: id %v after %v", what, gs[i].id, gs[i-1].id)
		}
	}
}

func testIDsIncrease(t *testing.T, f Factory) {
	e := open(t, f, bigLimits())
	root, _ := subscribe(t, e, "", nil, nil)
	a, _ := subscribe(t, e, "a", nil, nil)
	chans := []string{"a", "a/b", "c", "a/b/c", "d/e"}
	var ids []message.ID
	for i := range 100 {
		ids = append(ids, publish(t, e, chans[i%len(chans)], strconv.Itoa(i)))
	}
	for i := 1; i < len(ids); i++ {
		if !ids[i-1].Less(ids[i]) {
			t.Fatalf("publish %d: id %v after %v", i, ids[i], ids[i-1])
		}
	}
	increasing(t, "root", root.wait(t, 100))
	increasing(t, "a", a.wait(t, 60))
}

func testConcurrentOrder(t *testing.T, f Factory) {
	e := open(t, f, bigLimits())
	const pubs, each = 4, 250
	var subs []*sub
	for _, ch := range []string{"", "x", "x/y", "x/y"} {
		s, _ := subscribe(t, e, ch, nil, nil)
		subs = append(subs, s)
	}
	var wg sync.WaitGroup
	for p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ch := "x/y"
				if i%3 == 0 {
					ch = "x"
				}
				if _, err := e.Publish(&message.Message{Channel: ch, Body: fmt.Appendf(nil, "%d-%d", p, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var first []got
	for i, s := range subs {
		n := pubs * each
		if i >= 2 {
			n = pubs * (each - (each+2)/3)
		}
		gs := s.wait(t, n)
		increasing(t, "subscriber "+strconv.Itoa(i), gs)
		if i == 2 {
			first = gs
		}
		if i == 3 && fmt.Sprint(gs) != fmt.Sprint(first) {
			t.Fatal("two subscribers of x/y got different sequences")
		}
	}
}

func testResumeEveryPoint(t *testing.T, f Factory) {
	e := open(t, f, bigLimits())
	const n = 2000
	ids := make([]message.ID, n)
	for i := range n {
		ids[i] = publish(t, e, "r/"+strconv.Itoa(i%3), strconv.Itoa(i))
	}
	for k := 0; k < n; k += 37 {
		s, res := subscribe(t, e, "r", nil, &engine.Resume{After: ids[k], Since: true})
		if !res.Recovered || res.Replayed != n-1-k {
			t.Fatalf("resume after #%d: replayed %d, recovered %v; want %d, true", k, res.Replayed, res.Recovered, n-1-k)
		}
		gs := s.wait(t, n-1-k)
		for j, g := range gs {
			if g.id != ids[k+1+j] || g.body != strconv.Itoa(k+1+j) {
				t.Fatalf("resume after #%d: message %d is %v %q, want %v %q", k, j, g.id, g.body, ids[k+1+j], strconv.Itoa(k+1+j))
			}
		}
		e.Unsubscribe(s.s)
	}
}

func testResumeWhilePublishing(t *testing.T, f Factory) {
	e := open(t, f, bigLimits())
	const n = 3000
	var (
		mu  sync.Mutex
		ids []message.ID
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			p, err := e.Publish(&message.Message{Channel: "w/" + strconv.Itoa(i%2), Body: []byte(strconv.Itoa(i))})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids = append(ids, p.ID)
			mu.Unlock()
		}
	}()
	var resumers []*sub
	var from []int
	for len(resumers) < 20 {
		mu.Lock()
		k := len(ids) - 1
		var after message.ID
		if k >= 0 {
			after = ids[k]
		}
		mu.Unlock()
		// Before any publish has returned, one may be kept already (a
		// durable store answers after its commit): replay everything.
		s, res := subscribe(t, e, "w", nil, &engine.Resume{After: after, Since: k >= 0, Last: n})
		if k >= 0 && !res.Recovered {
			t.Fatalf("resume after #%d: not recovered", k)
		}
		resumers = append(resumers, s)
		from = append(from, k+1)
	}
	<-done
	for i, s := range resumers {
		gs := s.wait(t, n-from[i])
		if len(gs) != n-from[i] {
			t.Fatalf("resumer %d: %d messages, want %d", i, len(gs), n-from[i])
		}
		for j, g := range gs {
			if g.body != strconv.Itoa(from[i]+j) {
				t.Fatalf("resumer %d from #%d: message %d is %q: a gap or a duplicate", i, from[i], j, g.body)
			}
		}
	}
}

func testLastN(t *testing.T, f Factory) {
	e := open(t, f, bigLimits())
	for i := range 30 {
		publish(t, e, "l/"+strconv.Itoa(i%2), strconv.Itoa(i))
	}
	s, res := subscribe(t, e, "l/1", nil, &engine.Resume{Last: 5})
	if res.Replayed != 5 {
		t.Fatalf("last 5 of l/1: replayed %d", res.Replayed)
	}
	publish(t, e, "l/1", "live")
	gs := s.wait(t, 6)
	var bodies []string
	for _, g := range gs {
		bodies = append(bodies, g.body)
	}
	if want := "21 23 25 27 29 live"; strings.Join(bodies, " ") != want {
		t.Fatalf("last 5 then live: %q, want %q", strings.Join(bodies, " "), want)
	}
	s2, res := subscribe(t, e, "", message.NewFilter("", ""), &engine.Resume{Last: 100})
	if res.Replayed != 31 {
		t.Fatalf("last 100 of the root: replayed %d, want 31", res.Replayed)
	}
	increasing(t, "root", s2.wait(t, 31))
}

func testRecovered(t *testing.T, f Factory) {
	e := open(t, f, history.Limits{Size: 10, TTL: time.Hour, MaxBytes: 1 << 30})
	var ids []message.ID
	for i := range 25 {
		ids = append(ids, publish(t, e, "v", strconv.Itoa(i)))
	}
	for _, tc := range []struct {
		name      string
		after     message.ID
		recovered bool
		replayed  int
	}{
		{"retained", ids[20], true, 4},
		{"the newest", ids[24], true, 0},
		{"evicted", ids[5], false, 10},
		{"just before the oldest retained", ids[14], true, 10},
		{"unknown, from the future", message.ID{Ms: ids[24].Ms + 1e9}, false, 0},
	} {
		_, res := subscribe(t, e, "v", nil, &engine.Resume{After: tc.after, Since: true})
		if res.Recovered != tc.recovered || res.Replayed != tc.replayed {
			t.Errorf("%s: recovered %v, replayed %d; want %v, %d", tc.name, res.Recovered, res.Replayed, tc.recovered, tc.replayed)
		}
	}
}

func testResumeMax(t *testing.T, f Factory) {
	e := open(t, f, bigLimits())
	var ids []message.ID
	for i := range 50 {
		ids = append(ids, publish(t, e, "m", strconv.Itoa(i)))
	}
	s, res := subscribe(t, e, "m", nil, &engine.Resume{After: ids[9], Since: true, Max: 10})
	if res.Recovered || res.Replayed != 10 {
		t.Fatalf("resume past the max: recovered %v, replayed %d; want false, 10", res.Recovered, res.Replayed)
	}
	if gs := s.wait(t, 10); gs[0].body != "40" || gs[9].body != "49" {
		t.Fatalf("resume past the max replayed %q to %q, want the newest, 40 to 49", gs[0].body, gs[9].body)
	}
}

func testPaging(t *testing.T, f Factory) {
	e := open(t, f, bigLimits())
	var ids []message.ID
	for i := range 40 {
		ch := []string{"p", "p/q", "p/q/r", "other"}[i%4]
		typ := "text/plain"
		if i%8 == 1 {
			typ = "application/json"
		}
		m := &message.Message{Channel: ch, Type: typ, Body: []byte(strconv.Itoa(i))}
		p, err := e.Publish(m)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	bodies := func(p history.Page) string {
		var out []string
		for _, m := range p.Messages {
			out = append(out, string(m.Body))
		}
		return strings.Join(out, " ") + fmt.Sprintf(" more=%v", p.More)
	}
	page := func(ch string, filter *message.Filter, q history.PageQuery) string {
		p, err := e.History(ch, filter, q)
		if err != nil {
			t.Fatal(err)
		}
		return bodies(p)
	}
	for _, tc := range []struct {
		name, ch string
		filter   *message.Filter
		q        history.PageQuery
		want     string
	}{
		{"newest of p/q", "p/q", nil, history.PageQuery{Limit: 4}, "33 34 37 38 more=true"},
		{"before, of p/q", "p/q", nil, history.PageQuery{Before: ids[33], HasBefore: true, Limit: 4}, "25 26 29 30 more=true"},
		{"after, of p/q", "p/q", nil, history.PageQuery{After: ids[30], HasAfter: true, Limit: 3}, "33 34 37 more=true"},
		{"after, the end", "p/q", nil, history.PageQuery{After: ids[34], HasAfter: true, Limit: 3}, "37 38 more=false"},
		{"the oldest", "p/q/r", nil, history.PageQuery{Before: ids[10], HasBefore: true, Limit: 5}, "2 6 more=false"},
		{"root with a type filter", "", message.NewFilter("application/json", ""), history.PageQuery{Limit: 10}, "1 9 17 25 33 more=false"},
		{"unknown channel", "nope", nil, history.PageQuery{Limit: 10}, " more=false"},
	} {
		if got := page(tc.ch, tc.filter, tc.q); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func testIdempotency(t *testing.T, f Factory) {
	e := open(t, f, bigLimits())
	s, _ := subscribe(t, e, "k", nil, nil)
	first, err := e.Publish(&message.Message{Channel: "k", Body: []byte("once"), Key: "abc"})
	if err != nil || first.Duplicate {
		t.Fatalf("first publish: %+v, %v", first, err)
	}
	again, err := e.Publish(&message.Message{Channel: "k", Body: []byte("once"), Key: "abc"})
	if err != nil || !again.Duplicate || again.ID != first.ID {
		t.Fatalf("retry: %+v, %v; want a duplicate with id %v", again, err, first.ID)
	}
	other, err := e.Publish(&message.Message{Channel: "k/other", Body: []byte("x"), Key: "abc"})
	if err != nil || other.Duplicate {
		t.Fatalf("same key on another channel: %+v, %v; want published", other, err)
	}
	publish(t, e, "k", "after")
	gs := s.wait(t, 3)
	if len(gs) != 3 || gs[0].body != "once" || gs[1].body != "x" || gs[2].body != "after" {
		t.Fatalf("subscriber got %v, want once, x, after", gs)
	}
}

func testOneCopy(t *testing.T, f Factory) {
	e := open(t, f, bigLimits())
	body := strings.Repeat("z", 10000)
	publish(t, e, "o/p/q/r/s", body)
	st := e.Stats().History
	if st.Messages != 1 || st.Bytes > 2*int64(len(body)) {
		t.Fatalf("one message on a five-level channel: history holds %d messages, %d bytes", st.Messages, st.Bytes)
	}
}

// A channel that lost nothing resumes recovered, however much other
// channels had evicted.
func testRecoveredQuietChannel(t *testing.T, f Factory) {
	e := open(t, f, history.Limits{Size: 2, TTL: time.Hour, MaxBytes: 1 << 30})
	a1 := publish(t, e, "quiet", "a1")
	for i := range 3 {
		publish(t, e, "busy", "b"+strconv.Itoa(i))
	}
	if _, res := subscribe(t, e, "quiet", nil, &engine.Resume{After: a1, Since: true}); !res.Recovered {
		t.Fatal("resume of a channel that lost nothing: not recovered")
	}
	if _, res := subscribe(t, e, "busy", nil, &engine.Resume{After: a1, Since: true}); res.Recovered {
		t.Fatal("resume of a channel that lost a message after the id: recovered")
	}
}

// Paging before the zero id or after the last possible one is an empty
// page, not an error, and leaves the engine usable.
func testPagingExtremes(t *testing.T, f Factory) {
	e := open(t, f, bigLimits())
	publish(t, e, "x", "1")
	last := message.ID{Ms: math.MaxUint64, Seq: math.MaxUint64}
	for _, q := range []history.PageQuery{
		{Before: message.ID{}, HasBefore: true, Limit: 10},
		{After: last, HasAfter: true, Limit: 10},
	} {
		p, err := e.History("x", nil, q)
		if err != nil || len(p.Messages) != 0 {
			t.Fatalf("page %+v: %d messages, %v; want none, no error", q, len(p.Messages), err)
		}
	}
	if err := e.Err(); err != nil {
		t.Fatalf("after paging at the extremes: %v", err)
	}
}
