// Command test-sub holds many subscriptions to a msgbus channel and checks
// what test-pub sends: deliveries, loss, duplicates and reordering from the
// stamps' sequence numbers, and latency from their send times.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	bad, err := run(os.Args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test-sub:", err)
		os.Exit(1)
	}
	if bad {
		os.Exit(2)
	}
}

func newApp(action cli.ActionFunc) *cli.App {
	return &cli.App{
		Name:      "test-sub",
		Usage:     "hold N subscriptions and check test-pub's messages (the load benchmark's receiver)",
		UsageText: "test-sub [-c CHANNEL] [-t TYPES] [-N SUBSCRIBERS] [-n COUNT] [-d DURATION] [--idle DURATION] [--check-ids] [--json] [-u URL]",
		Description: "Subscribes -N times, then counts every delivery until each subscriber has -n distinct messages,\n" +
			"-d has passed, nothing arrived for --idle, or Ctrl-C. Reports deliveries/s (first to last delivery),\n" +
			"latency percentiles (send to receipt), and messages lost, duplicated and reordered per subscriber.\n" +
			"The report goes to stdout (one JSON object with --json); progress and errors go to stderr.\n" +
			"A subscription whose stream breaks (a server restart, a network failure) reconnects and resumes after\n" +
			"the last message it received, so what the server retained meanwhile is not lost. --check-ids also\n" +
			"checks that every message carries its id (Msgbus-Id) and counts the reconnects after which the server\n" +
			"could not promise that nothing was missing (Msgbus-Recovered: false); the sequence numbers say whether\n" +
			"something was. Exits 2 when any was lost, duplicated or reordered, or with --check-ids had no id.\n\n" +
			"   test-sub -N 100 -n 10000 --json &\n" +
			"   test-pub -n 10000\n" +
			"   test-sub -c flood -N 1000 -d 30s",
		HideHelpCommand: true,
		Flags: toolflags.Shared{
			Channel: "subscribe to `CHANNEL`", ChannelValue: "flood",
			Type:  "only messages whose type matches `PATTERNS` (the server filters; default: every type)",
			Count: "stop once every subscriber has `N` distinct messages; fewer counts as lost (0: no target)",
			JSON:  "print the report as one JSON object on stdout, for machines",
		}.Flags(
			&cli.IntFlag{Name: "subscribers", Aliases: []string{"N"}, Value: 1, Usage: "hold `N` subscriptions, each on its own connection"},
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "stop after `DURATION` (0: no limit)"},
			&cli.DurationFlag{Name: "idle", Usage: "stop when nothing arrived for `DURATION` after the first message (0: no limit)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no live progress line"},
			&cli.BoolFlag{Name: "check-ids", Usage: "require an id on every message; report reconnects that were not recovered"},
		),
		Action: action,
	}
}

// A subscriber is one subscription's counters. Its goroutine alone writes
// the Tracker; the atomics are copies the reporter may read meanwhile.
type subscriber struct {
	sub       *client.Subscription
	tr        load.Tracker
	delivered atomic.Uint64
	dup, reo  atomic.Uint64
	distinct  atomic.Uint64
	missing   atomic.Uint64
	foreign   atomic.Uint64
	withoutID atomic.Uint64 // load messages without an id
	first     atomic.Int64  // unix ns of the first and last delivery
	last      atomic.Int64
}

type subRun struct {
	count      int
	subs       []*subscriber
	lat        load.Histogram
	reconnects atomic.Int64
	// resumed counts streams back after a break, unrecovered those after
	// which the server could not replay everything (Msgbus-Recovered: false).
	resumed, unrecovered atomic.Int64
}

type report struct {
	Channel     string       `json:"channel"`
	Subscribers int          `json:"subscribers"`
	Delivered   uint64       `json:"delivered"`
	Lost        uint64       `json:"lost"`
	Duplicated  uint64       `json:"duplicated"`
	Reordered   uint64       `json:"reordered"`
	Foreign     uint64       `json:"foreign"`
	Reconnects  int64        `json:"reconnects"`
	ElapsedS    float64      `json:"elapsed_s"`
	PerSecond   float64      `json:"deliveries_per_second"`
	Latency     latencyMilli `json:"latency_ms"`
	IDs         *idReport    `json:"ids,omitempty"` // with --check-ids
}

