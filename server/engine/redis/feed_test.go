package redis_test

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/msgbus/msgbus/server/engine/redis"
	"github.com/msgbus/msgbus/server/engine/redis/redistest"
	"github.com/msgbus/msgbus/server/history"
	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/message"
)

func newEngine(t *testing.T, url, prefix string, lim history.Limits) *redis.Engine {
	t.Helper()
	e, err := redis.New(redis.Config{URL: url, Prefix: prefix, Hub: hub.Config{MaxQueueBytes: 64 << 20}, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// bodyFormat encodes a message as its body.
type bodyFormat struct{}

func (bodyFormat) Encode(m *message.Message, located bool) []byte { return m.Body }
func (bodyFormat) End(error) []byte                               { return nil }

// collect takes s's frames until it has n or it ends.
func collect(t *testing.T, s *hub.Subscription, wake chan struct{}, n int) ([]string, error) {
	t.Helper()
	var out []string
	deadline := time.After(20 * time.Second)
	for len(out) < n {
		frames, err := s.Take(nil)
		for _, f := range frames {
			out = append(out, string(f))
		}
		if err != nil {
			return out, err
		}
		if len(frames) == 0 {
			select {
			case <-wake:
			case <-deadline:
				t.Fatalf("%d frames after 20s, want %d", len(out), n)
			}
		}
	}
	return out, nil
}

func subscribeBodies(t *testing.T, e *redis.Engine, channel string) (*hub.Subscription, chan struct{}) {
	t.Helper()
	wake := make(chan struct{}, 1)
	s, _, err := e.Subscribe(channel, hub.SubscribeOptions{Format: bodyFormat{}, Wake: func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Unsubscribe(s) })
	return s, wake
}

// A node whose Pub/Sub connection breaks mid-flood misses part of the feed;
// it fills the gap from history, so its subscriber misses nothing and
// keeps the order.
func TestBrokenFeedIsFilledFromHistory(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	prefix := redistest.Prefix(t)
	lim := history.Limits{Size: 100_000, TTL: time.Hour, MaxBytes: 1 << 30}
	pub := newEngine(t, rs.URL(), prefix, lim)
	node := newEngine(t, rs.URL(), prefix, lim)
	s, wake := subscribeBodies(t, node, "g")

	var (
		mu    sync.Mutex
		acked []int // published, answered without error
		stop  = make(chan struct{})
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := pub.Publish(&message.Message{Channel: "g/" + strconv.Itoa(i%3), Body: []byte(strconv.Itoa(i))}); err != nil {
				continue // the publisher's own connection may break too: not acked
			}
			mu.Lock()
			acked = append(acked, i)
			mu.Unlock()
		}
	}()
	// Break every Pub/Sub connection until a gap was seen (a reconnection
	// is quick: the flood must be running through one).
	for try := 0; ; try++ {
		if filled, _ := node.FeedGaps(); filled > 0 {
			break
		}
		if try == 200 {
			t.Fatal("no feed gap after 200 broken Pub/Sub connections")
		}
		if _, err := rs.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	<-done
	// Every acked message reached history; the subscriber gets it, in
	// order, once (with those whose answer a broken connection lost).
	last := acked[len(acked)-1]
	var got []int
	for len(got) == 0 || got[len(got)-1] < last {
		frames, err := collect(t, s, wake, 1)
		if err != nil {
			t.Fatalf("subscription ended: %v", err)
		}
		for _, f := range frames {
			v, _ := strconv.Atoi(f)
			if len(got) > 0 && v <= got[len(got)-1] {
				t.Fatalf("message %d after %d: out of order or twice", v, got[len(got)-1])
			}
			got = append(got, v)
		}
	}
	seen := map[int]bool{}
	for _, v := range got {
		seen[v] = true
	}
	for _, v := range acked {
		if !seen[v] {
			t.Fatalf("acked message %d never reached the subscriber", v)
		}
	}
	if _, lost := node.FeedGaps(); lost != 0 {
		t.Fatalf("%d gaps could not be filled", lost)
	}
}

// When history no longer has what the feed lost, the node ends its
// streams (ErrResync) so that their clients resume and are told.
func TestFeedGapBeyondHistoryEndsStreams(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	prefix := redistest.Prefix(t)
	node := newEngine(t, rs.URL(), prefix, history.Limits{}) // no history: nothing to fill from
	pub := newEngine(t, rs.URL(), prefix, history.Limits{})
	s, wake := subscribeBodies(t, node, "h")
	if _, err := pub.Publish(&message.Message{Channel: "h", Body: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	if got, err := collect(t, s, wake, 1); err != nil || got[0] != "first" {
		t.Fatalf("first message: %q, %v", got, err)
	}
	for try := 0; ; try++ {
		if _, lost := node.FeedGaps(); lost > 0 {
			break
		}
		if try == 200 {
			t.Fatal("no feed gap after 200 broken Pub/Sub connections")
		}
		rs.Do("CLIENT", "KILL", "TYPE", "pubsub")
		for range 20 {
			pub.Publish(&message.Message{Channel: "h", Body: []byte("x")})
		}
	}
	_, err := collect(t, s, wake, 1<<30)
	if err != hub.ErrResync {
		t.Fatalf("stream ended with %v, want ErrResync", err)
	}
}

// Redis that loses its data (a restart without persistence, a FLUSHALL)
// restarts the feed's sequence: nodes end their streams, so that clients
// resume and are told, and deliver what comes next.
func TestFeedSequenceGoingBackEndsStreamsAndDeliveryGoesOn(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	prefix := redistest.Prefix(t)
	lim := history.Limits{Size: 100, TTL: time.Hour, MaxBytes: 1 << 30}
	node := newEngine(t, rs.URL(), prefix, lim)
	pub := newEngine(t, rs.URL(), prefix, lim)
	s, wake := subscribeBodies(t, node, "r")
	for i := range 5 {
		if _, err := pub.Publish(&message.Message{Channel: "r", Body: []byte("before" + strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := collect(t, s, wake, 5); err != nil || len(got) != 5 {
		t.Fatalf("before the flush: %q, %v", got, err)
	}
	if _, err := rs.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	// Published on the node itself, it returns once the node delivered
	// it: the new subscriber below comes after it.
	if _, err := node.Publish(&message.Message{Channel: "r", Body: []byte("after0")}); err != nil {
		t.Fatal(err)
	}
	if _, err := collect(t, s, wake, 1<<30); err != hub.ErrResync {
		t.Fatalf("stream across a lost sequence ended with %v, want ErrResync", err)
	}
	s2, wake2 := subscribeBodies(t, node, "r")
	if p, err := pub.Publish(&message.Message{Channel: "r", Body: []byte("after1")}); err != nil || p.Reached != 0 {
		t.Fatalf("publish after the flush: %+v, %v", p, err)
	}
	if got, err := collect(t, s2, wake2, 1); err != nil || got[0] != "after1" {
		t.Fatalf("a new subscriber after the flush got %q, %v; want after1", got, err)
	}
}
