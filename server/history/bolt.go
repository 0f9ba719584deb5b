package history

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/msgbus/msgbus/server/message"
)

// BoltFile is the name of the durable store's file in its directory.
const BoltFile = "history.db"

// ErrCorrupt is wrapped by OpenBolt's error when the store's file cannot
// be read back: the message names the file and what to do about it.
var ErrCorrupt = errors.New("history: store file is damaged")

// errClosed: the store was closed.
var errClosed = fmt.Errorf("%w: store closed", ErrUnavailable)

// Bolt is the durable store: a Memory that answers every query, in front
// of a bbolt file that holds every retained message, so history and ids
// survive a restart or a kill -9 (PROTOCOL.md §6, "Durable store").
//
// Append only queues a message for the disk; one committer goroutine
// writes everything queued in one transaction and one commit (fsync), then
// wakes every Sync waiting on those messages. Concurrent publishers thus
// share one commit, and a lone publisher waits for exactly one: no timer
// gathers a batch (see gather). A message the Memory evicts (limits,
// TTL) is deleted from the file in a later commit, so bbolt reuses its
// pages and the file stays about as large as the history limits allow.
//
// A failed commit (a full disk, a closed file) makes Err return an error
// wrapping ErrUnavailable, and Append refuse, until a later commit of the
// same messages succeeds: the committer retries, backing off to once a
// second.
type Bolt struct {
	mem  *Memory
	db   *bolt.DB
	path string
	lim  Limits

	// mu guards the fields below. It comes after the hub's order lock and
	// after the Memory's lock (its eviction hook takes mu), and nothing
	// is called with it held.
	mu       sync.Mutex
	queue    batch      // appended, not yet taken by the committer
	inflight *batch     // being written; nil between commits
	durable  message.ID // every message up to it is committed
	err      error      // why the last commit failed; nil once one succeeds
	closed   bool

	wake chan struct{} // cap 1: the queue has something
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the committer has returned

	// Owned by the committer.
	lost    message.ID // the newest id deleted, as written to the file
	commits atomic.Int64
	// broken: bbolt panicked inside a write transaction, which may hold
	// its locks: the file is not touched again, and Err says why.
	broken error

	// testCommit, when a test sets it, runs inside each write transaction
	// after its puts and deletes; an error aborts that commit as a disk
	// error would. A test hook only.
	testCommit atomic.Pointer[func() error]
}

var _ Store = (*Bolt)(nil)

// A batch is what one commit writes: the puts in id order, then deletes.
type batch struct {
	puts []*message.Message
	dels []message.ID
	last message.ID // the newest id in puts
	f    *flight    // done when this batch is committed or has failed
}

// A flight is one commit's outcome, for the Syncs waiting on it.
type flight struct {
	done chan struct{}
	err  error // set before done is closed
}

func newFlight() *flight { return &flight{done: make(chan struct{})} }

func (q *batch) empty() bool { return len(q.puts) == 0 && len(q.dels) == 0 }

// The file's layout: bucket "messages" maps an id, 16 bytes big-endian
// (Ms, Seq) so that keys sort in id order, to an encoded message; bucket
// "meta" holds "format" (formatVersion) and "lost", the newest id ever
// deleted (16 bytes), from which a restart knows what it cannot recover.
var (
	bucketMessages = []byte("messages")
	bucketMeta     = []byte("meta")
	keyFormat      = []byte("format")
	keyLost        = []byte("lost")
)

// formatVersion is the first byte of every record and the "format" value.
const formatVersion = 1

// openTimeout is how long OpenBolt waits for another process to let go of
// the file before it says the store is in use.
const openTimeout = 500 * time.Millisecond

// OpenBolt opens (or creates) the durable store in dir, keeping what lim
// allows. It loads every retained message into memory: queries never read
// the disk. A file it cannot read is an error wrapping ErrCorrupt that
// names the file; a file another process holds is an error too.
func OpenBolt(dir string, lim Limits) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("history: store directory: %w", err)
	}
	b := &Bolt{
		mem:  NewMemory(lim, nil),
		path: filepath.Join(dir, BoltFile),
		lim:  lim,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	b.queue.f = newFlight()
	b.mem.OnEvict(b.evicted)
	if err := b.load(); err != nil {
		return nil, err
	}
	db, err := openFile(b.path, &bolt.Options{
		Timeout: openTimeout,
		// NoFreelistSync stays false, though writing the freelist costs
		// each commit a page: without it bbolt rebuilds the freelist at
		// open by walking the file on a goroutine of its own, and on a
		// damaged file that walk crashes the process (bbolt v1.5.0
		// freepages panics on the first error it finds and closes the
		// transaction its walker still reads).
		//
		// The map freelist finds a run of free pages without scanning
		// the list, which matters once deletes free many pages.
		FreelistType: bolt.FreelistMapType,
		// NoGrowSync stays false: growing the file is rare (pages are
		// reused), and on ext4 the new size must be synced to survive.
	})
	if err != nil {
		return nil, err
	}
	b.db = db
	if err := db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketMessages); err != nil {
			return err
		}
		return meta.Put(keyFormat, []byte{formatVersion})
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("history: %s: %w", b.path, err)
	}
	go b.commitLoop()
	b.signal() // the deletes of what loading evicted
	return b, nil
}

