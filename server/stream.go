package server

import (
	"bytes"
	"net"
	"strconv"
	"time"

	"github.com/msgbus/msgbus/server/engine"
	"github.com/msgbus/msgbus/server/flush"
	"github.com/msgbus/msgbus/server/hub"
)

// startStream runs on the hijacked connection (cors: the CORS header lines
// a refusal needs): subscribe, then write the
// head and the parts as they come. The fasthttp request context is released
// as soon as this returns; the stream keeps only the raw connection.
func (s *Server) startStream(c net.Conn, channel, cors string, opts hub.SubscribeOptions, resume *engine.Resume, ss *session) {
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		c = u.UnsafeConn() // the raw *net.TCPConn can do vectored writes
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		refuse(c, opts.Head, cors, "shutting down")
		return
	}
	st := flush.NewStream(s.pool, false)
	s.streams[st] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	st.Attach(c)
	opts.Wake, opts.Dropped = st.Wake, st.Dropped

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
	st.SetSubscription(sub)
	if resume != nil {
		sub.Start(withHeaderLines(opts.Head, recoveredHeader(resumed.Recovered)))
	}
	ss.sub, ss.Remote, ss.Since = sub, c.RemoteAddr().String(), time.Now()
	s.openSession(ss, true)
	s.log.Debug("subscribed", "channel", opts.Name, "remote", ss.Remote, "session", ss.ID)
	st.Wake() // the head, and whatever was published since Subscribe
	go s.readStream(st, c, startHeartbeat(opts.Format, sub), ss)
}

// recoveredHeader is the Msgbus-Recovered header line of a resumed
// stream's head.
func recoveredHeader(recovered bool) string {
	if recovered {
		return "Msgbus-Recovered: true\r\n"
	}
	return "Msgbus-Recovered: false\r\n"
}

// readStream is a stream's reader: it blocks in Read on c for the life of
// the connection, only to learn that the client went away (it discards
// whatever the client sends) or that the flusher closed it. Then it
// unsubscribes, stops the heartbeat and waits for the last flusher.
func (s *Server) readStream(st *flush.Stream, c net.Conn, beat *heartbeat, ss *session) {
	buf := make([]byte, 64)
	for {
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	sub := st.Subscription()
	s.engine.Unsubscribe(sub)
	s.closeSession(ss)
	beat.stop()
	// The client is gone (a read error, or EOF: a client that half-closes
	// counts as gone too). A flusher blocked on its full socket would wait
	// forever: give it a moment, then let the write fail.
	st.Dropped()
	<-st.Done()
	s.log.Debug("unsubscribed", "channel", sub.Name(), "reason", sub.Err())
	s.forget(st)
}

// forget drops a finished stream from the server's set.
func (s *Server) forget(st *flush.Stream) {
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
