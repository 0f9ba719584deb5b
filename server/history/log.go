package history

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgbus/msgbus/server/message"
)

// ErrCorrupt is wrapped by OpenLog's error when a segment cannot be read
// back: the message names the file and what to do about it.
var ErrCorrupt = errors.New("history: store file is damaged")

// errClosed: the store was closed.
var errClosed = fmt.Errorf("%w: store closed", ErrUnavailable)

// DefaultSegmentBytes is the largest size of a segment file. OpenLog makes
// them a quarter of Limits.MaxBytes, between 1 MiB and this, so that the
// active segment, which is never deleted, costs little beside the history.
const DefaultSegmentBytes = 16 << 20

const (
	minSegmentBytes = 1 << 20
	segmentExt      = ".seg"
	lockName        = "lock"
	// boltFile is the bbolt store of msgbus before the log; it is not
	// read, and OpenLog refuses a directory holding one.
	boltFile = "history.db"
)

// Log is the durable store: a Memory that answers every query, in front
// of an append-only log of segment files that holds every retained
// message, so history and ids survive a restart or a kill -9 (PROTOCOL.md
// §6, "Durable store").
//
// Append only queues a message for the disk; one committer goroutine
// writes everything queued, and a mark (frame.go), with one write at the
// end of the active segment and makes it durable with one fdatasync, then
// wakes every Sync waiting on those messages. Concurrent publishers thus
// share one commit, and a lone publisher waits for exactly one: no timer
// gathers a batch (see gather). Segments are preallocated, so that
// fdatasync has no file size to journal, and a new one is started (with a
// directory sync) when the active one is full.
//
// Nothing is deleted record by record: an eviction only lowers the count
// of retained messages of the segment that holds the message, and a
// segment left with none is deleted. Segments that a few old messages keep
// alive (a quiet channel's last message) are compacted: once the log is
// more than twice what is retained plus two segments, the live messages of
// the emptiest segment are copied forward, with their ids, and it is
// deleted. So the disk stays within a small factor of the history limits.
//
// A restart reads every segment (checking every frame's CRC), keeps the
// newest copy of each id, and appends them in id order to the Memory,
// which re-applies the limits. The newest mark says which messages were
// already evicted, so they do not come back: every one before its keep
// id; after it only Size evicts, and the same Size evicts them again (a
// restart with a larger Size may bring back a few of those whose segment
// is still on disk). Its lost id, the newest ever evicted, is the Memory's
// floor, as the bbolt store's was: a resume from before it after a
// restart says not recovered.
//
// A failed commit (a full disk, a closed file) makes Err return an error
// wrapping ErrUnavailable, and Append refuse, until a later commit of the
// same messages succeeds: the committer retries, backing off to once a
// second. It writes them again at the same offset, so a torn attempt
// leaves nothing behind.
type Log struct {
	mem      *Memory
	dir      string
	lim      Limits
	segBytes int64
	lock     *os.File // holds the directory's lock while open

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

	// Owned by the committer, and by OpenLog before it starts it.
	segs    []*segment                // oldest first; the last is the active one
	where   map[*message.Message]loc  // each retained message's newest copy
	early   map[*message.Message]bool // evicted before its put was written
	dirty   bool                      // evictions since the last mark written
	loaded  mark                      // the newest mark at open, carried on
	victim  *segment                  // being compacted
	copies  []*message.Message        // victim's live messages, still to copy
	buf     []byte                    // the commit being encoded
	ends    []int                     // where each of its frames ends
	segOf   []*segment                // and in which segment
	info    LoadInfo
	commits atomic.Int64

	// testCommit, when a test sets it, runs before each commit's write;
	// an error aborts that commit as a disk error would. testRoll runs
	// before a new segment is created; an error fails it as a full disk
	// would. Test hooks only.
	testCommit atomic.Pointer[func() error]
	testRoll   atomic.Pointer[func() error]
}

var _ Store = (*Log)(nil)

// A segment is one file of the log.
type segment struct {
	seq   uint64
	path  string
	f     *os.File // the active segment's; nil once sealed
	size  int64    // bytes of frames
	limit int64    // the active segment takes frames up to this size
	live  int      // retained messages whose newest copy is here
	bytes int64    // their frames' bytes
	// stuck: removing the file failed; tried again after each commit,
	// but no commit is made for it.
	stuck bool
}

