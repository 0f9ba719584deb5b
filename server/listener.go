package server

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// guardedListener caps open connections and keeps serving when the
// process runs out of file descriptors.
//
// Past MaxConnections a new connection gets a one-line 503 (plain HTTP) or
// is just closed (TLS), and the refusal is logged once per episode: an
// open connection is a socket, buffers and a goroutine, so a flood of them
// must not take the memory that serves everyone else.
//
// When descriptors run out, Accept then fails with EMFILE while the client waits in the
// kernel's backlog, and a naive loop retries at once, spinning. Instead it
// keeps one descriptor in reserve: on EMFILE it frees the reserve, accepts the
// waiting connection and closes it (the client sees the refusal at once),
// takes the reserve back and pauses briefly. It logs once per episode.
type guardedListener struct {
	net.Listener
	log      *slog.Logger
	starving atomic.Bool

	max   int64 // open connections allowed; <= 0: no limit
	open  atomic.Int64
	full  atomic.Bool // at max: logged once until below it again
	plain bool        // not TLS, so a refusal can be an HTTP answer

	mu      sync.Mutex // guards reserve against a concurrent Close
	reserve *os.File
	closed  bool
}

func newGuardedListener(ln net.Listener, log *slog.Logger, max int, plain bool) net.Listener {
	reserve, _ := os.Open(os.DevNull)
	return &guardedListener{Listener: ln, log: log, reserve: reserve, max: int64(max), plain: plain}
}

func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			if l.starving.CompareAndSwap(true, false) {
				l.log.Info("file descriptors available again; accepting connections")
			}
			if l.max > 0 && l.open.Add(1) > l.max {
				l.open.Add(-1)
				l.refuse(c)
				continue
			}
			if l.full.CompareAndSwap(true, false) {
				l.log.Info("below --max-connections again; accepting connections")
			}
			if l.max <= 0 {
				return c, nil
			}
			return &countedConn{Conn: c, l: l}, nil
		}
		if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
			return nil, err
		}
		if l.starving.CompareAndSwap(false, true) {
			l.log.Error("out of file descriptors: refusing new connections until some close (raise ulimit -n)",
				"err", err)
		}
		l.shed()
		time.Sleep(10 * time.Millisecond)
	}
}

// shed refuses one waiting connection using the reserved descriptor.
func (l *guardedListener) shed() {
	l.mu.Lock()
	reserve := l.reserve
	l.reserve = nil
	l.mu.Unlock()
	if reserve == nil {
		// Lost in an earlier episode (another descriptor was taken
		// first): try again, since without it nobody can be refused.
		if reserve, _ = os.Open(os.DevNull); reserve == nil {
			return
		}
	}
	reserve.Close()
	if c, err := l.Listener.Accept(); err == nil {
		c.Close()
	}
	reserve, _ = os.Open(os.DevNull)
	l.mu.Lock()
	if l.closed {
		reserve.Close()
	} else {
		l.reserve = reserve
	}
	l.mu.Unlock()
}

// tooManyConnections is the answer to a connection past the limit.
var tooManyConnections = unavailable("HTTP/1.1",
	"too many connections: the server is at its --max-connections limit, try again later")

// refuse answers and closes a connection past the limit. A fresh socket's
// buffer takes the short answer without blocking.
func (l *guardedListener) refuse(c net.Conn) {
	if l.full.CompareAndSwap(false, true) {
		l.log.Warn("at --max-connections: refusing new connections until some close", "limit", l.max)
	}
	if l.plain {
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		c.Write(tooManyConnections)
	}
	c.Close()
}

// A countedConn gives its place back when it closes, once.
type countedConn struct {
	net.Conn
	l    *guardedListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// NetConn returns the accepted connection, so a stream can write to the
// TCP socket itself.
func (c *countedConn) NetConn() net.Conn { return c.Conn }

func (l *guardedListener) Close() error {
	l.mu.Lock()
	l.closed = true
	if l.reserve != nil {
		l.reserve.Close()
		l.reserve = nil
	}
	l.mu.Unlock()
	return l.Listener.Close()
}