// openFile opens the bbolt file, turning a panic in bbolt or a memory
// fault (a damaged or truncated file it did not detect) into an error.
func openFile(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, corrupt(path, fmt.Errorf("%v", p))
		}
	}()
	db, err = bolt.Open(path, 0o600, opts)
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("history: %s is in use by another process (is another msgbus running with this --store?)", path)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrVersionMismatch), isSizeError(err):
		return nil, corrupt(path, err)
	}
	return nil, fmt.Errorf("history: %s: %w", path, err)
}

// isSizeError: bbolt says a file too short to hold its meta pages only in
// words.
func isSizeError(err error) bool { return strings.Contains(err.Error(), "file size too small") }

func corrupt(path string, err error) error {
	return fmt.Errorf("%w: %s: %v; move the file away (history starts empty) or restore a copy", ErrCorrupt, path, err)
}

// load reads every message of the file, in id order, into the Memory,
// which applies the limits (its evictions queue deletes). It reads the
// file read-only, on this goroutine, turning a panic or a memory fault on
// a damaged page into an error, before bbolt opens it for writing.
func (b *Bolt) load() (err error) {
	st, err := os.Stat(b.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("history: %w", err)
	case st.Size() == 0:
		return nil // created, never written: bbolt initializes it
	}
	db, err := openFile(b.path, &bolt.Options{ReadOnly: true, Timeout: openTimeout})
	if err != nil {
		return err
	}
	defer db.Close()
	// A fault on a page past the end of a truncated file panics, here
	// only, rather than killing the process.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = corrupt(b.path, fmt.Errorf("%v", p))
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		if tx.Size() > st.Size() {
			return corrupt(b.path, fmt.Errorf("truncated: %d bytes, its pages need %d", st.Size(), tx.Size()))
		}
		meta, msgs := tx.Bucket(bucketMeta), tx.Bucket(bucketMessages)
		switch {
		case meta == nil && msgs == nil && isEmpty(tx):
			return nil // created, nothing written yet
		case meta == nil || msgs == nil:
			return corrupt(b.path, errors.New("not a msgbus history file"))
		}
		if v := meta.Get(keyFormat); len(v) != 1 || v[0] != formatVersion {
			return corrupt(b.path, fmt.Errorf("unknown format %x", v))
		}
		if v := meta.Get(keyLost); v != nil {
			id, ok := decodeKey(v)
			if !ok {
				return corrupt(b.path, fmt.Errorf("bad lost id %x", v))
			}
			b.lost = id
			// Messages up to lost were deleted: a resume from before
			// it may miss some. Without deletes the Memory's own floor,
			// the first id loaded, is right: nothing before it was here.
			b.mem.SetFloor(id)
		}
		last := b.lost
		c := msgs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			m, err := decode(k, v)
			if err != nil {
				return corrupt(b.path, fmt.Errorf("record %x: %w", k, err))
			}
			if !last.Less(m.ID) {
				return corrupt(b.path, fmt.Errorf("record %x out of order", k))
			}
			last = m.ID
			b.mem.Append(m)
		}
		b.mem.noteLast(last)
		b.durable = last
		return nil
	})
}

// isEmpty reports whether tx's file has no bucket at all.
func isEmpty(tx *bolt.Tx) bool {
	empty := true
	_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
	return empty
}

// Append implements Store: it keeps m in memory and queues it for the
// disk, without waiting. It refuses while the store is failing.
func (b *Bolt) Append(m *message.Message) error {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return errClosed
	case b.err != nil:
		err := b.err
		b.mu.Unlock()
		return err
	}
	if b.lim.Size > 0 { // with history off nothing is kept, on disk either
		b.queue.puts = append(b.queue.puts, m)
		b.queue.last = m.ID
	}
	b.mu.Unlock()
	// After queueing the put, so that a delete of m is always queued after
	// it: the Memory may evict m at once (larger than MaxBytes, or old).
	b.mem.Append(m)
	b.signal()
	return nil
}