// loc is where a retained message's newest copy is.
type loc struct {
	seg *segment
	n   int64 // its frame's length
}

// A batch is what one commit takes: the puts in id order, and the
// evictions.
type batch struct {
	puts []*message.Message
	dels []*message.Message
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

// LoadInfo is what OpenLog found on disk.
type LoadInfo struct {
	Segments int // segment files read
	Messages int // retained after the limits were applied
	// TornFile is set when the newest segment ended in a frame that does
	// not check out: a commit cut short by a crash, never acknowledged.
	// It was cut off at TornAt, the end of the last good frame.
	TornFile string
	TornAt   int64
}

// OpenLog opens (or creates) the durable store in dir, keeping what lim
// allows. It loads every retained message into memory: queries never read
// the disk. A damaged segment is an error wrapping ErrCorrupt that names
// the file; a directory another process holds is an error too, and so is
// one holding the bbolt file of an older msgbus.
func OpenLog(dir string, lim Limits) (*Log, error) {
	return openWithSegments(dir, lim, segmentBytes(lim))
}

func segmentBytes(lim Limits) int64 {
	if lim.MaxBytes <= 0 {
		return DefaultSegmentBytes
	}
	return min(max(lim.MaxBytes/4, minSegmentBytes), DefaultSegmentBytes)
}

func openWithSegments(dir string, lim Limits, segBytes int64) (*Log, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("history: store directory: %w", err)
	}
	if old := filepath.Join(dir, boltFile); fileExists(old) {
		return nil, fmt.Errorf("history: %s is the store of an older msgbus (bbolt), which this one cannot read; move it out of %s (history starts empty)", old, dir)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		return nil, fmt.Errorf("history: %s is in use by another process (is another msgbus running with this --store?)", dir)
	}
	l := &Log{
		mem:      NewMemory(lim, nil),
		dir:      dir,
		lim:      lim,
		segBytes: segBytes,
		lock:     lock,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		where:    make(map[*message.Message]loc),
		early:    make(map[*message.Message]bool),
	}
	l.queue.f = newFlight()
	l.mem.OnEvict(l.evicted)
	if err := l.load(); err != nil {
		l.closeFiles()
		return nil, err
	}
	go l.commitLoop()
	l.signal() // what loading evicted, and empty segments
	return l, nil
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func segmentPath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", seq, segmentExt))
}

