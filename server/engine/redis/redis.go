// Package redis is the engine that makes several msgbus nodes one bus
// (PROTOCOL.md §7): ids, order, history and idempotency keys live in
// Redis; each node fans out locally through its own hub.
//
// A publish is one Lua script (publish.lua): it gives the message the next
// id of the one id space, appends it to its channel's stream and indexes
// it in each ancestor's, trims history to its limits, and PUBLISHes it on
// one Pub/Sub channel that every node reads. Redis runs scripts one at a
// time, so the id order is the order of the feed, which every node
// delivers in, so all subscribers of a channel see one order. The feed
// carries a sequence number; a node that sees a gap (its connection
// broke) fills it from the streams, or, when history no longer has it,
// ends its streams so their clients resume and learn they missed some.
//
// Each node reads the whole feed (a node without subscribers still gets
// every message once): one Pub/Sub channel keeps the feed ordered and its
// gaps visible, which per-channel subscriptions would not.
//
// A push (/push/) waits in a Redis list per topic, within the backlog
// limits, and a notice on the feed tells the nodes; a node with a puller
// of that topic that has room takes it (LPOP) and hands it to its hub,
// which rotates among its local pullers. Each push goes to exactly one
// node, so to exactly one puller (see pushpull.go for the edge cases).
package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/msgbus/msgbus/server/engine"
	"github.com/msgbus/msgbus/server/history"
	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/message"
)

var (
	//go:embed common.lua
	commonLua string
	//go:embed publish.lua
	publishLua string
	//go:embed range.lua
	rangeLua string

	publishScript = rueidis.NewLuaScript(commonLua + publishLua)
	rangeScript   = rueidis.NewLuaScriptReadOnly(commonLua + rangeLua)
)

// Defaults.
const (
	DefaultPrefix  = "msgbus:"
	DefaultTimeout = 3 * time.Second
	DefaultKeyTTL  = 5 * time.Minute
)

