// Command msgbus runs the msgbus HTTP push message bus.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/msgbus/msgbus/server"
	"github.com/msgbus/msgbus/server/history"
	"github.com/msgbus/msgbus/server/hub"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "msgbus:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	var verbosity int
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"MSGBUS_CONFIG"},
			Usage: "read settings from `FILE` (.toml, .yaml or .json; keys are the long flag names); default: ./" + defaultConfigFile + " if present"},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "listen", Aliases: []string{"l"}, EnvVars: []string{"MSGBUS_LISTEN"},
			Usage: "listen on `ADDR`: a host, host:port or http://*:4000 (default: every interface)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "port", Aliases: []string{"p"}, Value: 8888, EnvVars: []string{"MSGBUS_PORT"},
			Usage: "listen on `PORT` unless -l names one"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "web-root", Aliases: []string{"d"}, EnvVars: []string{"MSGBUS_WEB_ROOT"},
			Usage: "serve static files from `DIR` at every path outside the bus (never a file outside DIR)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "secret", Aliases: []string{"s"}, EnvVars: []string{"MSGBUS_SECRET"},
			Usage: "require HTTP Basic auth with password `SECRET`; the user name is the From of what it publishes"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "mode", Aliases: []string{"m"}, Value: "development", EnvVars: []string{"MSGBUS_MODE"},
			Usage: "`MODE` development serves an example app at / (unless -d); production does not"}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "allow-origin", EnvVars: []string{"MSGBUS_ALLOW_ORIGIN"},
			Usage: "let web pages from origins matching `PATTERN` publish and subscribe, with CORS (repeatable; example.com, *.example.com, https://*:8443; '*' for any). Without it only the server's own pages may publish or open a WebSocket"}),
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Count: &verbosity,
			Usage: "log more: -v logs at debug level (each subscribe and unsubscribe)"},
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-message-bytes", Value: server.DefaultMaxMessageBytes, EnvVars: []string{"MSGBUS_MAX_MESSAGE_BYTES"},
			Usage: "refuse a published body over `N` bytes with 413 (a WebSocket message: close 1009)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-queue-bytes", Value: hub.DefaultMaxQueueBytes, EnvVars: []string{"MSGBUS_MAX_QUEUE_BYTES"},
			Usage: "disconnect a subscriber that falls `N` bytes behind (it is too slow to keep up)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-subscribers", EnvVars: []string{"MSGBUS_MAX_SUBSCRIBERS"},
			Usage: "refuse subscribers beyond `N` with 503 (0: no limit)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-backlog-messages", Value: hub.DefaultMaxBacklogMessages, EnvVars: []string{"MSGBUS_MAX_BACKLOG_MESSAGES"},
			Usage: "a push/pull topic holds at most `N` messages while no puller takes them; more is 503 (a WebSocket pusher: close 1013)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-backlog-bytes", Value: hub.DefaultMaxBacklogBytes, EnvVars: []string{"MSGBUS_MAX_BACKLOG_BYTES"},
			Usage: "and at most `N` bytes of them, counting what its pullers have not yet written"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-backlog-total-bytes", Value: hub.DefaultMaxBacklogTotalBytes, EnvVars: []string{"MSGBUS_MAX_BACKLOG_TOTAL_BYTES"},
			Usage: "all push/pull topics together hold at most `N` bytes; more is 503"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-connections", Value: server.DefaultMaxConnections, EnvVars: []string{"MSGBUS_MAX_CONNECTIONS"},
			Usage: "answer client connections beyond `N` with 503 and close them (-1: no limit)"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "history-size", Value: history.DefaultSize, EnvVars: []string{"MSGBUS_HISTORY_SIZE"},
			Usage: "keep the last `N` messages of each channel for resume and /history/ (0: no history)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "history-ttl", Value: history.DefaultTTL, EnvVars: []string{"MSGBUS_HISTORY_TTL"},
			Usage: "keep messages at most `DURATION`"}),
		altsrc.NewInt64Flag(&cli.Int64Flag{Name: "history-max-bytes", Value: history.DefaultMaxBytes, EnvVars: []string{"MSGBUS_HISTORY_MAX_BYTES"},
			Usage: "keep at most `N` bytes of messages in all, the oldest evicted first"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "resume-max", Value: server.DefaultResumeMax, EnvVars: []string{"MSGBUS_RESUME_MAX"},
			Usage: "one resume replays at most `N` messages, the newest"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "store", EnvVars: []string{"MSGBUS_STORE"},
			Usage: "keep history on disk in folder `DIR` (fsynced before 204, kept across restarts); default: memory"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "redis", EnvVars: []string{"MSGBUS_REDIS"},
			Usage: "make every node with the same Redis one bus: `URL` redis://[user:pass@]host:port[/db] or rediss:// (TLS); history lives there"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "tls-cert", EnvVars: []string{"MSGBUS_TLS_CERT"},
			Usage: "serve HTTPS with the PEM certificate (chain) in `FILE`; needs --tls-key"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "tls-key", EnvVars: []string{"MSGBUS_TLS_KEY"},
			Usage: "the PEM private key in `FILE` for --tls-cert"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "token-secret", EnvVars: []string{"MSGBUS_TOKEN_SECRET"},
			Usage: "turn tokens on: accept HS256 JWTs signed with `SECRET` (PROTOCOL.md §8), and mint them at the admin listener's /admin/tokens"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "token-key", EnvVars: []string{"MSGBUS_TOKEN_KEY"},
			Usage: "turn tokens on: accept RS256, ES256 or EdDSA JWTs signed for the public key in the PEM `FILE`"}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "anonymous-publish", EnvVars: []string{"MSGBUS_ANONYMOUS_PUBLISH"},
			Usage: "with tokens on, a request without one may publish to channels matching `PATTERNS` (comma-separated globs; default: none)"}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "anonymous-subscribe", EnvVars: []string{"MSGBUS_ANONYMOUS_SUBSCRIBE"},
			Usage: "with tokens on, a request without one may subscribe to channels matching `PATTERNS` (\"*\": everything; default: none)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "admin-listen", EnvVars: []string{"MSGBUS_ADMIN_LISTEN"},
			Usage: "serve /livez, /readyz and /metrics for operators on `ADDR` (host:port or :port); default: off"}),
		altsrc.NewStringSliceFlag(&cli.StringSliceFlag{Name: "admin-allow", EnvVars: []string{"MSGBUS_ADMIN_ALLOW"},
			Usage: "the admin listener serves only client addresses in `CIDRS` (comma-separated, repeatable; others get 403) (default: 127.0.0.0/8,::1/128)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "admin-token", EnvVars: []string{"MSGBUS_ADMIN_TOKEN"},
			Usage: "the admin listener also requires Authorization: Bearer `TOKEN` (else 401)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: []string{"MSGBUS_LOG_FORMAT"},
			Usage: "log as `FORMAT`: text or json"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"MSGBUS_LOG_LEVEL"},
			Usage: "log at `LEVEL` and above: debug, info, warn or error"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "shutdown-timeout", Value: 5 * time.Second, EnvVars: []string{"MSGBUS_SHUTDOWN_TIMEOUT"},
			Usage: "on SIGINT or SIGTERM, wait up to `DURATION` for streams to end before closing them"}),
	}
	return &cli.App{
		Name:      "msgbus",
		Usage:     "an HTTP server-push message bus",
		UsageText: "msgbus [-l ADDR] [-p PORT] [-d DIR] [-s SECRET] [-m MODE] [-c FILE] [-v]...",
		Description: "Publish with POST /msgbus/<channel> (the body is the message, its Content-Type its type);\n" +
			"subscribe with GET /msgbus/<channel>, a multipart/x-mixed-replace stream of every message\n" +
			"published to the channel or below it. GET /msgbus/ watches every channel. WebSockets:\n" +
			"/bus/<topic> (peers), /pub/ and /sub/<topic> (pub/sub), /push/ and /pull/<topic> (round robin).\n\n" +
			"   curl -N localhost:8888/msgbus/news &\n" +
			"   curl -d 'hello' -H 'Content-Type: text/plain' localhost:8888/msgbus/news",
		HideHelpCommand: true,
		Flags:           flags,
		Before: func(c *cli.Context) error {
			src, err := configSource(c)
			if err != nil {
				return err
			}
			if err := altsrc.ApplyInputSourceValues(c, src, flags); err != nil {
				return fmt.Errorf("config file %s: %w", src.Source(), err)
			}
			return nil
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q; see msgbus --help", c.Args().First())
			}
			log, err := newLogger(c.String("log-format"), c.String("log-level"), verbosity)
			if err != nil {
				return err
			}
			addr, err := server.ListenAddress(c.String("listen"), c.Int("port"))
			if err != nil {
				return err
			}
			mode := strings.ToLower(c.String("mode"))
			if mode != "development" && mode != "production" {
				return fmt.Errorf("--mode %q: want development or production", c.String("mode"))
			}
			srv, err := server.New(server.Config{
				MaxMessageBytes:      c.Int("max-message-bytes"),
				MaxQueueBytes:        c.Int("max-queue-bytes"),
				MaxSubscribers:       c.Int("max-subscribers"),
				MaxBacklogMessages:   c.Int("max-backlog-messages"),
				MaxBacklogBytes:      c.Int("max-backlog-bytes"),
				MaxBacklogTotalBytes: c.Int("max-backlog-total-bytes"),
				MaxConnections:       c.Int("max-connections"),
				HistorySize:          historySize(c.Int("history-size")),
				HistoryTTL:           c.Duration("history-ttl"),
				HistoryMaxBytes:      c.Int64("history-max-bytes"),
				ResumeMax:            c.Int("resume-max"),
				Store:                c.String("store"),
				Redis:                c.String("redis"),
				Secret:               c.String("secret"),
				WebRoot:              c.String("web-root"),
				ExampleApp:           mode == "development",
				AllowOrigins:         c.StringSlice("allow-origin"),
				TLSCertFile:          c.String("tls-cert"),
				TLSKeyFile:           c.String("tls-key"),
				TokenSecret:          c.String("token-secret"),
				TokenKey:             c.String("token-key"),
				AnonymousPublish:     c.StringSlice("anonymous-publish"),
				AnonymousSubscribe:   c.StringSlice("anonymous-subscribe"),
				AdminListen:          c.String("admin-listen"),
				AdminAllow:           c.StringSlice("admin-allow"),
				AdminToken:           c.String("admin-token"),
				Logger:               log,
			})
			if err != nil {
				return err
			}
			log.Info("mode", "mode", mode)
			return run(srv, addr, c.String("admin-listen"), c.Duration("shutdown-timeout"), c.String("tls-cert") != "", log)
		},
	}
}

