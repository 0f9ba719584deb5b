// Package server is msgbus's HTTP front end on fasthttp: it routes the msgbus
// protocol (publish, multipart streams), checks auth, serves an optional
// static web root and TLS, and adapts each subscriber's socket to the hub.
//
// Its rooms, imports flowing down the list: server/wire (the bytes of each
// wire format), server/flush (writing subscribers' queues to their
// sockets), server/engine (ordering, history and delivery behind one
// interface), server/hub (the local index and fan-out, push/pull
// included), server/history (the stores), server/message (the shared
// vocabulary). server/bustest is the harness the tests share.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/msgbus/msgbus/server/engine"
	"github.com/msgbus/msgbus/server/engine/local"
	"github.com/msgbus/msgbus/server/engine/redis"
	"github.com/msgbus/msgbus/server/flush"
	"github.com/msgbus/msgbus/server/history"
	"github.com/msgbus/msgbus/server/hub"
	"github.com/msgbus/msgbus/server/token"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxMessageBytes = 1 << 20
	DefaultMaxHeaderBytes  = 8 << 10
	DefaultMaxConnections  = 100_000
)

// Config configures a Server. The zero Config serves the bus over plain HTTP
// with the defaults below.
type Config struct {
	// MaxMessageBytes caps a published body; larger is 413. Zero means
	// DefaultMaxMessageBytes (1 MiB).
	MaxMessageBytes int
	// MaxQueueBytes caps a subscriber's queue. Zero means
	// hub.DefaultMaxQueueBytes (1 MiB).
	MaxQueueBytes int
	// MaxSubscribers caps live subscriptions; more is 503. Zero: no limit.
	MaxSubscribers int
	// MaxHeaderBytes caps a request's header; larger is 431. Zero means
	// DefaultMaxHeaderBytes (8 KiB).
	MaxHeaderBytes int
	// Secret, when set, makes every request need HTTP Basic auth with this
	// password; the user name becomes the From of what it publishes.
	Secret string
	// WebRoot, when set, is a folder served at every path outside the bus.
	WebRoot string
	// ExampleApp serves the example app at / (development mode) when no
	// WebRoot is given.
	ExampleApp bool
	// TLSCertFile and TLSKeyFile, when both set, make the server speak HTTPS.
	TLSCertFile, TLSKeyFile string
	// AllowOrigins, when not empty, restricts which web pages may use the
	// bus: a WebSocket handshake or a POST to /bus/, /pub/ or /push/ needs
	// an Origin matching one of these patterns, and a /msgbus/ request that
	// carries an Origin must match too (PROTOCOL.md §4).
	AllowOrigins []string
	// MaxBacklogMessages and MaxBacklogBytes cap what a push/pull topic
	// holds while no puller takes it. Zero means the hub's defaults (1000
	// messages, 16 MiB).
	MaxBacklogMessages, MaxBacklogBytes int
	// MaxBacklogTotalBytes caps what all push/pull topics hold together.
	// Zero means hub.DefaultMaxBacklogTotalBytes (64 MiB).
	MaxBacklogTotalBytes int
	// PullerStall is how long a puller may hold pushes its client does not
	// read before, at the backlog limits, it is dropped. Zero means
	// hub.DefaultPullerStall (10 s).
	PullerStall time.Duration
	// MaxConnections caps open client connections (streams, WebSockets,
	// keep-alive publishers); more are answered 503 and closed. Zero means
	// DefaultMaxConnections (100,000); negative, no limit.
	MaxConnections int
	// HistorySize is how many messages of each channel history keeps
	// (PROTOCOL.md §6). Zero means history.DefaultSize (100); negative
	// turns history off.
	HistorySize int
	// HistoryTTL is the oldest a retained message may be. Zero means
	// history.DefaultTTL (1 h).
	HistoryTTL time.Duration
	// HistoryMaxBytes caps all retained messages together. Zero means
	// history.DefaultMaxBytes (64 MiB).
	HistoryMaxBytes int64
	// ResumeMax caps the messages one resume replays. Zero means
	// DefaultResumeMax (1000).
	ResumeMax int
	// Store, when set, is a folder for the durable history store: a 204
	// then means the message is on disk. Empty keeps history in memory.
	Store string
	// Redis, when set, is a redis:// or rediss:// URL: every node started
	// with the same Redis is one bus (PROTOCOL.md §7), with ids, order,
	// history and idempotency keys in Redis. It excludes Store.
	Redis string
	// TokenSecret, when set, turns tokens on (PROTOCOL.md §8): HS256 JWTs
	// signed with it are accepted, and the admin listener mints them.
	TokenSecret string
	// TokenKey, when set, is a PEM file holding a public key (RSA, ECDSA
	// P-256 or Ed25519): RS256, ES256 or EdDSA JWTs it verifies are
	// accepted, and tokens are on.
	TokenKey string
	// AnonymousPublish and AnonymousSubscribe are the channel pattern
	// lists (PROTOCOL.md §2) a request without a token may publish to and
	// subscribe to once tokens are on. Empty: none.
	AnonymousPublish, AnonymousSubscribe []string
	// AdminListen is the host:port of the admin listener (PROTOCOL.md §9):
	// /livez, /readyz, /metrics. Empty means none. The msgbus command
	// listens there and hands the listener to ServeAdmin.
	AdminListen string
	// AdminAllow lists the networks (CIDRs; an entry may hold several,
	// comma-separated) whose addresses the admin listener serves; others
	// get 403. Empty means DefaultAdminAllow (127.0.0.0/8 and ::1/128).
	AdminAllow []string
	// AdminToken, when set, makes the admin listener also require
	// "Authorization: Bearer <AdminToken>"; without it, 401.
	AdminToken string
	// Logger receives the server's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultResumeMax is the most messages one resume replays by default.
const DefaultResumeMax = 1000

// historyLimits returns the history limits cfg asks for.
func (cfg *Config) historyLimits() history.Limits {
	lim := history.DefaultLimits()
	switch {
	case cfg.HistorySize < 0:
		lim.Size = 0
	case cfg.HistorySize > 0:
		lim.Size = cfg.HistorySize
	}
	if cfg.HistoryTTL > 0 {
		lim.TTL = cfg.HistoryTTL
	}
	if cfg.HistoryMaxBytes > 0 {
		lim.MaxBytes = cfg.HistoryMaxBytes
	}
	return lim
}

// Server serves the msgbus protocol. Create it with New.
type Server struct {
	cfg        Config
	log        *slog.Logger
	engine     engine.Engine
	http       *fasthttp.Server
	tls        *tls.Config
	pool       *flush.Pool             // set by the first Serve, before any stream
	static     fasthttp.RequestHandler // nil without a web root
	origins    []originPattern
	root       *os.Root
	staticStop chan struct{}   // stops the web root's file cache cleaner
	admin      *admin          // the admin listener's server; Shutdown stops it last
	sessions   sessions        // this node's sessions (PROTOCOL.md §8)
	cluster    engine.Cluster  // the engine, when the bus spans several nodes; nil otherwise
	tokens     *token.Verifier // nil when tokens are off
	anonymous  token.Rights    // what a request without a token may do, with tokens on

	// mu guards streams, senders, listeners, closing and pool. Order: mu, then a
	// stream's own lock (Shutdown closes streams holding mu); the engine
	// and the hub are never called with mu held.
	mu      sync.Mutex
	streams map[*flush.Stream]struct{}
	senders map[*websocket.Conn]struct{} // WebSockets of /pub/ and /push/
	closing bool
	// listeners are what Serve serves, which Shutdown closes itself: a
	// Serve that began as Shutdown ran is not one fasthttp knows to stop.
	listeners []net.Listener
	wg        sync.WaitGroup // live streams

	closeFiles sync.Once // the file server's cache cleaner and the web root
}

// New checks cfg and builds a Server. Errors name the setting to fix.
func New(cfg Config) (*Server, error) {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	origins, err := parseOriginPatterns(cfg.AllowOrigins)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, streams: make(map[*flush.Stream]struct{}),
		senders: make(map[*websocket.Conn]struct{})}
	s.sessions.byID = make(map[string]*session)
	if cfg.ResumeMax <= 0 {
		s.cfg.ResumeMax = DefaultResumeMax
	}
	s.origins = origins
	if s.tokens, s.anonymous, err = newAuth(&cfg); err != nil {
		return nil, err
	}
	if s.admin, err = newAdmin(s, &cfg); err != nil {
		return nil, err
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return nil, errors.New("server: TLS needs both a certificate (--tls-cert) and a key (--tls-key)")
	}
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("server: loading --tls-cert/--tls-key: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.WebRoot != "" {
		if err := s.openWebRoot(cfg.WebRoot); err != nil {
			return nil, err
		}
	} else if cfg.ExampleApp {
		s.serveExampleApp()
	}
	// The engine last: nothing after it can fail, and it runs a goroutine
	// that only Shutdown stops.
	hubCfg := hub.Config{
		MaxQueueBytes:      cfg.MaxQueueBytes,
		MaxSubscribers:     cfg.MaxSubscribers,
		MaxBacklogMessages: cfg.MaxBacklogMessages,
		MaxBacklogBytes:    cfg.MaxBacklogBytes,
		MaxBacklogTotal:    cfg.MaxBacklogTotalBytes,
		PullerStall:        cfg.PullerStall,
		Logger:             cfg.Logger,
	}
	if cfg.Redis != "" {
		if cfg.Store != "" {
			return nil, errors.New("server: --store and --redis exclude each other: with Redis, history lives in Redis")
		}
		e, err := redis.New(redis.Config{URL: cfg.Redis, Hub: hubCfg, Limits: cfg.historyLimits(), Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("server: --redis: %w", err)
		}
		s.engine = &meteredEngine{Engine: e, m: s.admin.metrics}
		s.cluster = e
		e.HandleCommands(s.handleSessionCommand)
	} else {
		store, err := openStore(&cfg)
		if err != nil {
			return nil, err
		}
		s.engine = &meteredEngine{Engine: local.New(local.Config{Hub: hubCfg, Store: store}), m: s.admin.metrics}
	}
	s.http = &fasthttp.Server{
		Handler:                       s.handle,
		ErrorHandler:                  s.handleError,
		ExpectHandler:                 s.expect,
		Name:                          "msgbus",
		MaxRequestBodySize:            cfg.MaxMessageBytes,
		ReadBufferSize:                cfg.MaxHeaderBytes,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: false,
		NoDefaultContentType:          true,
		KeepHijackedConns:             true, // streams close their own sockets
		CloseOnShutdown:               true,
		IdleTimeout:                   2 * time.Minute,
		ReadTimeout:                   time.Minute, // slowloris: a request must arrive within this
		Logger:                        fasthttpLogger{s.log},
	}
	return s, nil
}

// Stats returns the engine's counters and history size.
func (s *Server) Stats() engine.Stats { return s.engine.Stats() }

// openStore opens the history store cfg asks for: the durable one in
// cfg.Store, or memory.
func openStore(cfg *Config) (history.Store, error) {
	lim := cfg.historyLimits()
	if cfg.Store == "" {
		return history.NewMemory(lim, nil), nil
	}
	return history.OpenLog(cfg.Store, lim)
}

// Serve accepts connections on ln until Shutdown. With TLS configured it
// speaks HTTPS. Running out of file descriptors refuses connections (logged
// once) instead of failing or spinning. After Shutdown, even one called
// before Serve, it closes ln and returns nil at once.
func (s *Server) Serve(ln net.Listener) error {
	ln = newGuardedListener(ln, s.log, s.cfg.MaxConnections, s.tls == nil)
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	if s.pool == nil {
		s.pool = flush.NewPool(max(1, runtime.GOMAXPROCS(0)-1))
	}
	ln = &closeOnce{Listener: ln}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	err := s.http.Serve(ln)
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return nil // the listener was closed by Shutdown, maybe before fasthttp knew it
	}
	return err
}