// idReport is what --check-ids adds to the report.
type idReport struct {
	WithoutID   uint64 `json:"without_id"`  // load messages that carried no id
	Resumed     int64  `json:"resumed"`     // streams that came back after a break
	Unrecovered int64  `json:"unrecovered"` // of those, with Msgbus-Recovered: false
}

type latencyMilli struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func run(args []string) (bad bool, err error) {
	err = newApp(func(c *cli.Context) error {
		if c.NArg() > 0 {
			return fmt.Errorf("unexpected argument %q; see test-sub --help", c.Args().First())
		}
		r, e := subscribeAll(c)
		if e != nil {
			return e
		}
		rep := r.report(c.String("channel"), c.Bool("check-ids"))
		if c.Bool("json") {
			json.NewEncoder(os.Stdout).Encode(rep)
		} else {
			fmt.Printf("test-sub: %s on %s: %s in %.2fs (%.0f/s); "+
				"lost %d, duplicated %d, reordered %d, other messages %d, reconnects %d\n"+
				"test-sub: latency p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms\n",
				msgfmt.Count(rep.Subscribers, "subscriber"), rep.Channel, msgfmt.Count(int(rep.Delivered), "delivery"),
				rep.ElapsedS, rep.PerSecond,
				rep.Lost, rep.Duplicated, rep.Reordered, rep.Foreign, rep.Reconnects,
				rep.Latency.P50, rep.Latency.P90, rep.Latency.P99, rep.Latency.Max)
			if ids := rep.IDs; ids != nil {
				fmt.Printf("test-sub: ids: %s without an id; %d of %s not recovered\n",
					msgfmt.Count(int(ids.WithoutID), "message"), ids.Unrecovered, msgfmt.Count(int(ids.Resumed), "resumed stream"))
			}
		}
		bad = rep.Lost+rep.Duplicated+rep.Reordered > 0 || rep.IDs != nil && rep.IDs.WithoutID > 0
		return nil
	}).Run(args)
	return bad, err
}

// subscribeAll subscribes, receives until a stop condition, and returns
// the counters.
func subscribeAll(c *cli.Context) (*subRun, error) {
	n := c.Int("subscribers")
	if n < 1 {
		return nil, fmt.Errorf("-N must be at least 1")
	}
	r := &subRun{count: c.Int("count"), subs: make([]*subscriber, n)}
	cl, err := toolflags.Client(c, client.Config{MaxIdleConns: 1})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, stop := toolflags.SignalContext()
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Connect in parallel, a bounded number at a time.
	opts := &client.SubscribeOptions{
		Type:        c.String(toolflags.TypeName),
		ReuseBody:   true,
		OnReconnect: func(error, time.Duration) { r.reconnects.Add(1) },
		OnReconnected: func(rc client.Reconnected) {
			r.resumed.Add(1)
			if !rc.Recovered {
				r.unrecovered.Add(1)
			}
		},
	}
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
		sem   = make(chan struct{}, 64)
	)
	for i := range r.subs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			sub, err := cl.Subscribe(ctx, c.String("channel"), opts)
			if err != nil {
				errMu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				errMu.Unlock()
				return
			}
			r.subs[i] = &subscriber{sub: sub}
		})
	}
	wg.Wait()
	if first != nil {
		for _, s := range r.subs {
			if s != nil {
				s.sub.Close()
			}
		}
		return nil, fmt.Errorf("subscription failed: %w", first)
	}
	progress := !c.Bool("quiet") && toolflags.IsTerminal(os.Stderr)
	if progress || !c.Bool("json") {
		fmt.Fprintf(os.Stderr, "test-sub: %s on %s\n", msgfmt.Count(n, "subscriber"), c.String("channel"))
	}

	if d := c.Duration("duration"); d > 0 {
		time.AfterFunc(d, cancel)
	}
	var recv sync.WaitGroup
	for i, s := range r.subs {
		recv.Go(func() { r.receive(i, s) })
	}
	allDone := make(chan struct{})
	go func() { recv.Wait(); close(allDone) }()
	r.watch(ctx, allDone, c.Duration("idle"), progress)
	cancel()
	<-allDone
	return r, nil
}

