package hub

import (
	"github.com/msgbus/msgbus/server/message"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/msgbus/msgbus/multipart"
)

// partFormat frames a message as the server's HTTP/1.1 stream does: one
// multipart part in one chunk, built with a single allocation.
type partFormat struct{}

func (partFormat) Encode(m *message.Message, located bool) []byte {
	h := multipart.Header{From: m.Sender, ContentType: m.Type}
	if located {
		h.ContentLocation = "/msgbus/" + m.Channel
	}
	n := multipart.PartLen(multipart.Boundary, h, len(m.Body))
	b := make([]byte, 0, 16+2+n+2)
	b = strconv.AppendUint(b, uint64(n), 16)
	b = append(b, "\r\n"...)
	b = multipart.AppendPart(b, multipart.Boundary, h, m.Body)
	return append(b, "\r\n"...)
}

func (partFormat) End(error) []byte { return []byte("0\r\n\r\n") }

const drainEvery = 16

var benchBody = make([]byte, 100)

// benchSub is a subscriber whose writer alternates two buffers, as the
// server's does, so that taking allocates nothing.
type benchSub struct {
	s     *Subscription
	spare [][]byte
}

func (b *benchSub) take() int {
	frames, _ := b.s.Take(b.spare)
	clear(frames)
	b.spare = frames[:0]
	return len(frames)
}

// fanOutHub subscribes n subscribers to channel and primes their queues
// with room for drainEvery frames.
func fanOutHub(tb testing.TB, n int, channel string) (*Hub, []*benchSub) {
	tb.Helper()
	h := newTestHub(Config{MaxQueueBytes: 1 << 30})
	subs := make([]*benchSub, n)
	for i := range subs {
		s, err := h.Subscribe(channel, SubscribeOptions{Format: partFormat{}, Wake: func() {}})
		if err != nil {
			tb.Fatal(err)
		}
		subs[i] = &benchSub{s: s, spare: make([][]byte, 0, 2*drainEvery)}
	}
	// One message, taken, swaps each spare in as the queue; then each
	// writer gets a second buffer, so queues never grow during the run.
	pub(h, newBenchMessage(channel))
	for _, s := range subs {
		s.take()
		s.spare = make([][]byte, 0, 2*drainEvery)
	}
	return h, subs
}

func newBenchMessage(channel string) *message.Message {
	return &message.Message{Channel: channel, Type: "text/plain; charset=utf-8", Sender: "bench", Body: benchBody}
}

var subscriberCounts = []int{1, 100, 1000, 10000}

// BenchmarkFanOut: one op is one Publish of a 100-byte body to one channel
// with n subscribers. The subscribers' writers take their queues every 64
// publishes; that cost is included, as it is part of every delivery.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range subscriberCounts {
		b.Run("subs="+strconv.Itoa(n), func(b *testing.B) {
			h, subs := fanOutHub(b, n, "bench")
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if got := pub(h, newBenchMessage("bench")); got != n {
					b.Fatalf("Publish reached %d, want %d", got, n)
				}
				if i%drainEvery == drainEvery-1 {
					for _, s := range subs {
						s.take()
					}
				}
			}
			b.StopTimer()
			reportDeliveries(b, n)
		})
	}
}

func reportDeliveries(b *testing.B, subs int) {
	deliveries := float64(b.N) * float64(subs)
	b.ReportMetric(deliveries/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
}

// BenchmarkFanOutParallel: publishers on every P spread over 4 channels of
// 100 subscribers each, while one writer goroutine per channel takes the
// queues as the wakes come in.
func BenchmarkFanOutParallel(b *testing.B) {
	const (
		nChannels = 4
		perChan   = 100
	)
	h := newTestHub(Config{MaxQueueBytes: 1 << 30})
	channels := make([]string, nChannels)
	var writers sync.WaitGroup
	stop := make(chan struct{})
	for c := range channels {
		channels[c] = "bench/" + strconv.Itoa(c)
		wake := make(chan struct{}, 1)
		subs := make([]*benchSub, perChan)
		for i := range subs {
			s, err := h.Subscribe(channels[c], SubscribeOptions{Format: partFormat{}, Wake: func() {
				select {
				case wake <- struct{}{}:
				default:
				}
			}})
			if err != nil {
				b.Fatal(err)
			}
			subs[i] = &benchSub{s: s, spare: make([][]byte, 0, 256)}
		}
		pub(h, newBenchMessage(channels[c])) // prime the queues, as in fanOutHub
		for _, s := range subs {
			s.take()
			s.spare = make([][]byte, 0, 256)
		}
		writers.Add(1)
		go func() {
			defer writers.Done()
			for {
				for _, s := range subs {
					for s.take() > 0 { // until empty, which arms the wake
					}
				}
				select {
				case <-wake:
				case <-stop:
					return
				}
			}
		}()
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ch := channels[next.Add(1)%nChannels]
		for pb.Next() {
			if got := pub(h, newBenchMessage(ch)); got != perChan {
				b.Errorf("Publish reached %d, want %d", got, perChan)
				return
			}
		}
	})
	b.StopTimer()
	close(stop)
	writers.Wait()
	reportDeliveries(b, perChan)
}

// TestFanOutAllocatesNothingPerSubscriber: a publish allocates the same for
// 10 subscribers as for 1000 (the Message and its one frame), since every
// subscriber shares the frame and queues into reused storage.
func TestFanOutAllocatesNothingPerSubscriber(t *testing.T) {
	allocs := func(n int) float64 {
		h, subs := fanOutHub(t, n, "a/b")
		i := 0
		got := testing.AllocsPerRun(drainEvery-2, func() {
			pub(h, newBenchMessage("a/b"))
			if i++; i%drainEvery == 0 {
				for _, s := range subs {
					s.take()
				}
			}
		})
		return got
	}
	few, many := allocs(10), allocs(1000)
	if few != many {
		t.Fatalf("a publish allocates %v times for 10 subscribers and %v for 1000", few, many)
	}
	// The message, its frame, the message's frame list, and the digits
	// multipart.PartLen formats to count them.
	if few > 4 {
		t.Fatalf("a publish allocates %v times, want at most 4", few)
	}
	t.Logf("%v allocations per publish", few)
}

// TestFilteredFanOutFoldsTheTypeOncePerMessage: a ?type= filter must not
// cost an allocation per subscriber, even for a type with capitals
// ("charset=UTF-8" is common).
func TestFilteredFanOutFoldsTheTypeOncePerMessage(t *testing.T) {
	h := New(Config{MaxQueueBytes: 1 << 30})
	var subs []*Subscription
	for range 100 {
		s, err := h.Subscribe("c", SubscribeOptions{Format: partFormat{}, Filter: message.NewFilter("text/*", ""), Wake: func() {}})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	for _, typ := range []string{"text/plain; charset=utf-8", "text/plain; charset=UTF-8"} {
		spare := make([][]byte, 0, 256)
		allocs := testing.AllocsPerRun(50, func() {
			pub(h, &message.Message{Channel: "c", Type: typ, Body: benchBody})
			for _, s := range subs {
				spare, _ = s.Take(spare)
				spare = spare[:0]
			}
		})
		if allocs > 5 {
			t.Errorf("type %q: %.0f allocations per message to 100 filtered subscribers, want a few per message", typ, allocs)
		}
	}
}
