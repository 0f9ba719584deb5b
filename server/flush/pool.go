package flush

import (
	"runtime"
	"sync"
)

// A Pool is a few goroutines that write ready streams. Rather than one
// goroutine per subscriber, woken per message, the hub's wake puts a stream
// on the ready list and a pool writer drains its queue with one
// non-blocking writev. While the writers sweep the list, messages published
// meanwhile pile up in the queues of streams not yet reached, so under load
// each writev carries several messages: batching grows with the load, and a
// lightly loaded stream is written at once.
//
// A stream whose socket is full (a slow reader) leaves the pool: the rest is
// written by a goroutine of its own that blocks, so it never holds up the
// pool.
type Pool struct {
	// mu guards ready, head, idle and stopped. It is a leaf: nothing else
	// is locked while it is held, and a writer drops it before it touches
	// a stream (Stream.mu, the hub's subscription lock).
	mu      sync.Mutex
	cond    sync.Cond // on mu: writers wait for streams
	ready   []*Stream
	head    int // ready[head:] waits
	idle    int // writers waiting on cond
	stopped bool
	wg      sync.WaitGroup
}

// sweepChunk is how many streams a writer takes off the list at once;
// yieldEvery, how many it writes before letting other goroutines (request
// handlers above all) run, so publishes are answered promptly under load.
const (
	sweepChunk = 64
	yieldEvery = 16
)

// NewPool starts a pool of writers goroutines. The server gives it one less
// than GOMAXPROCS, so that request handlers always have a processor.
func NewPool(writers int) *Pool {
	p := &Pool{}
	p.cond.L = &p.mu
	p.wg.Add(writers)
	for range writers {
		go p.run()
	}
	return p
}

// push puts st on the ready list. The hub's wake protocol ensures a stream
// is on the list at most once.
func (p *Pool) push(st *Stream) {
	p.mu.Lock()
	p.ready = append(p.ready, st)
	if p.idle > 0 {
		p.cond.Signal()
	}
	p.mu.Unlock()
}

// Stop ends the writers once the ready list is empty: call it after every
// stream has ended.
func (p *Pool) Stop() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

// poolWriter is one writer's scratch state, kept across streams.
type poolWriter struct {
	iov     iovecs
	bufs    [][]byte
	n       int
	err     error
	writeFn func(fd uintptr) bool // w.write, bound once
}

func (w *poolWriter) write(fd uintptr) bool {
	w.n, w.err = writevNow(int(fd), w.bufs, &w.iov)
	return true // never wait for the socket: a full one goes to its own goroutine
}

func (p *Pool) run() {
	defer p.wg.Done()
	w := &poolWriter{iov: newIovecs()}
	w.writeFn = w.write
	batch := make([]*Stream, 0, sweepChunk)
	for {
		p.mu.Lock()
		for p.head == len(p.ready) && !p.stopped {
			p.idle++
			p.cond.Wait()
			p.idle--
		}
		if p.head == len(p.ready) {
			p.mu.Unlock()
			return
		}
		end := min(p.head+sweepChunk, len(p.ready))
		batch = append(batch[:0], p.ready[p.head:end]...)
		clear(p.ready[p.head:end])
		p.head = end
		if p.head == len(p.ready) {
			p.ready, p.head = p.ready[:0], 0
		} else if p.head > len(p.ready)/2 {
			// Under steady load the list may never empty: move the live
			// part down, so the taken prefix does not grow forever.
			n := copy(p.ready, p.ready[p.head:])
			clear(p.ready[n:])
			p.ready, p.head = p.ready[:n], 0
		}
		p.mu.Unlock()
		for i, st := range batch {
			st.flushNow(w)
			batch[i] = nil
			if i%yieldEvery == yieldEvery-1 {
				runtime.Gosched()
			}
		}
	}
}
