package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/msgbus/msgbus/server/console"
)

// DefaultAdminAllow is who the admin listener serves when Config.AdminAllow
// is empty: this machine only.
var DefaultAdminAllow = []string{"127.0.0.0/8", "::1/128"}

// admin is the operators' listener (PROTOCOL.md §9): health, readiness and
// metrics, on an address of its own, for the addresses in AdminAllow only.
//
// It is a net/http server, not a second fasthttp one. It carries a few
// requests a minute from probes and scrapers, so fasthttp's speed buys
// nothing there, while everything it serves now and next is written for
// net/http: the Prometheus handler (promhttp), net/http/pprof, and an
// operators' console streaming to a browser. fasthttpadaptor would copy each
// request and response and cannot stream, and the main server's settings
// (hijacked streams kept, the connection guard, bodies up to
// --max-message-bytes) are the wrong ones for it. net/http also takes
// RemoteAddr from the accepted connection itself, never from a header, which
// is what the address check needs.
type admin struct {
	srv      *Server
	allow    []netip.Prefix
	token    [sha256.Size]byte // the digest of Config.AdminToken
	hasToken bool
	http     *http.Server
	metrics  *metrics
}

// newAdmin checks cfg's admin settings and builds the admin listener's
// server, not yet serving. Errors name the flag to fix.
func newAdmin(s *Server, cfg *Config) (*admin, error) {
	if cfg.AdminListen != "" {
		if _, _, err := net.SplitHostPort(cfg.AdminListen); err != nil {
			return nil, fmt.Errorf("server: --admin-listen %q: want host:port or :port", cfg.AdminListen)
		}
	}
	allow, err := parseCIDRs(cfg.AdminAllow)
	if err != nil {
		return nil, err
	}
	a := &admin{srv: s, allow: allow, metrics: newMetrics()}
	if cfg.AdminToken != "" {
		a.token, a.hasToken = sha256.Sum256([]byte(cfg.AdminToken)), true
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		busCollector{s},
		a.metrics.publishDuration,
		a.metrics.resumes,
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { adminText(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /readyz", a.readyz)
	a.routes(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{s.log},
		ErrorHandling: promhttp.ContinueOnError, // the Go figures are still worth having when Redis is down
	}))
	a.http = &http.Server{
		Handler:           a.guard(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return a, nil
}

// parseCIDRs parses the --admin-allow list; an entry may hold several
// comma-separated CIDRs. Empty means DefaultAdminAllow.
func parseCIDRs(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, entry := range list {
		for c := range strings.SplitSeq(entry, ",") {
			if c = strings.TrimSpace(c); c == "" {
				continue
			}
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return nil, fmt.Errorf("server: --admin-allow %q: want CIDRs such as 10.0.0.0/8 or ::1/128", c)
			}
			out = append(out, p.Masked())
		}
	}
	if len(out) == 0 {
		for _, c := range DefaultAdminAllow {
			out = append(out, netip.MustParsePrefix(c))
		}
	}
	return out, nil
}

// guard serves a request only from an allowed peer address (403 otherwise)
// and, with a token set, with "Authorization: Bearer <token>" (401
// otherwise), but for the console's page and files: a browser cannot send
// the token when it opens a page, so the page asks for it and sends it
// with each API request it makes. The address is the TCP peer's: a proxy's X-Forwarded-For is
// never believed.
func (a *admin) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.allowed(r.RemoteAddr) {
			adminText(w, http.StatusForbidden, "forbidden: "+r.RemoteAddr+" is not in --admin-allow")
			return
		}
		if a.hasToken && !console.Public(r) && !a.tokenOK(r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="msgbus admin"`)
			adminText(w, http.StatusUnauthorized, "unauthorized: want Authorization: Bearer <--admin-token>")
			return
		}
		if p := r.URL.Path; strings.Contains(p, "//") || strings.Contains(p+"/", "/./") || strings.Contains(p+"/", "/../") {
			// ServeMux would redirect to the cleaned path, and a client
			// following it would publish to a channel it did not name.
			adminText(w, http.StatusBadRequest, "bad path: a channel name has no empty, \".\" or \"..\" segment")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowed reports whether the peer at remote (host:port) is in the allowed
// networks. An IPv4 peer on a dual-stack socket (::ffff:10.1.2.3) counts as
// the IPv4 address it is.
func (a *admin) allowed(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap().WithZone("")
	for _, p := range a.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// tokenOK compares the bearer token in the Authorization header h with
// --admin-token in constant time: digests of both are compared, so neither
// the content nor the length of the token leaks through timing.
func (a *admin) tokenOK(h string) bool {
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
	return subtle.ConstantTimeCompare(got[:], a.token[:]) == 1
}

// readyz answers 200 while the server takes publishes: its engine usable
// (the store, or Redis) and not shutting down. Otherwise 503 with the
// reason, so that a load balancer stops sending new clients while the
// streams drain.
func (a *admin) readyz(w http.ResponseWriter, _ *http.Request) {
	if err := a.srv.notReady(); err != nil {
		adminText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	adminText(w, http.StatusOK, "ok")
}

// errShuttingDown is why a server that is shutting down is not ready.
var errShuttingDown = errors.New("shutting down")

// notReady says why the server cannot take publishes now, nil when it can.
func (s *Server) notReady() error {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return errShuttingDown
	}
	return s.engine.Err()
}

// adminText writes a one-line plain-text answer.
func adminText(w http.ResponseWriter, code int, line string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, line)
}

// ServeAdmin serves the admin endpoints (PROTOCOL.md §9) on ln until
// Shutdown, which stops it last, once the streams have drained: until then
// /readyz answers 503 to say the server is going. The caller opens ln as it
// opens Serve's (the msgbus command on Config.AdminListen, a test on
// 127.0.0.1:0). After Shutdown, it closes ln and returns nil at once.
func (s *Server) ServeAdmin(ln net.Listener) error {
	err := s.admin.http.Serve(ln) // closes ln, also when already shut down
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// shutdownAdmin stops the admin listener, waiting for requests in flight
// until ctx expires and then closing their connections.
func (s *Server) shutdownAdmin(ctx context.Context) error {
	err := s.admin.http.Shutdown(ctx)
	if err != nil {
		s.admin.http.Close()
	}
	return err
}

// promLogger sends promhttp's errors (a collector failing) to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn("metrics: "+strings.TrimSuffix(fmt.Sprintln(v...), "\n"), "source", "prometheus")
}
