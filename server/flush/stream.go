// Package flush writes subscribers' queues to their sockets: a Stream per
// subscriber connection and a Pool of writers shared by all of them. It is
// the hot path of every delivery, kept apart from the HTTP routing and the
// handshakes (package server), which make a Stream, subscribe it and hand it
// its connection.
//
// What serves a stream:
//
//   - when frames arrive for an empty queue, the hub's Wake puts the stream
//     on the Pool, whose writers drain it with non-blocking writev;
//   - a stream the pool cannot finish (its socket is full: a slow reader) or
//     that cannot writev (TLS, or a system other than Linux) is flushed by a
//     goroutine of its own, which exits when the queue is empty.
//
// So a busy subscriber writes everything queued with one vectored write, an
// idle one costs nothing here, and no lock is held while writing. One
// flusher at most works on a stream: the hub wakes only after Take found the
// queue empty, and a flusher hands over by starting the next.
//
// Locks: Pool.mu and Stream.mu are leaves, taken last and never together:
// the hub calls Dropped under its own locks, and the server calls Close
// holding its own. Neither is held while calling the hub.
package flush

import (
	"bufio"
	"crypto/tls"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/msgbus/msgbus/server/hub"
)

// A Stream is one subscriber's connection, written by the Pool or by a
// goroutine of its own. Make it with NewStream, give its Wake and Dropped to
// the hub's SubscribeOptions, then SetSubscription and Attach before the
// first Wake.
type Stream struct {
	pool  *Pool
	conn  net.Conn        // closing it gives back its --max-connections place
	tcp   *net.TCPConn    // the socket under conn, nil for TLS
	raw   syscall.RawConn // nil unless the pool may writev to the socket
	sub   *hub.Subscription
	spare [][]byte      // the flusher's second queue buffer; only the flusher touches it
	done  chan struct{} // closed by the flusher that ends the stream

	// A puller's frames must not vanish with a failed socket: the batch
	// being written is remembered, and if the write fails it is handed
	// back (unsent) for another puller. At least once, not at most once.
	pull     bool
	inflight [][]byte
	unsent   [][]byte // set before done is closed

	// mu guards conn and slow, which Attach and Dropped may set in either
	// order (the hub may drop a subscriber before its socket arrives).
	mu   sync.Mutex
	slow bool // the hub dropped the subscriber
}

// NewStream returns a stream written by pool. A puller's stream (pull)
// keeps the batch it is writing, so that Unsent can hand it to another
// puller if the write fails.
func NewStream(pool *Pool, pull bool) *Stream {
	return &Stream{pool: pool, pull: pull, done: make(chan struct{})}
}

// SetSubscription gives the stream the subscription whose queue it writes.
// It must happen before the first Wake.
func (st *Stream) SetSubscription(sub *hub.Subscription) { st.sub = sub }

// Subscription returns what SetSubscription gave.
func (st *Stream) Subscription() *hub.Subscription { return st.sub }

// Done is closed once the stream has ended: its subscription ended and
// everything queued was written, or a write failed. The connection is
// closed then.
func (st *Stream) Done() <-chan struct{} { return st.done }

// Unsent returns the frames a puller's stream had taken from its queue but
// could not write, for the hub to give to another puller. Call it after
// Done.
func (st *Stream) Unsent() [][]byte { return st.unsent }

// Attach gives the stream its connection, raw (as fasthttp's hijack
// unwraps it), so a TCP socket can take vectored writes from the pool.
// It happens before any flusher runs.
func (st *Stream) Attach(c net.Conn) {
	st.tcp = tcpConnOf(c)
	if st.tcp != nil {
		raw, err := st.tcp.SyscallConn()
		if err == nil {
			limitUnsent(raw)
			if canWritevNow {
				st.raw = raw
			}
		}
	}
	st.mu.Lock()
	st.conn = c
	slow := st.slow
	st.mu.Unlock()
	if slow {
		c.SetWriteDeadline(time.Now().Add(dropWait))
	}
}

// tcpConnOf finds the TCP socket under c, through fasthttp's hijacked
// connection and the listener's counting wrapper; nil for TLS.
func tcpConnOf(c net.Conn) *net.TCPConn {
	for {
		switch w := c.(type) {
		case *net.TCPConn:
			return w
		case *tls.Conn:
			return nil // its bytes must go through TLS
		case interface{ UnsafeConn() net.Conn }:
			c = w.UnsafeConn()
		case interface{ NetConn() net.Conn }:
			c = w.NetConn()
		default:
			return nil
		}
	}
}