// receive counts one subscription's messages until it ends or has its
// count. It allocates nothing per message.
func (r *subRun) receive(i int, s *subscriber) {
	defer s.sub.Close()
	for {
		// The subscription's own context ends it; Next need not time out.
		m, err := s.sub.Next(context.Background())
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, client.ErrClosed) {
				fmt.Fprintf(os.Stderr, "test-sub: subscription %d ended: %v\n", i, err)
			}
			return
		}
		now := time.Now()
		st, ok := load.Parse(m.Body)
		if !ok {
			s.foreign.Add(1)
			continue
		}
		if s.tr.Add(st) {
			r.lat.Record(i, st.Latency(now))
		}
		if m.ID == "" {
			s.withoutID.Add(1)
		}
		ns := now.UnixNano()
		s.first.CompareAndSwap(0, ns)
		s.last.Store(ns)
		s.delivered.Add(1)
		s.dup.Store(s.tr.Duplicated)
		s.reo.Store(s.tr.Reordered)
		s.missing.Store(s.tr.Missing)
		s.distinct.Store(s.tr.Distinct)
		if r.count > 0 && s.tr.Distinct >= uint64(r.count) {
			return
		}
	}
}

// watch waits for the end, drawing a progress line once a second when
// asked, and ends the run after idle without deliveries.
func (r *subRun) watch(ctx context.Context, allDone <-chan struct{}, idle time.Duration, progress bool) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastN uint64
	lastChange, lastDraw := time.Now(), time.Now()
	var drawnN uint64
	defer func() {
		if progress {
			fmt.Fprint(os.Stderr, "\r\033[K")
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-allDone:
			return
		case now := <-tick.C:
			n := r.delivered()
			if n != lastN {
				lastN, lastChange = n, now
			}
			if idle > 0 && n > 0 && now.Sub(lastChange) >= idle {
				return
			}
			if progress && now.Sub(lastDraw) >= time.Second {
				l := r.lat.Summary()
				fmt.Fprintf(os.Stderr, "\r\033[Ktest-sub: %d delivered, %.0f/s, p50 %v p99 %v, %d reconnects",
					n, float64(n-drawnN)/now.Sub(lastDraw).Seconds(), l.P50.Round(time.Microsecond),
					l.P99.Round(time.Microsecond), r.reconnects.Load())
				drawnN, lastDraw = n, now
			}
		}
	}
}

func (r *subRun) delivered() uint64 {
	var n uint64
	for _, s := range r.subs {
		n += s.delivered.Load()
	}
	return n
}

func (r *subRun) report(channel string, checkIDs bool) report {
	rep := report{Channel: channel, Subscribers: len(r.subs), Reconnects: r.reconnects.Load()}
	if checkIDs {
		rep.IDs = &idReport{Resumed: r.resumed.Load(), Unrecovered: r.unrecovered.Load()}
		for _, s := range r.subs {
			rep.IDs.WithoutID += s.withoutID.Load()
		}
	}
	for _, s := range r.subs {
		rep.Delivered += s.delivered.Load()
		rep.Duplicated += s.dup.Load()
		rep.Reordered += s.reo.Load()
		rep.Foreign += s.foreign.Load()
		lost := s.missing.Load()
		if d := s.distinct.Load(); r.count > 0 && uint64(r.count) > d {
			lost = max(lost, uint64(r.count)-d)
		}
		rep.Lost += lost
	}
	var first, last int64
	for _, s := range r.subs {
		if f := s.first.Load(); f != 0 && (first == 0 || f < first) {
			first = f
		}
		last = max(last, s.last.Load())
	}
	if last > first {
		rep.ElapsedS = time.Duration(last - first).Seconds()
		rep.PerSecond = float64(rep.Delivered) / rep.ElapsedS
	}
	l := r.lat.Summary()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	rep.Latency = latencyMilli{ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max)}
	return rep
}