// Config configures the engine.
type Config struct {
	// URL is redis://[user:pass@]host:port[/db] or rediss:// for TLS.
	URL string
	// Prefix starts every key and the feed's channel, so that several
	// buses (or tests) can share one Redis. Empty means DefaultPrefix.
	Prefix string
	Hub    hub.Config
	// Limits bound history; every node of a bus must use the same.
	Limits history.Limits
	KeyTTL time.Duration // idempotency keys; zero means DefaultKeyTTL
	// Timeout bounds each call to Redis: a publish is answered 503 within
	// it while Redis is unreachable. Zero means DefaultTimeout.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Engine is the Redis engine. Its methods are safe for concurrent use.
type Engine struct {
	hub     *hub.Hub
	rc      rueidis.Client // commands and scripts
	sub     rueidis.Client // the feed alone
	prefix  string
	lim     history.Limits
	keyTTL  time.Duration
	timeout time.Duration
	log     *slog.Logger
	node    string // names this node in the feed: its own publishes come back to it

	ctx    context.Context
	cancel context.CancelFunc
	feed   chan string   // the feed as received, for the deliverer
	done   chan struct{} // closed when receiver, deliverer and pinger returned
	wg     sync.WaitGroup

	health atomic.Pointer[error] // why Redis is unusable now; nil when it is fine
	errors atomic.Uint64         // calls that failed for want of Redis
	closed atomic.Bool

	hubCfg hub.Config
	work   chan string // topics that may have pushes to take
	pullMu sync.Mutex
	pulls  map[string]*pullTopic // topics with pullers here

	// A publisher waits for its own message to come back on the feed, so
	// that its subscribers on this node have it queued when it returns
	// and it can say how many they were.
	tokens  atomic.Uint64
	pending sync.Map // token -> *pending

	filledTo             atomic.Pointer[message.ID] // the newest id a catch-up delivered or found lost
	gapsFilled, gapsLost atomic.Uint64
	feedDropped          atomic.Uint64 // feed messages dropped for a full e.feed              // feed gaps filled from history; those that could not be

	sessionState

	// Owned by the deliverer.
	lastN  uint64
	lastID message.ID
}

// A pending publish: the deliverer sends how many local subscribers got it.
type pending struct {
	reached chan int
	except  *hub.Subscription
	id      atomic.Pointer[message.ID] // set once Redis answered
}

// signal tells p's publisher its message was delivered here to n
// subscribers; it never blocks.
func (p *pending) signal(n int) {
	select {
	case p.reached <- n:
	default:
	}
}

var _ engine.Engine = (*Engine)(nil)

// New connects to Redis and starts reading the feed. It fails when Redis
// cannot be reached at all; later outages are survived.
func New(cfg Config) (*Engine, error) {
	opt, err := rueidis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis URL %q: %w (want redis://[user:pass@]host:port[/db] or rediss://…)", cfg.URL, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	opt.DisableCache = true
	opt.Dialer.Timeout = cfg.Timeout
	opt.ConnWriteTimeout = cfg.Timeout
	rc, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", opt.InitAddress, err)
	}
	// The feed has a connection of its own: a single rueidis client sends
	// every command on the connection its Pub/Sub messages arrive on, so
	// a busy feed would hold up publishes, and a catch-up would wait on
	// the very connection the feed it is catching up fills.
	sub, err := rueidis.NewClient(opt)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("redis %s: %w", opt.InitAddress, err)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.KeyTTL <= 0 {
		cfg.KeyTTL = DefaultKeyTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		hub:     hub.New(cfg.Hub),
		rc:      rc,
		sub:     sub,
		prefix:  cfg.Prefix,
		lim:     cfg.Limits,
		keyTTL:  cfg.KeyTTL,
		timeout: cfg.Timeout,
		log:     cfg.Logger,
		node:    strconv.FormatUint(uint64(time.Now().UnixNano()), 36),
		ctx:     ctx,
		cancel:  cancel,
		feed:    make(chan string, 1<<16),
		work:    make(chan string, 1024),
		pulls:   make(map[string]*pullTopic),
		hubCfg:  cfg.Hub,
		done:    make(chan struct{}),
	}
	e.sessionOps = make(chan sessionOp, 4096)
	e.announced = make(map[string][]byte)
	// This node's liveness key exists before any of its sessions is
	// announced, so that no listing takes them for a dead node's.
	actx, acancel := context.WithTimeout(ctx, cfg.Timeout)
	err = e.rc.Do(actx, e.aliveCommand()).Error()
	acancel()
	if err != nil && !rueidis.IsRedisNil(err) {
		cancel()
		rc.Close()
		sub.Close()
		return nil, fmt.Errorf("redis %s: %w", opt.InitAddress, err)
	}
	ready := make(chan struct{})
	e.wg.Add(5)
	go e.writeSessions()
	go e.receive()
	go e.deliver(ready)
	go e.ping()
	go e.take()
	go func() { e.wg.Wait(); close(e.done) }()
	select {
	case <-ready:
	case <-time.After(cfg.Timeout):
		e.Close()
		return nil, fmt.Errorf("redis %s: subscribing to the feed took longer than %v", opt.InitAddress, cfg.Timeout)
	}
	return e, nil
}

// Hub returns the engine's hub.
func (e *Engine) Hub() *hub.Hub { return e.hub }

// callContext bounds one call to Redis.
func (e *Engine) callContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(e.ctx, e.timeout)
}

// unavailable wraps a Redis failure for the server (503 + Retry-After).
func unavailable(err error) error {
	return fmt.Errorf("%w: redis: %w", engine.ErrUnavailable, err)
}

func (e *Engine) setHealth(err error) {
	if _, ok := rueidis.IsRedisErr(err); ok {
		return // Redis answered: an error of the request, not of Redis
	}
	if err == nil {
		if e.health.Load() != nil {
			e.health.Store(nil)
		}
		return
	}
	e.errors.Add(1)
	if e.health.Load() == nil {
		e.log.Warn("redis unreachable", "err", err)
	}
	e.health.Store(&err)
}

// Publish implements engine.Engine.
func (e *Engine) Publish(m *message.Message) (engine.Published, error) {
	return e.publish("m", m, nil)
}

// PublishExact implements engine.Engine: the peer bus, across nodes,
// without history.
func (e *Engine) PublishExact(m *message.Message, except *hub.Subscription) (engine.Published, error) {
	return e.publish("b", m, except)
}