// segmentFiles returns the numbers of dir's segments, in order.
func segmentFiles(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if len(name) != 20+len(segmentExt) || filepath.Ext(name) != segmentExt {
			continue
		}
		var seq uint64
		if _, err := fmt.Sscanf(name, "%020d"+segmentExt, &seq); err != nil || segmentPath(dir, seq) != filepath.Join(dir, name) {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

func corrupt(path string, err error) error {
	return fmt.Errorf("%w: %s: %v; move the file away (its messages are lost) or the whole directory (history starts empty), or restore a copy", ErrCorrupt, path, err)
}

// load reads every segment, keeps the newest copy of each id, and appends
// the messages in id order to the Memory, which applies the limits (its
// evictions queue for the committer). A frame that does not check out, or
// anything but zeros after the last frame, is damage in a sealed segment,
// and a crash's torn write at the end of the newest one, which is cut off.
func (l *Log) load() error {
	seqs, err := segmentFiles(l.dir)
	if err != nil {
		return err
	}
	type found struct {
		m   *message.Message
		seg *segment
	}
	var all []found
	var mk mark
	for i, seq := range seqs {
		s := &segment{seq: seq, path: segmentPath(l.dir, seq)}
		newest := i == len(seqs)-1
		end, size, err := readSegment(s.path, !newest, func(m *message.Message) { all = append(all, found{m, s}) }, mk.merge)
		var ferr *frameError
		switch {
		case errors.As(err, &ferr) && !newest:
			return corrupt(s.path, err)
		case errors.As(err, &ferr):
			l.info.TornFile, l.info.TornAt = s.path, end
		case err != nil:
			return fmt.Errorf("history: %w", err)
		}
		s.size, s.limit = end, size
		l.segs = append(l.segs, s)
	}
	l.info.Segments = len(seqs)
	// Copies forward come after the original: keep the last of each id.
	slices.SortStableFunc(all, func(a, b found) int {
		switch {
		case a.m.ID.Less(b.m.ID):
			return -1
		case b.m.ID.Less(a.m.ID):
			return 1
		}
		return 0
	})
	if !mk.lost.IsZero() {
		// Messages up to lost were evicted: a resume from before it may
		// miss some. Without evictions the Memory's own floor, the first
		// id loaded, is right: nothing before it was here.
		l.mem.SetFloor(mk.lost)
	}
	for i, f := range all {
		if i+1 < len(all) && all[i+1].m.ID == f.m.ID {
			continue // an older copy
		}
		if f.m.ID.Less(mk.keep) {
			continue // evicted before the newest mark
		}
		if l.lim.Size > 0 { // history off: nothing is retained
			n := int64(frameLen(f.m))
			l.where[f.m] = loc{f.seg, n}
			f.seg.live++
			f.seg.bytes += n
		}
		l.mem.Append(f.m)
	}
	l.mem.noteLast(mk.last)
	l.loaded = mk
	l.durable = l.mem.LastID()
	l.info.Messages = l.mem.Stats().Messages
	if len(l.segs) > 0 {
		return l.reopen(l.segs[len(l.segs)-1])
	}
	return nil
}

// readSegment reads the frames of the segment file at path, as
// scanFrames does, and returns where they end and the file's size. It
// reads a sealed segment (strict) to its end, the newest only to the end
// of its frames: reopen cuts off whatever follows them.
func readSegment(path string, strict bool, message func(*message.Message), mark func(mark)) (end, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	end, err = readFrames(f, st.Size(), message, mark)
	if err != nil || !strict || end == st.Size() {
		return end, st.Size(), err
	}
	rest, err := io.ReadAll(io.NewSectionReader(f, end, st.Size()-end))
	if err != nil {
		return end, st.Size(), err
	}
	if i := bytes.IndexFunc(rest, func(r rune) bool { return r != 0 }); i >= 0 {
		return end, st.Size(), &frameError{end + int64(i), errTrailing}
	}
	return end, st.Size(), nil
}

// reopen makes s, the newest segment, the active one: commits go on after
// its last good frame. Whatever follows that frame (a torn write, or
// parts of one that reached the disk out of order beyond zeros) is cut
// off first, and made durable so, lest it turn up between frames later;
// then the segment is preallocated again.
func (l *Log) reopen(s *segment) error {
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	s.limit = max(s.size, l.segBytes)
	if err = f.Truncate(s.size); err == nil {
		if err = preallocate(f, s.limit); err == nil {
			err = f.Sync()
		}
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("history: %s: %w", s.path, err)
	}
	s.f = f
	return nil
}

func (l *Log) active() *segment {
	if len(l.segs) == 0 {
		return nil
	}
	return l.segs[len(l.segs)-1]
}

// Loaded returns what OpenLog found: a torn write it cut off is worth a
// line in the log.
func (l *Log) Loaded() LoadInfo { return l.info }

// Append implements Store: it keeps m in memory and queues it for the
// disk, without waiting. It refuses while the store is failing.
func (l *Log) Append(m *message.Message) error {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return errClosed
	case l.err != nil:
		err := l.err
		l.mu.Unlock()
		return err
	}
	if l.lim.Size > 0 { // with history off nothing is kept, on disk either
		l.queue.puts = append(l.queue.puts, m)
		l.queue.last = m.ID
	}
	l.mu.Unlock()
	// After queueing the put, so that m's eviction is always queued after
	// it: the Memory may evict m at once (larger than MaxBytes, or old).
	l.mem.Append(m)
	l.signal()
	return nil
}

// evicted is the Memory's eviction hook: it queues m's eviction for the
// committer. The Memory's lock is held.
func (l *Log) evicted(m *message.Message) {
	l.mu.Lock()
	l.queue.dels = append(l.queue.dels, m)
	l.mu.Unlock()
	// No signal: the put's or Expire's caller signals when done.
}

func (l *Log) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Sync implements Store: it waits until the commit that holds m is done
// and returns its error, wrapping ErrUnavailable, if it failed. A message
// the store does not keep (history off) returns at once.
func (l *Log) Sync(m *message.Message) error {
	l.mu.Lock()
	if !l.durable.Less(m.ID) {
		l.mu.Unlock()
		return nil
	}
	var f *flight
	switch {
	case l.inflight != nil && len(l.inflight.puts) > 0 && !l.inflight.last.Less(m.ID):
		f = l.inflight.f
	case len(l.queue.puts) > 0 && !l.queue.last.Less(m.ID):
		f = l.queue.f
	default:
		l.mu.Unlock()
		return nil // never queued: not kept
	}
	l.mu.Unlock()
	<-f.done
	return f.err
}

// commitLoop is the committer: it takes everything queued, commits it,
// wakes the batch's Syncs, then deletes the segments left empty; until
// Close, when it commits what is queued, finishes a compaction, and
// writes a last mark.
func (l *Log) commitLoop() {
	defer close(l.done)
	var backoff time.Duration
	for {
		l.mu.Lock()
		for l.queue.empty() && !l.closed && !l.pending() {
			l.mu.Unlock()
			select {
			case <-l.wake:
			case <-l.stop:
			}
			l.mu.Lock()
		}
		if len(l.queue.puts) > 0 {
			l.gather()
		}
		final := l.closed && l.queue.empty() && !l.pending()
		bt := l.queue
		l.queue = batch{f: newFlight()}
		l.inflight = &bt
		l.mu.Unlock()

		wrote, err := l.commit(&bt, final)

		l.mu.Lock()
		l.inflight = nil
		if err == nil {
			if l.durable.Less(bt.last) {
				l.durable = bt.last
			}
			l.err = nil
		} else {
			err = fmt.Errorf("%w: %s: %w", ErrUnavailable, l.dir, err)
			l.err = err
			// Retry the same puts first, in order. Evictions were counted.
			l.queue.puts = append(bt.puts, l.queue.puts...)
			if l.queue.last.Less(bt.last) {
				l.queue.last = bt.last
			}
		}
		closed := l.closed
		l.mu.Unlock()
		bt.f.err = err
		close(bt.f.done)

		if err == nil {
			backoff = 0
			if wrote {
				l.removeEmpty()
				l.pickVictim()
			}
			if final {
				return
			}
			continue
		}
		if closed {
			l.mu.Lock()
			l.queue.f.err = err
			close(l.queue.f.done)
			l.mu.Unlock()
			return
		}
		backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-l.stop:
			t.Stop()
		}
	}
}

