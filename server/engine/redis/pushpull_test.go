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

// A puller that takes its frames as a writer would, into got.
type puller struct {
	s    *hub.Subscription
	wake chan struct{}
}

func pull(t *testing.T, e *redis.Engine, topic string) *puller {
	t.Helper()
	p := &puller{wake: make(chan struct{}, 1)}
	s, err := e.SubscribePull(topic, hub.SubscribeOptions{Format: bodyFormat{}, Wake: func() {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	p.s = s
	t.Cleanup(func() { e.UnsubscribePull(s, nil) })
	return p
}

// run takes frames into got until stop.
func (p *puller) run(stop <-chan struct{}, mu *sync.Mutex, got map[string]int, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		frames, err := p.s.Take(nil)
		if err != nil {
			return
		}
		mu.Lock()
		for _, f := range frames {
			got[string(f)]++
		}
		mu.Unlock()
		if len(frames) == 0 {
			select {
			case <-p.wake:
			case <-stop:
				return
			}
		}
	}
}

func TestEveryPushReachesExactlyOnePullerOnAnyNode(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	prefix := redistest.Prefix(t)
	a := newEngine(t, rs.URL(), prefix, history.Limits{})
	b := newEngine(t, rs.URL(), prefix, history.Limits{})
	pusher := newEngine(t, rs.URL(), prefix, history.Limits{})

	// Pushed before any puller: they wait in Redis.
	const early, n = 50, 600
	for i := range early {
		if _, err := pusher.Push(&message.Message{Channel: "jobs", Body: []byte(strconv.Itoa(i))}, bodyFormat{}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		got  = map[string]int{}
		wg   sync.WaitGroup
		stop = make(chan struct{})
	)
	pullers := []*puller{pull(t, a, "jobs"), pull(t, a, "jobs"), pull(t, b, "jobs")}
	for _, p := range pullers {
		wg.Add(1)
		go p.run(stop, &mu, got, &wg)
	}
	for i := early; i < n; i++ {
		if _, err := pusher.Push(&message.Message{Channel: "jobs", Body: []byte(strconv.Itoa(i))}, bodyFormat{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		k := len(got)
		mu.Unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d pushes reached a puller", k, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for body, c := range got {
		if c != 1 {
			t.Fatalf("push %s reached %d pullers", body, c)
		}
	}
	if sa, sb := a.Stats().Published, b.Stats().Published; sa == 0 || sb == 0 {
		t.Fatalf("node a took %d pushes, node b %d: want both", sa, sb)
	}
}

func TestPushBacklogLimitsHoldInRedis(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	e, err := redis.New(redis.Config{URL: rs.URL(), Prefix: redistest.Prefix(t), Hub: hub.Config{MaxBacklogMessages: 5}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i := range 5 {
		if _, err := e.Push(&message.Message{Channel: "q", Body: []byte{byte(i)}}, bodyFormat{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Push(&message.Message{Channel: "q", Body: []byte("6th")}, bodyFormat{}); err != hub.ErrBacklogFull {
		t.Fatalf("push past the backlog limit: %v, want ErrBacklogFull", err)
	}
}
