package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/msgbus/msgbus/server/engine"
	"github.com/msgbus/msgbus/server/hub"
)

// A stream is one subscriber's connection. What serves it:
//
//   - a reader goroutine blocks in Read for the life of the connection, only to
//     learn that the client went away (it discards whatever the client sends);
//   - when frames arrive for an empty queue, the hub's wake puts the stream on
//     the server's flushPool, whose writers drain it with non-blocking writev;
//   - a stream the pool cannot finish (its socket is full: a slow reader) or
//     that cannot writev (TLS) is flushed by a goroutine of its own, which
//     exits when the queue is empty.
//
// So an idle subscriber costs one parked goroutine, a busy one writes
// everything queued with one vectored write, and no lock is held meanwhile.
// One flusher at most works on a stream: the hub wakes only after Take found
// the queue empty, and a flusher hands over by starting the next.
type stream struct {
	srv   *Server
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

	mu   sync.Mutex // orders attach and dropped, which may race
	slow bool       // the hub dropped the subscriber

	beat *heartbeat // an SSE stream's idle comments (sse.go); nil for others
}

// attach gives the stream its connection, raw (as fasthttp's hijack
// unwraps it), so a TCP socket can take vectored writes from the pool.
// It happens before any flusher runs.
func (st *stream) attach(c net.Conn) {
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

// closeConn closes the connection if the stream has one yet: at a
// shutdown that ran out of time.
func (st *stream) closeConn() {
	st.mu.Lock()
	c := st.conn
	st.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// dropped is the hub's Dropped: the flusher may be stuck writing to a
// socket the client does not read, so give that write a deadline.
func (st *stream) dropped() {
	st.mu.Lock()
	st.slow = true
	c := st.conn
	st.mu.Unlock()
	if c != nil {
		c.SetWriteDeadline(time.Now().Add(dropWait))
	}
}

// startStream runs on the hijacked connection (cors: the CORS header lines
// a refusal needs): subscribe, then write the
// head and the parts as they come. The fasthttp request context is released
// as soon as this returns; the stream keeps only the raw connection.
func (s *Server) startStream(c net.Conn, channel, cors string, opts hub.SubscribeOptions, resume *engine.Resume) {
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		c = u.UnsafeConn() // the raw *net.TCPConn can do vectored writes
	}
	st := &stream{srv: s, done: make(chan struct{})}
	st.attach(c)
	opts.Wake, opts.Dropped = st.wake, st.dropped
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		refuse(c, opts.Head, cors, "shutting down")
		return
	}
	s.streams[st] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()

	sub, resumed, err := s.engine.Subscribe(channel, opts, resume)
	if err != nil {
		reason := "shutting down"
		if err == hub.ErrTooManySubscribers {
			reason = errTooMany
		}
		refuse(c, opts.Head, cors, reason)
		s.forget(st)
		return
	}
	st.sub = sub
	if resume != nil {
		sub.Start(withHeaderLines(opts.Head, recoveredHeader(resumed.Recovered)))
	}
	s.log.Debug("subscribed", "channel", opts.Name, "remote", c.RemoteAddr().String())
	st.wake() // the head, and whatever was published since Subscribe
	st.beat = startHeartbeat(opts.Format, sub)
	go st.read()
}

// recoveredHeader is the Msgbus-Recovered header line of a resumed
// stream's head.
func recoveredHeader(recovered bool) string {
	if recovered {
		return "Msgbus-Recovered: true\r\n"
	}
	return "Msgbus-Recovered: false\r\n"
}

// wake is the hub's Wake: frames wait and no flusher runs.
func (st *stream) wake() {
	if st.raw != nil {
		st.srv.pool.push(st)
	} else {
		go st.flushBlocking(nil)
	}
}

// flushNow is the pool's flush: it writes what the socket takes now, until
// the queue is empty. A short write hands the rest to flushBlocking.
func (st *stream) flushNow(w *poolWriter) {
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
func (st *stream) flushBlocking(rest [][]byte) {
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
func (st *stream) remember(bufs [][]byte) {
	if st.pull {
		st.inflight = append(st.inflight[:0], bufs...)
	}
}

// fail ends the stream after a failed write, handing a puller's batch back.
func (st *stream) fail() {
	if st.pull {
		st.unsent = st.inflight
	}
	st.finish()
}

// finish closes the connection once the subscription has ended or a write
// failed; the reader then sees the close and unsubscribes.
func (st *stream) finish() {
	st.conn.Close()
	close(st.done)
}

// write sends bufs, blocking, in one vectored write (writev) where the
// connection supports it; TLS gets them through a pooled buffer, so each
// flush makes a few large records rather than one per frame. It nils the
// entries it sent.
func (st *stream) write(bufs [][]byte) error {
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

// read waits for the client to go away (or the flusher to close the
// connection), unsubscribes, and waits for the last flusher.
func (st *stream) read() {
	buf := make([]byte, 64)
	for {
		if _, err := st.conn.Read(buf); err != nil {
			break
		}
	}
	st.srv.engine.Unsubscribe(st.sub)
	st.beat.stop()
	// The client is gone (a read error, or EOF: a client that half-closes
	// counts as gone too). A flusher blocked on its full socket would wait
	// forever: give it a moment, then let the write fail.
	st.conn.SetWriteDeadline(time.Now().Add(dropWait))
	<-st.done
	st.srv.log.Debug("unsubscribed", "channel", st.sub.Name(), "reason", st.sub.Err())
	st.srv.forget(st)
}

// forget drops a finished stream from the server's set.
func (s *Server) forget(st *stream) {
	s.mu.Lock()
	delete(s.streams, st)
	s.mu.Unlock()
	s.wg.Done()
}

// refuse answers on a hijacked connection that could not become a stream,
// in the HTTP version of the stream's head.
// cors holds the CORS header lines a page of an allowed origin needs to read
// it.
func refuse(c net.Conn, head []byte, cors, reason string) {
	proto := "HTTP/1.1"
	if bytes.HasPrefix(head, []byte("HTTP/1.0")) {
		proto = "HTTP/1.0"
	}
	c.Write(withHeaderLines(unavailable(proto, reason), cors))
	c.Close()
}

// unavailable is a whole 503 answer with a one-line reason, for a socket
// that fasthttp does not answer on.
func unavailable(proto, reason string) []byte {
	return []byte(proto + " 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Retry-After: 1\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(reason)+1) + "\r\n\r\n" + reason + "\n")
}