// run serves on addr, and the admin endpoints on adminAddr when it is not
// empty, until SIGINT or SIGTERM, then shuts down within timeout.
func run(srv *server.Server, addr, adminAddr string, timeout time.Duration, tls bool, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another msgbus running? choose another with -p)", addr, err)
	}
	var aln net.Listener
	if adminAddr != "" {
		if aln, err = net.Listen("tcp", adminAddr); err != nil {
			ln.Close()
			return fmt.Errorf("--admin-listen %s: %w", adminAddr, err)
		}
	}
	url := openURL(ln.Addr().(*net.TCPAddr), tls)
	log.Info("msgbus listening", "addr", ln.Addr().String(), "open", url,
		"watch", "curl -N "+url+"msgbus/news")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	running := 1
	if aln != nil {
		log.Info("admin listening", "addr", aln.Addr().String(),
			"metrics", "curl "+openURL(aln.Addr().(*net.TCPAddr), false)+"metrics")
		go func() { served <- srv.ServeAdmin(aln) }()
		running++
	}
	var serr error
	select {
	case serr = <-served:
		running--
	case <-ctx.Done():
		log.Info("shutting down")
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown timed out; closed the remaining connections", "err", err)
	}
	for ; running > 0; running-- {
		if err := <-served; serr == nil {
			serr = err
		}
	}
	if serr != nil {
		return serr
	}
	st := srv.Stats()
	log.Info("stopped", "published", st.Published, "delivered", st.Delivered, "slow_disconnects", st.SlowDisconnects)
	return nil
}

// historySize maps the flag, where 0 turns history off, to
// server.Config.HistorySize, where 0 means the default.
func historySize(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// openURL is the URL a person on this machine opens to reach a listener on
// a: localhost for every interface or loopback.
func openURL(a *net.TCPAddr, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	host := "localhost"
	if !a.IP.IsUnspecified() && !a.IP.IsLoopback() {
		host = a.IP.String()
		if a.IP.To4() == nil {
			host = "[" + host + "]"
		}
	}
	return scheme + "://" + host + ":" + strconv.Itoa(a.Port) + "/"
}

func newLogger(format, level string, verbosity int) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	if verbosity > 0 && lv > slog.LevelDebug {
		lv = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