// evicted is the Memory's eviction hook: it queues m's delete. The
// Memory's lock is held.
func (b *Bolt) evicted(m *message.Message) {
	b.mu.Lock()
	b.queue.dels = append(b.queue.dels, m.ID)
	b.mu.Unlock()
	// No signal: the put's or Expire's caller signals when done.
}

func (b *Bolt) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Sync implements Store: it waits until the commit that holds m is done
// and returns its error, wrapping ErrUnavailable, if it failed. A message
// the store does not keep (history off) returns at once.
func (b *Bolt) Sync(m *message.Message) error {
	b.mu.Lock()
	if !b.durable.Less(m.ID) {
		b.mu.Unlock()
		return nil
	}
	var f *flight
	switch {
	case b.inflight != nil && len(b.inflight.puts) > 0 && !b.inflight.last.Less(m.ID):
		f = b.inflight.f
	case len(b.queue.puts) > 0 && !b.queue.last.Less(m.ID):
		f = b.queue.f
	default:
		b.mu.Unlock()
		return nil // never queued: not kept
	}
	b.mu.Unlock()
	<-f.done
	return f.err
}

// commitLoop is the committer: it takes everything queued, writes it in
// one transaction, commits, and wakes the batch's Syncs; until Close.
func (b *Bolt) commitLoop() {
	defer close(b.done)
	var backoff time.Duration
	for {
		b.mu.Lock()
		for b.queue.empty() && !b.closed {
			b.mu.Unlock()
			select {
			case <-b.wake:
			case <-b.stop:
			}
			b.mu.Lock()
		}
		if b.queue.empty() { // closed, and all written
			b.mu.Unlock()
			return
		}
		b.gather()
		bt := b.queue
		b.queue = batch{f: newFlight()}
		b.inflight = &bt
		b.mu.Unlock()

		err := b.write(&bt)

		b.mu.Lock()
		b.inflight = nil
		if err == nil {
			if b.durable.Less(bt.last) {
				b.durable = bt.last
			}
			b.err = nil
		} else {
			err = fmt.Errorf("%w: %s: %w", ErrUnavailable, b.path, err)
			b.err = err
			// Retry the same puts and deletes first, in order.
			b.queue.puts = append(bt.puts, b.queue.puts...)
			b.queue.dels = append(bt.dels, b.queue.dels...)
			if b.queue.last.Less(bt.last) {
				b.queue.last = bt.last
			}
		}
		closed := b.closed
		b.mu.Unlock()
		bt.f.err = err
		close(bt.f.done)

		if err == nil {
			backoff = 0
			continue
		}
		if closed {
			b.mu.Lock()
			b.queue.f.err = err
			close(b.queue.f.done)
			b.mu.Unlock()
			return
		}
		backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-b.stop:
			t.Stop()
		}
	}
}

// gather lets the publishers that are ready to run append before the
// committer takes the queue. When a commit wakes its Syncs, their
// publishers append again within microseconds; a committer that took the
// queue at once would find only the first of them, commit it alone while
// the rest queue up, and so alternate small and large batches, halving
// what each commit carries. Yielding until the queue stops growing costs
// a lone publisher one yield, not a timer. b.mu is held.
func (b *Bolt) gather() {
	for range 8 {
		n := len(b.queue.puts)
		b.mu.Unlock()
		runtime.Gosched()
		b.mu.Lock()
		if len(b.queue.puts) == n {
			return
		}
	}
}