// dropWait is how long a dropped subscriber's blocked write may go on (it
// may still take its goodbye frame); then the write fails and the stream
// ends.
const dropWait = time.Second

// Close closes the connection if the stream has one yet: at a shutdown
// that ran out of time, or a WebSocket whose last frames took too long.
// The flusher's write then fails and the stream ends.
func (st *Stream) Close() {
	st.mu.Lock()
	c := st.conn
	st.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// Dropped is the hub's Dropped, and what the server calls once the client
// is gone: the flusher may be stuck writing to a socket nobody reads, so
// that write gets dropWait more, then fails.
func (st *Stream) Dropped() {
	st.mu.Lock()
	st.slow = true
	c := st.conn
	st.mu.Unlock()
	if c != nil {
		c.SetWriteDeadline(time.Now().Add(dropWait))
	}
}

// Abandon ends a stream whose connection never arrived (a WebSocket
// handshake that failed after subscribing): Done is closed, there is
// nothing to write.
func (st *Stream) Abandon() { close(st.done) }

// Wake is the hub's Wake: frames wait and no flusher runs.
func (st *Stream) Wake() {
	if st.raw != nil {
		st.pool.push(st)
	} else {
		go st.flushBlocking(nil)
	}
}

// flushNow is the pool's flush: it writes what the socket takes now, until
// the queue is empty. A short write hands the rest to flushBlocking.
func (st *Stream) flushNow(w *poolWriter) {
	for {
		bufs, err := st.sub.Take(st.spare)
		if len(bufs) == 0 {
			if err != nil {
				st.finish()
			}
			return // queue empty: the hub wakes us for more
		}
		st.spare = bufs
		st.remember(bufs)
		w.bufs = bufs
		rerr := st.raw.Write(w.writeFn)
		w.bufs = nil
		if rerr != nil || w.err != nil {
			st.fail()
			return
		}
		if rest := advance(bufs, w.n); len(rest) > 0 {
			go st.flushBlocking(rest)
			return
		}
		clear(bufs)
	}
}

// advance drops the first n written bytes from bufs and returns what is
// left, nil-ing the entries it drops.
func advance(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs[0] = nil
		bufs = bufs[1:]
	}
	if len(bufs) > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

// flushBlocking writes rest, then every queued frame, blocking on the
// socket as needed, until the queue is empty, the subscription ends or a
// write fails.
func (st *Stream) flushBlocking(rest [][]byte) {
	if len(rest) > 0 && st.write(rest) != nil {
		st.fail()
		return
	}
	for {
		bufs, err := st.sub.Take(st.spare)
		if len(bufs) == 0 {
			if err != nil {
				st.finish()
			}
			return // queue empty: the hub wakes a flusher for more
		}
		st.spare = bufs // next Take's queue storage, once written
		st.remember(bufs)
		if st.write(bufs) != nil {
			st.fail()
			return
		}
	}
}

// remember keeps a puller's batch until it is written.
func (st *Stream) remember(bufs [][]byte) {
	if st.pull {
		st.inflight = append(st.inflight[:0], bufs...)
	}
}

// fail ends the stream after a failed write, handing a puller's batch back.
func (st *Stream) fail() {
	if st.pull {
		st.unsent = st.inflight
	}
	st.finish()
}

// finish closes the connection once the subscription has ended or a write
// failed; the server's reader then sees the close and unsubscribes.
func (st *Stream) finish() {
	st.conn.Close()
	close(st.done)
}

// write sends bufs, blocking, in one vectored write (writev) where the
// connection supports it; TLS gets them through a pooled buffer, so each
// flush makes a few large records rather than one per frame. It nils the
// entries it sent.
func (st *Stream) write(bufs [][]byte) error {
	if st.tcp != nil {
		nb := net.Buffers(bufs)
		_, err := nb.WriteTo(st.tcp)
		return err
	}
	w := writerPool.Get().(*bufio.Writer)
	w.Reset(st.conn)
	var err error
	for i, b := range bufs {
		if err == nil {
			_, err = w.Write(b)
		}
		bufs[i] = nil
	}
	if err == nil {
		err = w.Flush()
	}
	w.Reset(nil)
	writerPool.Put(w)
	return err
}

var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}