// closeOnce is a listener that both Shutdown and fasthttp may close: the
// second Close is not an error.
type closeOnce struct {
	net.Listener
	once sync.Once
	err  error
}

func (c *closeOnce) Close() error {
	c.once.Do(func() { c.err = c.Listener.Close() })
	return c.err
}

// Shutdown stops accepting, ends every stream with the closing boundary and
// waits for streams and requests to finish. When ctx expires first, it
// closes the remaining sockets and returns ctx's error. The admin listener
// (ServeAdmin) stops last, answering /readyz with 503 until then.
func (s *Server) Shutdown(ctx context.Context) error {
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.http.ShutdownWithContext(ctx) }()
	s.mu.Lock()
	s.closing = true
	lns := s.listeners
	s.listeners = nil
	s.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	s.engine.Close()
	s.closeSenders()

	streamsDone := make(chan struct{})
	go func() { s.wg.Wait(); close(streamsDone) }()
	var err error
	select {
	case <-streamsDone:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for st := range s.streams {
			st.Close()
		}
		s.mu.Unlock()
		<-streamsDone
	}
	s.mu.Lock()
	pool := s.pool
	s.mu.Unlock()
	if pool != nil {
		pool.Stop()
	}
	if herr := <-httpDone; err == nil {
		err = herr
	}
	if aerr := s.shutdownAdmin(ctx); err == nil {
		err = aerr
	}
	s.closeFiles.Do(func() {
		if s.staticStop != nil {
			close(s.staticStop)
		}
		if s.root != nil {
			s.root.Close()
		}
	})
	return err
}

// expect answers "Expect: 100-continue": a body announced larger than the
// limit is refused with 413 at once, before the client sends it.
func (s *Server) expect(ctx *fasthttp.RequestCtx) int {
	if n := ctx.Request.Header.ContentLength(); n > s.cfg.MaxMessageBytes {
		if len(s.origins) > 0 {
			setCORS(ctx, s.corsHeaders(ctx))
		}
		fail(ctx, fasthttp.StatusRequestEntityTooLarge, tooLarge(s.cfg.MaxMessageBytes))
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusContinue
}

// fasthttpLogger sends fasthttp's own messages to slog at debug level:
// they are about one connection (a client that sent garbage or vanished, a
// file missing from the web root), which the client has already been told,
// and at a higher level any client could fill the log.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "source", "fasthttp")
}