// write puts and deletes bt in one transaction and commits it. A panic in
// bbolt (a damaged page) breaks the store for good: restart to reopen it.
func (b *Bolt) write(bt *batch) (err error) {
	if b.broken != nil {
		return b.broken
	}
	defer func() {
		if p := recover(); p != nil {
			b.broken = fmt.Errorf("store file damaged (%v); restart to check it", p)
			err = b.broken
		}
	}()
	b.commits.Add(1)
	tx, err := b.db.Begin(true)
	if err != nil {
		return err
	}
	msgs := tx.Bucket(bucketMessages)
	// Keys come in increasing order: fill pages rather than split them
	// in half.
	msgs.FillPercent = 0.9
	// bbolt keeps the key and value slices until the commit: one slab
	// holds them all.
	n := 0
	for _, m := range bt.puts {
		n += 16 + encodedLen(m)
	}
	slab := make([]byte, 0, n+16*len(bt.dels)+16)
	for _, m := range bt.puts {
		at := len(slab)
		slab = appendKey(slab, m.ID)
		k := slab[at:]
		slab = appendRecord(slab, m)
		if err := msgs.Put(k, slab[at+16:]); err != nil {
			tx.Rollback()
			return err
		}
	}
	lost := b.lost
	for _, id := range bt.dels {
		at := len(slab)
		slab = appendKey(slab, id)
		if err := msgs.Delete(slab[at:]); err != nil {
			tx.Rollback()
			return err
		}
		if lost.Less(id) {
			lost = id
		}
	}
	if lost != b.lost {
		at := len(slab)
		slab = appendKey(slab, lost)
		if err := tx.Bucket(bucketMeta).Put(keyLost, slab[at:]); err != nil {
			tx.Rollback()
			return err
		}
	}
	if hook := b.testCommit.Load(); hook != nil {
		if err := (*hook)(); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	b.lost = lost
	return nil
}

// Replay implements Store.
func (b *Bolt) Replay(channel string, f *message.Filter, q ReplayQuery) Replay {
	return b.mem.Replay(channel, f, q)
}

// Page implements Store.
func (b *Bolt) Page(channel string, f *message.Filter, q PageQuery) Page {
	return b.mem.Page(channel, f, q)
}

// Recent implements Store.
func (b *Bolt) Recent(since time.Time) []*message.Message { return b.mem.Recent(since) }

// LastID implements Store: the newest id kept or deleted, across restarts.
func (b *Bolt) LastID() message.ID { return b.mem.LastID() }

// Stats implements Store.
func (b *Bolt) Stats() Stats { return b.mem.Stats() }

// Expire lets go of what has grown older than the TTL, in memory and then
// on disk. The engine calls it now and then.
func (b *Bolt) Expire() {
	b.mem.Expire()
	b.signal()
}

// Err implements Store: why the last commit failed (wrapping
// ErrUnavailable), until one succeeds; and after Close.
func (b *Bolt) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	return b.err
}

// Close implements Store: it commits what is queued, stops the committer
// and closes the file. A Sync still waiting gets the last commit's result.
func (b *Bolt) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	if b.broken != nil {
		return b.broken // bbolt may hold its locks: leave the file be
	}
	return b.db.Close()
}

// The record: formatVersion, then channel, type, sender and idempotency
// key, each a uvarint length and its bytes, the time as a varint of Unix
// nanoseconds, and the body to the end.

func encodedLen(m *message.Message) int {
	n := 1 + binary.MaxVarintLen64 + len(m.Body)
	for _, s := range [...]string{m.Channel, m.Type, m.Sender, m.Key} {
		n += binary.MaxVarintLen64 + len(s)
	}
	return n
}

func appendRecord(b []byte, m *message.Message) []byte {
	b = append(b, formatVersion)
	for _, s := range [...]string{m.Channel, m.Type, m.Sender, m.Key} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, m.Time.UnixNano())
	return append(b, m.Body...)
}

func appendKey(b []byte, id message.ID) []byte {
	b = binary.BigEndian.AppendUint64(b, id.Ms)
	return binary.BigEndian.AppendUint64(b, id.Seq)
}

func decodeKey(k []byte) (message.ID, bool) {
	if len(k) != 16 {
		return message.ID{}, false
	}
	return message.ID{Ms: binary.BigEndian.Uint64(k), Seq: binary.BigEndian.Uint64(k[8:])}, true
}

var errRecord = errors.New("malformed record")

// decode returns the message of key k and record v, copied out of the
// file's memory map.
func decode(k, v []byte) (*message.Message, error) {
	id, ok := decodeKey(k)
	if !ok || len(v) == 0 || v[0] != formatVersion {
		return nil, errRecord
	}
	v = v[1:]
	var strs [4]string
	for i := range strs {
		n, w := binary.Uvarint(v)
		if w <= 0 || n > uint64(len(v)-w) {
			return nil, errRecord
		}
		strs[i] = string(v[w : w+int(n)])
		v = v[w+int(n):]
	}
	ns, w := binary.Varint(v)
	if w <= 0 {
		return nil, errRecord
	}
	body := bytes.Clone(v[w:])
	return &message.Message{
		ID: id, Channel: strs[0], Type: strs[1], Sender: strs[2], Key: strs[3],
		Time: time.Unix(0, ns), Body: body,
	}, nil
}