func (e *Engine) publish(mode string, m *message.Message, except *hub.Subscription) (engine.Published, error) {
	if e.closed.Load() {
		return engine.Published{}, hub.ErrClosed
	}
	token := strconv.FormatUint(e.tokens.Add(1), 36)
	p := &pending{reached: make(chan int, 1), except: except}
	e.pending.Store(token, p)
	defer e.pending.Delete(token)
	ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
	defer cancel()
	size := e.lim.Size
	if size < 0 {
		size = 0
	}
	r, err := publishScript.Exec(ctx, e.rc, nil, []string{
		e.prefix, mode, m.Channel, m.Type, m.Sender, m.Key, string(m.Body),
		strconv.Itoa(m.Size()), strconv.Itoa(size), strconv.FormatInt(e.lim.TTL.Milliseconds(), 10),
		strconv.FormatInt(e.lim.MaxBytes, 10), strconv.Itoa(max(1, int(e.keyTTL.Seconds()))),
		e.node + "/" + token,
	}).AsStrSlice()
	if err != nil {
		if e.closed.Load() {
			return engine.Published{}, hub.ErrClosed
		}
		e.setHealth(err)
		return engine.Published{}, unavailable(err)
	}
	e.setHealth(nil)
	if len(r) < 2 {
		return engine.Published{}, fmt.Errorf("redis publish script answered %q", r)
	}
	id, err := message.ParseID(r[1])
	if err != nil {
		return engine.Published{}, fmt.Errorf("redis publish script gave id %q: %w", r[1], err)
	}
	if r[0] == "dup" {
		return engine.Published{ID: id, Duplicate: true}, nil
	}
	m.ID, m.Time = id, time.UnixMilli(int64(id.Ms))
	p.id.Store(&id)
	if e.delivered(id) {
		p.signal(0) // filled from history before the id was known here
	}
	select {
	case n := <-p.reached:
		return engine.Published{ID: id, Reached: n}, nil
	case <-ctx.Done():
		// Redis holds it; the feed is late or broken (the gap is filled).
		return engine.Published{ID: id}, nil
	}
}

// Subscribe implements engine.Engine: the subscription is in the hub before
// history is read, so each message is either replayed or delivered live,
// and the hub drops the live copies of replayed ones.
func (e *Engine) Subscribe(channel string, opts hub.SubscribeOptions, resume *engine.Resume) (*hub.Subscription, engine.Resumed, error) {
	if resume == nil {
		s, err := e.hub.Subscribe(channel, opts)
		return s, engine.Resumed{Recovered: true}, err
	}
	opts.Held = true
	s, err := e.hub.Subscribe(channel, opts)
	if err != nil {
		return nil, engine.Resumed{}, err
	}
	r, err := e.replay(channel, opts.Filter, *resume)
	if err != nil {
		e.hub.Unsubscribe(s)
		return nil, engine.Resumed{}, err
	}
	s.Replay(r.Messages, resume.After)
	return s, engine.Resumed{Replayed: len(r.Messages), Recovered: r.Recovered}, nil
}

// Unsubscribe implements engine.Engine.
func (e *Engine) Unsubscribe(s *hub.Subscription) { e.hub.Unsubscribe(s) }

// Err implements engine.Engine.
func (e *Engine) Err() error {
	if e.closed.Load() {
		return hub.ErrClosed
	}
	if p := e.health.Load(); p != nil {
		return unavailable(*p)
	}
	return nil
}

// Stats implements engine.Engine. The history figures are the whole bus's,
// read from Redis; Channels is not counted there.
func (e *Engine) Stats() engine.Stats {
	st := engine.Stats{Stats: e.hub.Stats()}
	ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
	defer cancel()
	vs, err := e.rc.Do(ctx, e.rc.B().Mget().Key(e.prefix+"count", e.prefix+"bytes").Build()).ToArray()
	if err == nil && len(vs) == 2 {
		n, _ := vs[0].AsInt64()
		b, _ := vs[1].AsInt64()
		st.History = history.Stats{Messages: int(n), Bytes: b}
	}
	return st
}

// delivered reports whether a catch-up has delivered id already, or found
// it lost.
func (e *Engine) delivered(id message.ID) bool {
	f := e.filledTo.Load()
	return f != nil && !f.Less(id)
}

// FeedGaps returns how many gaps in the feed (a broken Pub/Sub
// connection) were filled from history, and how many could not be and
// ended this node's streams.
// RedisErrors returns how many calls failed for want of Redis.
func (e *Engine) RedisErrors() uint64 { return e.errors.Load() }

func (e *Engine) FeedGaps() (filled, lost uint64) { return e.gapsFilled.Load(), e.gapsLost.Load() }

// Close implements engine.Engine: subscribers first, then the feed and
// the connection.
func (e *Engine) Close() error {
	if e.closed.Swap(true) {
		<-e.done
		return nil
	}
	e.hub.Close()
	e.leave()
	e.cancel()
	e.rc.Close()
	e.sub.Close()
	<-e.done
	return nil
}

