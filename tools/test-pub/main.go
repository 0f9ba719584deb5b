// Command test-pub floods a msgbus channel with stamped messages, at a
// target rate or as fast as it can, and reports what it sent. Each message
// starts with a stamp (run, worker, sequence, send time) that test-sub
// checks for loss, duplicates, reordering and latency.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/msgbus/msgbus/client"
	"github.com/msgbus/msgbus/tools/internal/load"
	"github.com/msgbus/msgbus/tools/internal/msgfmt"
	"github.com/msgbus/msgbus/tools/internal/toolflags"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "test-pub:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:      "test-pub",
		Usage:     "flood a msgbus channel with stamped messages (the load generator for test-sub)",
		UsageText: "test-pub [-c CHANNEL] [-t TYPE] [-n COUNT] [-d DURATION] [-r RATE] [--size BYTES] [-P PUBLISHERS] [--json] [-u URL]",
		Description: "Publishes until -n messages are sent, -d has passed or Ctrl-C, then prints a summary on stdout\n" +
			"(one JSON object with --json); the live progress line and errors go to stderr.\n" +
			"Each of the -P publishers numbers its messages from 0, so test-sub can check their order.\n\n" +
			"   test-sub -N 100 -n 10000 &\n" +
			"   test-pub -n 10000 -P 4\n" +
			"   test-pub -c flood -r 1000 -d 30s --size 1024",
		HideHelpCommand: true,
		Flags: toolflags.Shared{
			Channel: "publish to `CHANNEL`", ChannelValue: "flood",
			Type: "the messages' media `TYPE`", TypeValue: "text/plain",
			Count: "send `N` messages in all (0: until -d or Ctrl-C)",
			JSON:  "print the summary as one JSON object on stdout, for machines",
		}.Flags(
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "stop after `DURATION` (0: until -n or Ctrl-C)"},
			&cli.Float64Flag{Name: "rate", Aliases: []string{"r"}, Usage: "send `N` messages a second in all (0: as fast as possible)"},
			&cli.IntFlag{Name: "size", Value: 128, Usage: "make each message `BYTES` long (at least the stamp, about 70)"},
			&cli.IntFlag{Name: "publishers", Aliases: []string{"P"}, Value: 1, Usage: "publish from `N` connections in parallel"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no live progress line"},
		),
		Action: run,
	}
}

// A pub is a test-pub run.
type pub struct {
	cl                   *client.Client
	channel, typ         string
	count, size, workers int
	rate                 float64
	run                  uint64

	claimed, sent, errs, reached atomic.Int64
	lat                          load.Histogram
	errMu                        sync.Mutex
	firstErr                     error
}

type summary struct {
	Channel      string       `json:"channel"`
	Sent         int64        `json:"sent"`
	Errors       int64        `json:"errors"`
	Publishers   int          `json:"publishers"`
	Size         int          `json:"size"`
	ElapsedS     float64      `json:"elapsed_s"`
	PerSecond    float64      `json:"per_second"`
	Reached      int64        `json:"reached"`
	PublishMilli latencyMilli `json:"publish_latency_ms"`
	FirstError   string       `json:"first_error,omitempty"`
}

type latencyMilli struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func milli(s load.Summary) latencyMilli {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return latencyMilli{ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max)}
}