// pending reports whether the committer has work of its own: segments to
// delete (after a mark) or to compact.
func (l *Log) pending() bool { return l.victim != nil || l.emptySegments() }

func (l *Log) emptySegments() bool {
	for _, s := range l.segs[:max(len(l.segs)-1, 0)] {
		if s.live == 0 && !s.stuck {
			return true
		}
	}
	return false
}

// gather lets the publishers that are ready to run append before the
// committer takes the queue. When a commit wakes its Syncs, their
// publishers append again within microseconds; a committer that took the
// queue at once would find only the first of them, commit it alone while
// the rest queue up, and so alternate small and large batches, halving
// what each commit carries. Yielding until the queue stops growing costs
// a lone publisher one yield, not a timer. l.mu is held.
func (l *Log) gather() {
	for range 8 {
		n := len(l.queue.puts)
		l.mu.Unlock()
		runtime.Gosched()
		l.mu.Lock()
		if len(l.queue.puts) == n {
			return
		}
	}
}

// copyBudget bounds the bytes of messages one commit copies forward, so
// compaction adds little to any publisher's wait.
func (l *Log) copyBudget() int64 { return max(l.segBytes/8, 256<<10) }

// commit counts bt's evictions, then writes bt's messages, the next
// messages to copy forward and a mark in one write at the end of the
// active segment and makes them durable with one datasync (two of each
// when they fill it and go on in a new one). It writes nothing when there is nothing to write: no
// message, no segment to delete, and (unless final) only evictions. It
// reports whether it wrote.
func (l *Log) commit(bt *batch, final bool) (bool, error) {
	for _, m := range bt.dels {
		if at, ok := l.where[m]; ok {
			delete(l.where, m)
			at.seg.live--
			at.seg.bytes -= at.n
		} else {
			l.early[m] = true // its put comes in this commit or a retry
		}
		l.dirty = true
	}
	bt.dels = nil
	copies, scanned := l.nextCopies()
	if l.victim != nil && len(copies) == 0 {
		l.victim, l.copies, scanned = nil, nil, 0 // nothing left to copy
	}
	if len(bt.puts) == 0 && len(copies) == 0 && !l.emptySegments() && !(final && l.dirty) {
		return false, nil
	}

	buf, ends := l.buf[:0], l.ends[:0] // ends: where each frame ends in buf
	for _, m := range bt.puts {
		buf = appendMessageFrame(buf, m)
		ends = append(ends, len(buf))
	}
	for _, m := range copies {
		buf = appendMessageFrame(buf, m)
		ends = append(ends, len(buf))
	}
	// Read after the evictions above were queued: the mark covers them,
	// so the segments they empty may go once it is on disk.
	mk := l.mem.marks()
	mk.merge(l.loaded) // the Memory's lost starts over at a restart
	buf = appendMarkFrame(buf, mk)
	ends = append(ends, len(buf))
	l.buf, l.ends = buf[:0], ends[:0]
	if cap(buf) > 4<<20 {
		l.buf, l.ends = nil, nil // one large commit does not pin its buffer
	}
	if hook := l.testCommit.Load(); hook != nil {
		if err := (*hook)(); err != nil {
			return false, err
		}
	}
	l.commits.Add(1)

	// The frames go to the active segment; those that do not fit, to
	// the next (one write and one datasync each: a commit spans two
	// segments only when it rolls). A segment is never larger than
	// segBytes unless one frame is.
	segOf := l.segOf[:0] // the segment of each frame
	defer func() { clear(segOf); l.segOf = segOf[:0] }()
	from := 0
	for len(segOf) < len(ends) {
		i := len(segOf)
		a := l.active()
		hdr := 0
		if a != nil && a.size == 0 {
			hdr = frameHeader + markLen // every segment starts with a mark
		}
		j := i
		for a != nil && j < len(ends) && a.size+int64(hdr+ends[j]-from) <= a.limit {
			j++
		}
		if j == i {
			if err := l.roll(int64(ends[i] - from + frameHeader + markLen)); err != nil {
				return false, err
			}
			continue
		}
		out := buf[from:ends[j-1]]
		if hdr > 0 {
			out = append(appendMarkFrame(make([]byte, 0, hdr+len(out)), mk), out...)
		}
		if _, err := a.f.WriteAt(out, a.size); err != nil {
			return false, err
		}
		if err := datasync(a.f); err != nil {
			return false, err
		}
		a.size += int64(len(out))
		if a.limit > l.segBytes {
			// Made larger for one frame: the next commit rolls, so that
			// it is sealed, and compacted like any other.
			a.limit = a.size
		}
		for range j - i {
			segOf = append(segOf, a)
		}
		from = ends[j-1]
	}

	for i, m := range bt.puts {
		if l.early[m] {
			delete(l.early, m)
			continue
		}
		n := int64(frameLen(m))
		l.where[m] = loc{segOf[i], n}
		segOf[i].live++
		segOf[i].bytes += n
	}
	for i, m := range copies {
		a := segOf[len(bt.puts)+i]
		old := l.where[m]
		old.seg.live--
		old.seg.bytes -= old.n
		l.where[m] = loc{a, old.n}
		a.live++
		a.bytes += old.n
	}
	l.copies = l.copies[scanned:]
	if l.victim != nil && len(l.copies) == 0 {
		l.victim = nil // now empty, deleted by removeEmpty
	}
	l.dirty = false
	return true, nil
}