// receive reads the feed into e.feed until Close, subscribing again after
// a broken connection.
func (e *Engine) receive() {
	defer e.wg.Done()
	defer close(e.feed)
	live, ctl := e.prefix+"live", e.prefix+"ctl"
	cmd := e.sub.B().Subscribe().Channel(live, ctl).Build()
	ctx := rueidis.WithOnSubscriptionHook(e.ctx, func(s rueidis.PubSubSubscription) {
		if s.Kind == "subscribe" && s.Channel == live {
			select { // the hook must not block: a lost marker leaves the next message to find the gap
			case e.feed <- resubscribed:
			default:
			}
		}
	})
	backoff := 50 * time.Millisecond
	for e.ctx.Err() == nil {
		// Receive returns only when the subscription fails or ctx ends:
		// rueidis subscribes again by itself after a reconnection.
		err := e.sub.Receive(ctx, cmd, func(msg rueidis.PubSubMessage) {
			// Never block the connection's reader: a message dropped
			// here is a gap the next one shows and history fills.
			m := msg.Message
			if msg.Channel == ctl {
				m = commandMark + m // in the feed's order: a bind goes before what is published after it
			}
			select {
			case e.feed <- m:
			default:
				e.feedDropped.Add(1)
			}
		})
		if e.ctx.Err() != nil {
			return
		}
		if err != nil {
			e.setHealth(err)
		}
		select {
		case <-time.After(backoff):
		case <-e.ctx.Done():
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// ping checks Redis every second, so that Err (and /readyz) knows it is
// down before a publish fails, and back up before one succeeds. Its
// command also keeps this node's liveness key (sessions.go).
func (e *Engine) ping() {
	defer e.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
		err := e.rc.Do(ctx, e.aliveCommand()).Error()
		cancel()
		if e.ctx.Err() != nil {
			return
		}
		if rueidis.IsRedisNil(err) {
			// This node's key had gone (new, or Redis lost it, or an
			// outage outlasted it, so other nodes dropped our sessions).
			e.queueSessionOp(sessionOp{}) // announce them all again
			err = nil
		}
		e.setHealth(err)
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// A feedMessage is one message of the feed.
type feedMessage struct {
	kind   byte // 'm' history message, 'b' peer bus
	n      uint64
	origin string // "<node>/<token>"
	m      *message.Message
}

var errBadFeed = errors.New("malformed feed message")

// parseFeed parses "<kind> <id> <n> <origin>\n<channel>\n<type>\n<sender>\n<body>".
func parseFeed(s string) (feedMessage, error) {
	var f feedMessage
	head, rest, ok := strings.Cut(s, "\n")
	fields := strings.Split(head, " ")
	if !ok || len(fields) != 4 || len(fields[0]) != 1 || !strings.Contains("mbw", fields[0]) {
		return f, errBadFeed
	}
	id, err := message.ParseID(fields[1])
	if err != nil {
		return f, errBadFeed
	}
	if f.n, err = strconv.ParseUint(fields[2], 10, 64); err != nil {
		return f, errBadFeed
	}
	f.kind, f.origin = fields[0][0], fields[3]
	parts := strings.SplitN(rest, "\n", 4)
	if len(parts) != 4 {
		return f, errBadFeed
	}
	f.m = &message.Message{
		ID: id, Time: time.UnixMilli(int64(id.Ms)),
		Channel: parts[0], Type: parts[1], Sender: parts[2], Body: []byte(parts[3]),
	}
	return f, nil
}

// resubscribed is the feed's marker for "the subscription to the feed was
// (re)made": messages may have been published meanwhile.
const resubscribed = ""

// deliver hands the feed to the hub, one message at a time, in the feed's
// order, filling gaps from history. The first marker sets where the node
// starts; each later one (a new connection) makes it catch up.
func (e *Engine) deliver(ready chan<- struct{}) {
	defer e.wg.Done()
	started := false
	for s := range e.feed {
		if s == resubscribed {
			if !started {
				started = e.start()
				if started {
					close(ready)
				}
				continue
			}
			e.catchUp(0, message.ID{})
			continue
		}
		if cmd, ok := strings.CutPrefix(s, commandMark); ok {
			e.runCommand(cmd)
			continue
		}
		if !started {
			continue // published before this node started
		}
		f, err := parseFeed(s)
		if err != nil {
			e.log.Error("redis feed", "err", err, "message", s[:min(len(s), 80)])
			continue
		}
		var p *pending
		if node, token, ok := strings.Cut(f.origin, "/"); ok && node == e.node {
			if v, ok := e.pending.Load(token); ok {
				p = v.(*pending)
			}
		}
		var n int
		switch f.kind {
		case 'b':
			var except *hub.Subscription
			if p != nil {
				except = p.except
			}
			n, _ = e.hub.PublishExact(f.m, nil, except)
		case 'w':
			e.wakeTaker(f.m.Channel)
			continue
		case 'm':
			if f.n <= e.lastN {
				if !e.lastID.Less(f.m.ID) {
					if p != nil {
						p.signal(0) // a catch-up delivered it
					}
					continue
				}
				// A newer id with an older number: Redis lost its
				// counter (restarted without persistence, flushed,
				// failed over). What this node delivered no longer
				// matches Redis's history: streams resume from it.
				e.gapsLost.Add(1)
				ended := e.hub.EndAll(hub.ErrResync)
				e.log.Warn("redis feed: its sequence went back (Redis lost data?); streams ended to resume",
					"was", e.lastN, "now", f.n, "streams", ended)
				e.lastN = f.n - 1
			}
			if f.n > e.lastN+1 {
				e.catchUp(f.n, f.m.ID)
			}
			n, _ = e.hub.Publish(f.m, nil)
			e.lastN, e.lastID = f.n, f.m.ID
		}
		if p != nil {
			p.signal(n)
		}
	}
}

// feedNow reads the feed's sequence number and the newest id now.
func (e *Engine) feedNow() (view, error) {
	return e.scanStored("", "asc", message.ID{}, false, 0, func(stored) bool { return false })
}

// start reads where the feed is now: the node delivers what comes after.
func (e *Engine) start() bool {
	v, err := e.feedNow()
	if err != nil {
		e.log.Warn("redis feed: reading where it is", "err", err)
		return false
	}
	e.lastN, e.lastID = v.seq, v.last
	return true
}

// catchUp delivers from history the messages the feed lost: those after
// the last one delivered, up to sequence number until, the first the feed
// brought (0: up to the newest now, after a new feed connection). When
// history no longer has them all, every stream on this node ends so that
// its client resumes and learns what it missed.
func (e *Engine) catchUp(until uint64, untilID message.ID) {
	from := e.lastN
	delivered, missing := 0, false
	var err error
	for attempt := 0; attempt < 3 && e.ctx.Err() == nil; attempt++ {
		if until == 0 {
			// Bound the catch-up by the sequence now: later messages
			// come on the new connection.
			var v view
			if v, err = e.feedNow(); err != nil {
				continue
			}
			if v.seq <= e.lastN {
				return // nothing missed (or the counter went back: the next message says so)
			}
			until, untilID = v.seq+1, v.last
			untilID.Seq++ // just after the newest: before() below gives v.last
		}
		_, err = e.scanStored("", "asc", e.lastID, true, scanBatch, func(s stored) bool {
			if s.seq >= until {
				return false
			}
			if s.seq <= e.lastN {
				return true
			}
			if s.seq > e.lastN+1 {
				missing = true // evicted before it could be filled
			}
			e.hub.Publish(s.m, nil)
			e.lastN, e.lastID = s.seq, s.m.ID
			delivered++
			return true
		})
		if err == nil {
			break
		}
	}
	if err != nil && e.ctx.Err() != nil {
		return // closing
	}
	if e.lastN < until-1 {
		missing = true // not in history any more, or Redis failed thrice
		e.lastN = until - 1
	}
	// Everything before untilID was delivered or is lost: publishers of
	// this node waiting for the echo of such a message stop waiting.
	handled := before(untilID)
	if f := e.filledTo.Load(); f == nil || f.Less(handled) {
		e.filledTo.Store(&handled)
	}
	e.pending.Range(func(_, v any) bool {
		if id := v.(*pending).id.Load(); id != nil && e.delivered(*id) {
			v.(*pending).signal(0)
		}
		return true
	})
	if !missing {
		if delivered > 0 {
			e.gapsFilled.Add(1)
			e.log.Info("redis feed: gap filled from history", "messages", delivered)
		}
		return
	}
	e.gapsLost.Add(1)
	ended := e.hub.EndAll(hub.ErrResync)
	e.log.Warn("redis feed: messages lost beyond history; streams ended to resume",
		"from", from, "to", e.lastN, "filled", delivered, "streams", ended, "err", err)
}

// before returns the id just before id.
func before(id message.ID) message.ID {
	if id.Seq > 0 {
		return message.ID{Ms: id.Ms, Seq: id.Seq - 1}
	}
	return message.ID{Ms: id.Ms - 1, Seq: math.MaxUint64}
}
