package client_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// A relay is a TCP relay in front of a test server that can break the
// connections passing through it, as a failing network or a restarted load
// balancer does, while the server itself runs on.
type relay struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	refusing bool
	accepted int

	wg sync.WaitGroup
}

// startRelay relays 127.0.0.1:<port> to target until the test ends.
func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Go(r.serve)
	t.Cleanup(func() {
		ln.Close()
		r.cut(false)
		r.wg.Wait()
	})
	return r
}

func (r *relay) URL() string { return "http://" + r.ln.Addr().String() }

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.accepted++
		if r.refusing {
			r.mu.Unlock()
			c.Close()
			continue
		}
		r.conns[c] = struct{}{}
		r.mu.Unlock()
		r.wg.Go(func() { r.pipe(c) })
	}
}

// pipe relays one connection both ways until either side ends.
func (r *relay) pipe(c net.Conn) {
	defer func() {
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
		c.Close()
	}()
	s, err := net.Dial("tcp", r.target)
	if err != nil {
		return
	}
	r.mu.Lock()
	r.conns[s] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.conns, s)
		r.mu.Unlock()
		s.Close()
	}()
	done := make(chan struct{}, 2)
	go func() { io.Copy(s, c); s.Close(); done <- struct{}{} }()
	go func() { io.Copy(c, s); c.Close(); done <- struct{}{} }()
	<-done
	<-done
}

// cut closes every connection through the relay; with refuse, it also
// closes new ones at once until heal.
func (r *relay) cut(refuse bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refusing = refuse
	for c := range r.conns {
		c.Close()
	}
}

// heal lets connections through again.
func (r *relay) heal() {
	r.mu.Lock()
	r.refusing = false
	r.mu.Unlock()
}

// A fault is what a publishProxy does with one request.
type fault int

const (
	forward    fault = iota // pass it on and the answer back
	loseAnswer              // pass it on, then drop the connection instead of answering
	busy                    // answer 503 with Retry-After itself
)

// A publishProxy is an HTTP proxy in front of a test server that treats
// each request as its plan says, and records the Idempotency-Key of each.
type publishProxy struct {
	ln         net.Listener
	target     string
	plan       func(i int) fault // for the i-th request, from 0
	retryAfter string            // the Retry-After of a busy answer

	mu   sync.Mutex
	keys []string
	wg   sync.WaitGroup
}

func startPublishProxy(t *testing.T, target string, plan func(i int) fault) *publishProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &publishProxy{ln: ln, target: target, plan: plan, retryAfter: "0"}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *publishProxy) URL() string { return "http://" + p.ln.Addr().String() }

// Keys returns the Idempotency-Key of every request so far, in order.
func (p *publishProxy) Keys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.keys...)
}

// serve handles the requests of one client connection.
func (p *publishProxy) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		p.mu.Lock()
		i := len(p.keys)
		p.keys = append(p.keys, req.Header.Get("Idempotency-Key"))
		p.mu.Unlock()
		switch p.plan(i) {
		case busy:
			io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: "+p.retryAfter+
				"\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nbusy\n")
			continue
		case loseAnswer:
			p.roundTrip(req, body)
			return // the client sees its connection close without an answer
		default:
			resp, err := p.roundTrip(req, body)
			if err != nil {
				return
			}
			if err := resp.Write(c); err != nil {
				return
			}
		}
	}
}

// roundTrip sends req to the server on a connection of its own and reads
// the whole answer.
func (p *publishProxy) roundTrip(req *http.Request, body []byte) (*http.Response, error) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	out, err := http.NewRequest(req.Method, "http://"+p.target+req.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	out.Header = req.Header.Clone()
	out.Close = true
	if err := out.Write(s); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(s), out)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.TransferEncoding = nil
	resp.Close = false
	return resp, err
}