// roll seals the active segment and starts a new one of at least need
// bytes. The sealed one is cut to its frames and synced first, so that no
// sealed segment ends in anything but frames (a failed write may have left
// a torn one past them); the new file is preallocated, and it and the
// directory are synced, before any commit is written to it. On error the
// active segment stays the active one.
func (l *Log) roll(need int64) error {
	a := l.active()
	limit := max(l.segBytes, need)
	if a != nil && a.size == 0 { // empty: grow it rather than leave it
		if err := preallocate(a.f, limit); err != nil {
			return err
		}
		if err := a.f.Sync(); err != nil {
			return err
		}
		a.limit = limit
		return nil
	}
	if a != nil {
		// Sealed first: should the new segment fail, the active one
		// takes frames past its (now cut) preallocation.
		if err := a.f.Truncate(a.size); err != nil {
			return err
		}
		if err := a.f.Sync(); err != nil {
			return err
		}
		a.limit = a.size
	}
	if hook := l.testRoll.Load(); hook != nil {
		if err := (*hook)(); err != nil {
			return err
		}
	}
	seq := uint64(1)
	if a != nil {
		seq = a.seq + 1
	}
	s := &segment{seq: seq, path: segmentPath(l.dir, seq), limit: limit}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = preallocate(f, limit)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(l.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(s.path)
		return err
	}
	if a != nil {
		a.f.Close()
		a.f = nil
	}
	s.f = f
	l.segs = append(l.segs, s)
	return nil
}