func run(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see test-pub --help", c.Args().First())
	}
	p := &pub{
		channel: c.String("channel"), typ: c.String("type"),
		count: c.Int("count"), size: c.Int("size"), workers: c.Int("publishers"),
		rate: c.Float64("rate"), run: rand.Uint64(),
	}
	if p.workers < 1 {
		return errors.New("-P must be at least 1")
	}
	cl, err := toolflags.Client(c, client.Config{MaxIdleConns: p.workers})
	if err != nil {
		return err
	}
	defer cl.Close()
	p.cl = cl
	ctx, stop := toolflags.SignalContext()
	defer stop()
	if d := c.Duration("duration"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}

	start := time.Now()
	var wg sync.WaitGroup
	for w := range p.workers {
		wg.Go(func() { p.work(ctx, uint32(w), start) })
	}
	done := make(chan struct{})
	if !c.Bool("quiet") && toolflags.IsTerminal(os.Stderr) {
		go p.progress(start, done)
	}
	wg.Wait()
	close(done)
	elapsed := time.Since(start)

	s := summary{
		Channel: p.channel, Sent: p.sent.Load(), Errors: p.errs.Load(), Publishers: p.workers, Size: p.size,
		ElapsedS: elapsed.Seconds(), Reached: p.reached.Load(), PublishMilli: milli(p.lat.Summary()),
	}
	s.PerSecond = float64(s.Sent) / elapsed.Seconds()
	if p.firstErr != nil {
		s.FirstError = p.firstErr.Error()
	}
	if c.Bool("json") {
		json.NewEncoder(os.Stdout).Encode(s)
	} else {
		fmt.Printf("test-pub: sent %s of %s to %s in %.2fs (%.0f/s) from %s; %s\n"+
			"test-pub: publish latency p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms; %s queued\n",
			msgfmt.Count(int(s.Sent), "message"), msgfmt.Count(s.Size, "byte"), s.Channel, s.ElapsedS, s.PerSecond,
			msgfmt.Count(s.Publishers, "publisher"), msgfmt.Count(int(s.Errors), "error"),
			s.PublishMilli.P50, s.PublishMilli.P90, s.PublishMilli.P99, s.PublishMilli.Max,
			msgfmt.Count(int(s.Reached), "delivery"))
	}
	if s.Errors > 0 {
		return fmt.Errorf("%s failed; the first: %v", msgfmt.Count(int(s.Errors), "publish"), p.firstErr)
	}
	return nil
}

// work publishes from one worker until the count is claimed or ctx ends.
// The client retries a publish by itself (a lost answer, a 503), with one
// Idempotency-Key, so the server publishes it once. When it still fails,
// a publish that surely did not reach the server (refused, or the
// connection could not be made) is tried again (after a pause) under the
// same sequence number; any other counts as sent, since it may have been
// delivered. Ten failures in a row end the worker, and so does one
// refused token or right (401, 403), which no retry changes.
func (p *pub) work(ctx context.Context, w uint32, start time.Time) {
	var interval time.Duration
	if p.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(p.workers) / p.rate)
	}
	buf := make([]byte, 0, max(p.size, load.StampLen))
	var seq uint64
	for i, failures := 0, 0; ctx.Err() == nil && failures < 10; i++ {
		if p.count > 0 && p.claimed.Add(1) > int64(p.count) {
			return
		}
		if interval > 0 {
			next := start.Add(time.Duration(i)*interval + time.Duration(w)*interval/time.Duration(p.workers))
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
		}
		t0 := time.Now()
		buf = load.Append(buf[:0], load.Stamp{Run: p.run, Worker: w, Seq: seq, Sent: t0.UnixNano()}, p.size)
		res, err := p.cl.Publish(ctx, p.channel, p.typ, buf)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.fail(err)
			if errors.Is(err, client.ErrUnauthorized) || errors.Is(err, client.ErrForbidden) {
				return
			}
			failures++
			if notPublished(err) {
				p.claimed.Add(-1) // send it again
			} else {
				seq++
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		failures = 0
		p.lat.Record(int(w), time.Since(t0))
		seq++
		p.sent.Add(1)
		p.reached.Add(int64(res.Subscribers))
	}
}

// notPublished reports whether a failed publish surely did not publish:
// the server refused it, or no connection to it could be made.
func notPublished(err error) bool {
	var se *client.StatusError
	var ne *net.OpError
	return errors.As(err, &se) || errors.As(err, &ne) && ne.Op == "dial"
}

func (p *pub) fail(err error) {
	p.errs.Add(1)
	p.errMu.Lock()
	if p.firstErr == nil {
		p.firstErr = err
		fmt.Fprintf(os.Stderr, "\ntest-pub: %v\n", err)
	}
	p.errMu.Unlock()
}

// progress draws a live line on the terminal every second.
func (p *pub) progress(start time.Time, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, lastT := int64(0), start
	for {
		select {
		case <-done:
			fmt.Fprint(os.Stderr, "\r\033[K")
			return
		case now := <-t.C:
			n := p.sent.Load()
			fmt.Fprintf(os.Stderr, "\r\033[Ktest-pub: %d sent, %.0f/s, %d errors",
				n, float64(n-last)/now.Sub(lastT).Seconds(), p.errs.Load())
			last, lastT = n, now
		}
	}
}
