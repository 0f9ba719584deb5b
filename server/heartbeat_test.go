package server

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/wire"
)

// The heartbeat's timing, on the fake clock of a synctest bubble: exact,
// and as quick under -race on a loaded machine as anywhere. The end-to-end
// tests in sse_test.go check the bytes on a real socket.
func TestHeartbeatComesEveryIntervalUntilStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hub.New(hub.Config{})
		f, _ := wire.SSE(true, false)
		sub, err := h.Subscribe("quiet", hub.SubscribeOptions{Format: f, Wake: func() {}})
		if err != nil {
			t.Fatal(err)
		}
		beats := func() int {
			t.Helper()
			synctest.Wait()
			bufs, err := sub.Take(nil)
			if err != nil {
				t.Fatalf("Take: %v", err)
			}
			for _, b := range bufs {
				if string(b) != string(wire.Heartbeat(f)) {
					t.Fatalf("queued %q, want only heartbeats", b)
				}
			}
			return len(bufs)
		}
		beat := startHeartbeat(f, sub)
		time.Sleep(sseHeartbeat - time.Millisecond)
		if n := beats(); n != 0 {
			t.Fatalf("%d heartbeats before the interval, want 0", n)
		}
		time.Sleep(time.Millisecond)
		if n := beats(); n != 1 {
			t.Fatalf("%d heartbeats after one interval, want 1", n)
		}
		time.Sleep(3 * sseHeartbeat)
		if n := beats(); n != 3 {
			t.Fatalf("%d heartbeats after three more intervals, want 3", n)
		}
		beat.stop()
		time.Sleep(10 * sseHeartbeat)
		if n := beats(); n != 0 {
			t.Fatalf("%d heartbeats after stop, want 0", n)
		}
		h.Unsubscribe(sub)
	})
}

func TestHeartbeatStopsWhenTheSubscriptionEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hub.New(hub.Config{})
		f, _ := wire.SSE(false, false)
		sub, err := h.Subscribe("gone", hub.SubscribeOptions{Format: f, Wake: func() {}})
		if err != nil {
			t.Fatal(err)
		}
		startHeartbeat(f, sub) // never stopped: the ended subscription ends it
		h.Unsubscribe(sub)
		time.Sleep(10 * sseHeartbeat)
		synctest.Wait() // the bubble would not end with a timer still re-arming
	})
}

func TestFormatsWithoutHeartbeatStartNone(t *testing.T) {
	f, _ := wire.Multipart(true)
	if startHeartbeat(f, nil) != nil {
		t.Error("a multipart stream got a heartbeat")
	}
}