// nextCopies returns the next of the victim's messages to copy forward,
// within copyBudget, and how many of l.copies they used up.
func (l *Log) nextCopies() ([]*message.Message, int) {
	var out []*message.Message
	budget := l.copyBudget()
	i := 0
	for ; i < len(l.copies) && budget > 0; i++ {
		m := l.copies[i]
		if at, ok := l.where[m]; ok && at.seg == l.victim {
			out = append(out, m)
			budget -= at.n
		}
	}
	return out, i
}

// removeEmpty deletes the sealed segments that hold no retained message,
// after a commit whose mark says their messages were evicted.
func (l *Log) removeEmpty() {
	kept := l.segs[:0]
	removed := false
	for i, s := range l.segs {
		if i == len(l.segs)-1 || s.live > 0 {
			kept = append(kept, s)
			continue
		}
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.stuck = true
			kept = append(kept, s)
			continue
		}
		if s == l.victim {
			l.victim, l.copies = nil, nil
		}
		removed = true
	}
	clear(l.segs[len(kept):])
	l.segs = kept
	if removed {
		// A removal lost to a crash only brings back evicted messages the
		// mark skips at the next load.
		syncDir(l.dir)
	}
}

// pickVictim starts compacting when the log has grown past twice what it
// retains plus two segments: the sealed segment with the smallest share
// of live bytes (under half, then) has its messages copied forward, a
// budget per commit, and is deleted.
func (l *Log) pickVictim() {
	if l.victim != nil || len(l.segs) < 2 {
		return
	}
	var total, live int64
	for _, s := range l.segs {
		total += s.size
		live += s.bytes
	}
	if total <= 2*live+2*l.segBytes {
		return
	}
	var v *segment
	for _, s := range l.segs[:len(l.segs)-1] {
		if s.live > 0 && (v == nil || s.bytes*v.size < v.bytes*s.size) {
			v = s
		}
	}
	if v == nil {
		return
	}
	l.victim, l.copies = v, l.copies[:0]
	for m, at := range l.where {
		if at.seg == v {
			l.copies = append(l.copies, m)
		}
	}
	slices.SortFunc(l.copies, func(a, b *message.Message) int {
		if a.ID.Less(b.ID) {
			return -1
		}
		return 1
	})
}

// Replay implements Store.
func (l *Log) Replay(channel string, f *message.Filter, q ReplayQuery) Replay {
	return l.mem.Replay(channel, f, q)
}

// Page implements Store.
func (l *Log) Page(channel string, f *message.Filter, q PageQuery) Page {
	return l.mem.Page(channel, f, q)
}

// Recent implements Store.
func (l *Log) Recent(since time.Time) []*message.Message { return l.mem.Recent(since) }

// LastID implements Store: the newest id kept or evicted, across restarts.
func (l *Log) LastID() message.ID { return l.mem.LastID() }

// Stats implements Store.
func (l *Log) Stats() Stats { return l.mem.Stats() }

// Expire lets go of what has grown older than the TTL, in memory and then
// on disk. The engine calls it now and then.
func (l *Log) Expire() {
	l.mem.Expire()
	l.signal()
}

// Err implements Store: why the last commit failed (wrapping
// ErrUnavailable), until one succeeds; and after Close.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errClosed
	}
	return l.err
}

// Close implements Store: it commits what is queued and a last mark,
// stops the committer and closes the files. A Sync still waiting gets the
// last commit's result.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	return l.closeFiles()
}

func (l *Log) closeFiles() error {
	var err error
	for _, s := range l.segs {
		if s.f != nil {
			if cerr := s.f.Close(); err == nil && !errors.Is(cerr, os.ErrClosed) {
				err = cerr
			}
			s.f = nil
		}
	}
	if cerr := l.lock.Close(); err == nil {
		err = cerr
	}
	return err
}
