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

// guardedListener keeps serving when the process runs out of file
// descriptors. Accept then fails with EMFILE while the client waits in the
// kernel's backlog, and a naive loop retries at once, spinning. Instead it
// keeps one descriptor in reserve: on EMFILE it frees the reserve, accepts the
// waiting connection and closes it (the client sees the refusal at once),
// takes the reserve back and pauses briefly. It logs once per episode.
type guardedListener struct {
	net.Listener
	log      *slog.Logger
	starving atomic.Bool

	mu      sync.Mutex // guards reserve against a concurrent Close
	reserve *os.File
	closed  bool
}

func newGuardedListener(ln net.Listener, log *slog.Logger) net.Listener {
	reserve, _ := os.Open(os.DevNull)
	return &guardedListener{Listener: ln, log: log, reserve: reserve}
}

func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			if l.starving.CompareAndSwap(true, false) {
				l.log.Info("file descriptors available again; accepting connections")
			}
			return c, nil
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
