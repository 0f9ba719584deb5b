package hub

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/msgbus/msgbus/server/message"
)

// TestBindDeliversOnceAlongTheShallowestPath binds a subscriber of "a" to
// more channels and checks what reaches it: bound channels' messages marked
// with their channel, each message once whichever paths cover it, nothing
// after Unbind.
func TestBindDeliversOnceAlongTheShallowestPath(t *testing.T) {
	h := newTestHub(Config{})
	f := &testFormat{name: "f"}
	s := subscribe(t, h, "a", f, nil)
	for _, ch := range []string{"@alice", "x", "x/y", "a/b"} {
		if ok, err := h.Bind(s.Subscription, ch); !ok || err != nil {
			t.Fatalf("Bind(%q) = %v, %v", ch, ok, err)
		}
	}
	if ok, _ := h.Bind(s.Subscription, "x"); ok {
		t.Fatal("binding x twice reported a new binding")
	}
	if ok, _ := h.Bind(s.Subscription, "a"); ok {
		t.Fatal("binding the subscription's own channel reported a new binding")
	}
	if got, want := s.Channels(), []string{"a", "@alice", "x", "x/y", "a/b"}; !slices.Equal(got, want) {
		t.Fatalf("Channels() = %q, want %q", got, want)
	}
	publish := func(ch, body string) {
		t.Helper()
		if _, err := h.Publish(&message.Message{Channel: ch, Body: []byte(body)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	publish("a/b", "1")    // own channel covers it: once, unmarked as usual for a child
	publish("@alice", "2") // the personal address
	publish("x/y/z", "3")  // x and x/y cover it: once, along x
	publish("other", "4")  // not bound
	publish("a", "5")      // own channel
	h.Unbind(s.Subscription, "x")
	publish("x/q", "6") // x unbound, x/y does not cover it
	publish("x/y", "7") // x/y still bound
	got, _ := drain(t, s)
	want := []string{"f@a/b:1", "f@@alice:2", "f@x/y/z:3", "f-:5", "f@x/y:7"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if h.Stats().Subscribers != 1 {
		t.Fatalf("bindings counted as subscribers: %d", h.Stats().Subscribers)
	}
	h.Unsubscribe(s.Subscription)
	if st := h.Stats(); st.Channels != 0 || st.Subscribers != 0 {
		t.Fatalf("after Unsubscribe: %+v, want no channels left", st)
	}
	if _, err := h.Bind(s.Subscription, "late"); err != ErrNotBound {
		t.Fatalf("Bind after Unsubscribe: %v, want ErrNotBound", err)
	}
	if st := h.Stats(); st.Channels != 0 {
		t.Fatalf("Bind after Unsubscribe left a channel: %+v", st)
	}
}

// TestEndClosesWithTheFormatsEnd ends a subscription as a logout does.
func TestEndClosesWithTheFormatsEnd(t *testing.T) {
	h := newTestHub(Config{})
	s := subscribe(t, h, "a", &testFormat{name: "f"}, nil)
	h.Bind(s.Subscription, "@bob")
	h.End(s.Subscription, ErrSessionEnded)
	h.Publish(&message.Message{Channel: "@bob", Body: []byte("late")}, nil)
	if _, err := drain(t, s); err != ErrSessionEnded {
		t.Fatalf("ended with %v, want ErrSessionEnded", err)
	}
	h.Unsubscribe(s.Subscription)
	if h.Stats().Channels != 0 {
		t.Fatal("a binding outlived its subscription")
	}
}

// TestBindWhilePublishing binds and unbinds while messages flow to both
// channels: no message reaches the subscriber twice, and every message of
// its own channel reaches it (run it with -race).
func TestBindWhilePublishing(t *testing.T) {
	h := newTestHub(Config{MaxQueueBytes: 1 << 30})
	s := subscribe(t, h, "a", &testFormat{name: "f"}, nil)
	const n = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			h.Publish(&message.Message{Channel: "a", Body: []byte("a" + strconv.Itoa(i))}, nil)
			h.Publish(&message.Message{Channel: "x/y", Body: []byte("x" + strconv.Itoa(i))}, nil)
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-done:
			got, _ := drain(t, s)
			seen := map[string]bool{}
			own := 0
			for _, f := range got {
				if seen[f] {
					t.Fatalf("%q delivered twice", f)
				}
				seen[f] = true
				if strings.HasPrefix(f, "f-:a") {
					own++
				}
			}
			if own != n {
				t.Fatalf("got %d of the subscriber's own %d messages", own, n)
			}
			h.Unsubscribe(s.Subscription)
			if st := h.Stats(); st.Channels != 0 {
				t.Fatalf("channels left after Unsubscribe: %+v", st)
			}
			return
		default:
		}
		if i%2 == 0 {
			h.Bind(s.Subscription, "x")
			h.Bind(s.Subscription, "x/y")
		} else {
			h.Unbind(s.Subscription, "x")
			h.Unbind(s.Subscription, "x/y")
		}
	}
}
