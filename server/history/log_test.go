package history

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgbus/msgbus/server/message"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// publisher stands in for the engine: ids and Append under one lock (the
// hub's order lock), then Sync outside it.
type publisher struct {
	mu  sync.Mutex
	ids message.IDGen
	st  Store
}

// append stamps m and appends it, as the engine does under its order lock.
func (p *publisher) append(m *message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if m.Time.IsZero() {
		m.Time = now
	}
	m.ID = p.ids.Next(now)
	return p.st.Append(m)
}

// publish appends m and waits for it to be durable.
func (p *publisher) publish(m *message.Message) error {
	if err := p.append(m); err != nil {
		return err
	}
	return p.st.Sync(m)
}

func openLog(t testing.TB, dir string, lim Limits) *Log {
	t.Helper()
	return openLogSized(t, dir, lim, segmentBytes(lim))
}

// openLogSized opens a log whose segments are seg bytes, so that a test
// fills many with little.
func openLogSized(t testing.TB, dir string, lim Limits, seg int64) *Log {
	t.Helper()
	l, err := openWithSegments(dir, lim, seg)
	if err != nil {
		t.Fatalf("OpenLog: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func newPublisher(st Store) *publisher {
	p := &publisher{st: st}
	p.ids.Resume(st.LastID())
	return p
}

func msg(channel, body string) *message.Message {
	return &message.Message{Channel: channel, Type: "text/plain", Body: []byte(body)}
}

// diskIDs returns the ids of the messages in dir's segments, each once, in
// id order: what a restart reads, before the limits and the mark.
func diskIDs(t testing.TB, dir string) []message.ID {
	t.Helper()
	seqs, err := segmentFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[message.ID]bool{}
	var ids []message.ID
	for _, seq := range seqs {
		data, err := os.ReadFile(segmentPath(dir, seq))
		if err != nil {
			t.Fatal(err)
		}
		scanFrames(data, false, func(m *message.Message) {
			if !seen[m.ID] {
				seen[m.ID] = true
				ids = append(ids, m.ID)
			}
		}, func(mark) {})
	}
	slices.SortFunc(ids, func(a, b message.ID) int {
		if a.Less(b) {
			return -1
		}
		return 1
	})
	return ids
}

// dirBytes returns the bytes of the files in dir.
func dirBytes(t testing.TB, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		st, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

// segments returns how many segment files dir holds.
func segments(t testing.TB, dir string) int {
	t.Helper()
	seqs, err := segmentFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(seqs)
}

func all(st Store) []*message.Message {
	return st.Replay("", nil, ReplayQuery{Since: true}).Messages
}

func sameMessage(a, b *message.Message) bool {
	return a.ID == b.ID && a.Channel == b.Channel && a.Type == b.Type && a.Sender == b.Sender &&
		a.Key == b.Key && a.Time.Equal(b.Time) && bytes.Equal(a.Body, b.Body)
}

func TestLogKeepsMessagesAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	lim := DefaultLimits()
	b := openLog(t, dir, lim)
	p := newPublisher(b)
	want := []*message.Message{
		{Channel: "a", Type: "text/plain", Body: []byte("one")},
		{Channel: "a/b", Type: "application/octet-stream", Sender: "alice", Body: []byte{0, 1, 0xff, '\n'}},
		{Channel: "c", Type: "", Key: "retry-1", Body: nil},
		{Channel: "a/b/c", Type: "text/plain; charset=utf-8", Sender: "bob", Key: "k", Body: bytes.Repeat([]byte("x"), 70_000)},
	}
	for _, m := range want {
		if err := p.publish(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openLog(t, dir, lim)
	got := all(b)
	if len(got) != len(want) {
		t.Fatalf("reopened: %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameMessage(got[i], want[i]) {
			t.Errorf("message %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if got, want := b.LastID(), want[len(want)-1].ID; got != want {
		t.Errorf("LastID = %v, want %v", got, want)
	}
	if r := b.Recent(time.Now().Add(-time.Minute)); len(r) != 2 || r[0].Key != "retry-1" || r[1].Key != "k" {
		t.Errorf("Recent after reopen: %v", r)
	}
	if r := b.Replay("a", nil, ReplayQuery{Since: true, After: want[0].ID}); !r.Recovered || len(r.Messages) != 2 {
		t.Errorf("resume after reopen: recovered %v, %d messages; want true, 2", r.Recovered, len(r.Messages))
	}
	// Ids go on after the reopened store's.
	p = newPublisher(b)
	m := msg("a", "after")
	if err := p.publish(m); err != nil {
		t.Fatal(err)
	}
	if !want[len(want)-1].ID.Less(m.ID) {
		t.Errorf("id after reopen %v is not after %v", m.ID, want[len(want)-1].ID)
	}
}

func TestLogIDsContinueAfterEverythingExpired(t *testing.T) {
	dir := t.TempDir()
	lim := Limits{Size: 10, TTL: time.Hour}
	b := openLog(t, dir, lim)
	p := newPublisher(b)
	for i := range 3 {
		m := msg("a", fmt.Sprint(i))
		m.Time = time.Now().Add(-2 * time.Hour) // expired as soon as kept
		if err := p.publish(m); err != nil {
			t.Fatal(err)
		}
	}
	last := b.LastID()
	b.Close()
	b = openLog(t, dir, lim)
	if n := len(all(b)); n != 0 {
		t.Fatalf("%d messages after reopen, want 0", n)
	}
	if got := b.LastID(); got != last {
		t.Errorf("LastID = %v, want %v (the newest deleted)", got, last)
	}
	if r := b.Replay("a", nil, ReplayQuery{Since: true, After: last}); !r.Recovered {
		t.Errorf("resume from the newest id: not recovered, though nothing after it was lost")
	}
}

func TestLogSyncWaitsForTheCommit(t *testing.T) {
	dir := t.TempDir()
	b := openLog(t, dir, DefaultLimits())
	p := newPublisher(b)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	hook := func() error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return nil
	}
	b.testCommit.Store(&hook)
	m := msg("a", "x")
	if err := p.append(m); err != nil {
		t.Fatal(err)
	}
	synced := make(chan error, 1)
	go func() { synced <- b.Sync(m) }()
	<-entered
	select {
	case err := <-synced:
		t.Fatalf("Sync returned %v before the commit", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	b.testCommit.Store(nil)
	if ids := diskIDs(t, dir); len(ids) != 1 || ids[0] != m.ID {
		t.Fatalf("on disk after Sync: %v, want [%v]", ids, m.ID)
	}
	// A message already committed syncs at once.
	if err := b.Sync(m); err != nil {
		t.Fatal(err)
	}
}

func TestLogConcurrentSyncsShareCommits(t *testing.T) {
	dir := t.TempDir()
	b := openLog(t, dir, DefaultLimits())
	p := newPublisher(b)
	const writers, each = 32, 40
	var wg sync.WaitGroup
	before := b.commits.Load()
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := p.publish(msg(fmt.Sprint("c", w), fmt.Sprint(i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	commits := b.commits.Load() - before
	t.Logf("%d durable publishes in %d commits", writers*each, commits)
	if commits > writers*each/4 {
		t.Errorf("%d commits for %d concurrent publishes: want them shared", commits, writers*each)
	}
	if n := len(diskIDs(t, dir)); n != writers*each {
		t.Errorf("%d messages on disk, want %d", n, writers*each)
	}
}

func TestLogEvictedMessagesStayEvictedAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	lim := Limits{Size: 2, TTL: time.Hour, MaxBytes: 1 << 20}
	l := openLog(t, dir, lim)
	p := newPublisher(l)
	var ms []*message.Message
	for i := range 5 {
		m := msg("a", fmt.Sprint(i))
		ms = append(ms, m)
		if err := p.publish(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.publish(msg("b", "other")); err != nil {
		t.Fatal(err)
	}
	l.Close()

	l = openLog(t, dir, lim)
	if got := all(l); len(got) != 3 || got[0].ID != ms[3].ID || got[1].ID != ms[4].ID {
		t.Fatalf("after reopen: %v, want %v %v and b's", got, ms[3].ID, ms[4].ID)
	}
	l.Close()

	// Lower limits at restart: loading evicts.
	l = openLog(t, dir, Limits{Size: 1, TTL: time.Hour, MaxBytes: 1 << 20})
	got := all(l)
	if len(got) != 2 || got[0].ID != ms[4].ID {
		t.Fatalf("after reopen with Size 1: %v", got)
	}
	if r := l.Replay("a", nil, ReplayQuery{Since: true, After: ms[1].ID}); r.Recovered {
		t.Errorf("resume from before evicted messages says recovered")
	}
	if r := l.Replay("a", nil, ReplayQuery{Since: true, After: ms[4].ID}); !r.Recovered {
		t.Errorf("resume from the newest says not recovered")
	}
	l.Close()

	// Raised again: what was evicted stays evicted (the mark says so).
	l = openLog(t, dir, Limits{Size: 10, TTL: time.Hour, MaxBytes: 1 << 20})
	if got := all(l); len(got) != 2 || got[0].ID != ms[4].ID {
		t.Fatalf("after reopen with Size 10: %v, want only %v and b's", got, ms[4].ID)
	}
}

func TestLogExpiredMessagesAreGoneAfterReopen(t *testing.T) {
	dir := t.TempDir()
	lim := Limits{Size: 10, TTL: time.Hour}
	l := openLog(t, dir, lim)
	p := newPublisher(l)
	old := msg("a", "old")
	old.Time = time.Now().Add(-2 * time.Hour)
	if err := p.publish(old); err != nil {
		t.Fatal(err)
	}
	fresh := msg("a", "fresh")
	if err := p.publish(fresh); err != nil {
		t.Fatal(err)
	}
	l.Expire()
	l.Close()
	l = openLog(t, dir, lim)
	if got := all(l); len(got) != 1 || got[0].ID != fresh.ID {
		t.Fatalf("after reopen: %v, want only %v", got, fresh.ID)
	}
}

// TestLogRestartKeepsIDsAndLostFloorWhenAllExpired: every message expired
// and every segment that held one deleted; the newest segment's mark
// still says where ids go on and what a resume cannot recover.
func TestLogRestartKeepsIDsAndLostFloorWhenAllExpired(t *testing.T) {
	dir := t.TempDir()
	lim := Limits{Size: 1000, TTL: time.Hour, MaxBytes: 64 << 20}
	l := openLogSized(t, dir, lim, 16<<10)
	p := newPublisher(l)
	body := strings.Repeat("e", 1000)
	var first *message.Message
	for i := range 200 { // about 12 segments
		m := msg("a", body)
		m.Time = time.Now().Add(-2 * time.Hour)
		if err := p.publish(m); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = m
		}
	}
	last := l.LastID()
	l.Close()
	if n := segments(t, dir); n != 1 {
		t.Errorf("%d segments left after every message expired, want 1 (the active one)", n)
	}
	l = openLogSized(t, dir, lim, 16<<10)
	if n := len(all(l)); n != 0 {
		t.Fatalf("%d messages after reopen, want 0", n)
	}
	if got := l.LastID(); got != last {
		t.Errorf("LastID = %v, want %v", got, last)
	}
	if r := l.Replay("a", nil, ReplayQuery{Since: true, After: last}); !r.Recovered {
		t.Errorf("resume from the newest id: not recovered, though nothing after it was lost")
	}
	if r := l.Replay("a", nil, ReplayQuery{Since: true, After: first.ID}); r.Recovered {
		t.Errorf("resume from the first id: recovered, though everything after it expired")
	}
	m := msg("a", "next")
	p = newPublisher(l)
	if err := p.publish(m); err != nil {
		t.Fatal(err)
	}
	if !last.Less(m.ID) {
		t.Errorf("id after reopen %v is not after %v", m.ID, last)
	}
	// Roll on: the newest segment's marks still carry the first run's
	// lost id, though this run evicted nothing.
	for range 100 {
		if err := p.publish(msg("b", body)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	seqs, _ := segmentFiles(dir)
	data, err := os.ReadFile(segmentPath(dir, seqs[len(seqs)-1]))
	if err != nil {
		t.Fatal(err)
	}
	var newest mark
	scanFrames(data, false, func(*message.Message) {}, func(k mark) { newest = k })
	if newest.lost != last {
		t.Errorf("the newest segment's last mark says lost %v, want the first run's %v", newest.lost, last)
	}
	l = openLogSized(t, dir, lim, 16<<10)
	if r := l.Replay("a", nil, ReplayQuery{Since: true, After: last}); !r.Recovered || len(r.Messages) != 1 {
		t.Errorf("resume from the first run's newest id after a second restart: recovered %v, %d messages; want true, 1", r.Recovered, len(r.Messages))
	}
}

// TestLogDiskStaysBounded publishes 20 times the retained bytes (1 MiB,
// bodies of 100 B to 40 KiB on 40 channels) and checks the directory: the
// log compacts to at most twice what is retained plus two segments, plus
// the active one and what a compaction in progress has not yet freed.
func TestLogDiskStaysBounded(t *testing.T) {
	dir := t.TempDir()
	lim := Limits{Size: 50, TTL: time.Hour, MaxBytes: 1 << 20}
	l := openLog(t, dir, lim)
	p := newPublisher(l)
	body := bytes.Repeat([]byte("b"), 40<<10)
	published := 0
	for i := 0; published < 20*int(lim.MaxBytes); i++ {
		n := 100 + (i*37)%400
		if i%50 == 0 {
			n = 10<<10 + (i*131)%(30<<10)
		}
		m := &message.Message{Channel: fmt.Sprint("ch/", i%40), Body: body[:n]}
		if err := p.publish(m); err != nil {
			t.Fatal(err)
		}
		published += m.Size()
	}
	l.Close()
	seg := segmentBytes(lim)
	bound := 2*lim.MaxBytes + 2*seg + seg + l.copyBudget()
	size := dirBytes(t, dir)
	t.Logf("%d bytes published, directory %d bytes in %d segments (bound %d)", published, size, segments(t, dir), bound)
	if size > bound {
		t.Fatalf("directory is %d bytes after %d bytes published with 1 MiB retained, want at most %d", size, published, bound)
	}
}

// TestLogCopyForwardKeepsPinnedMessages: a quiet channel's messages keep
// the oldest segments alive while a busy one fills many; they are copied
// forward, the old segments deleted, and a restart has them with their
// ids.
func TestLogCopyForwardKeepsPinnedMessages(t *testing.T) {
	dir := t.TempDir()
	lim := Limits{Size: 20, TTL: time.Hour, MaxBytes: 64 << 20}
	const seg = 32 << 10
	l := openLogSized(t, dir, lim, seg)
	p := newPublisher(l)
	var quiet []*message.Message
	for i := range 5 {
		m := msg("quiet", fmt.Sprint("q", i))
		quiet = append(quiet, m)
		if err := p.publish(m); err != nil {
			t.Fatal(err)
		}
	}
	body := strings.Repeat("x", 500)
	for range 2000 { // about 1 MiB: 30 segments, 20 messages retained
		if err := p.publish(msg("busy", body)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if n := segments(t, dir); n > 4 {
		t.Errorf("%d segments, want the old ones compacted away", n)
	}
	if ids := diskIDs(t, dir); ids[0] != quiet[0].ID {
		t.Errorf("the oldest message on disk is %v, want the quiet %v", ids[0], quiet[0].ID)
	}
	l = openLogSized(t, dir, lim, seg)
	r := l.Replay("quiet", nil, ReplayQuery{Since: true, After: message.ID{}})
	if len(r.Messages) != len(quiet) {
		t.Fatalf("quiet channel after compaction and reopen: %d messages, want %d", len(r.Messages), len(quiet))
	}
	for i, m := range r.Messages {
		if !sameMessage(m, quiet[i]) {
			t.Errorf("quiet message %d: got %+v, want %+v", i, m, quiet[i])
		}
	}
	if n := len(l.Replay("busy", nil, ReplayQuery{Since: true}).Messages); n != 20 {
		t.Errorf("busy channel after reopen: %d messages, want 20", n)
	}
}

// TestLogReopenRestoresWhatWasRetained publishes on channels of very
// different rates and sizes, so that segments roll, empty, get pinned and
// compacted, and reopens the log now and then: each time it retains
// exactly what it retained before, no evicted message comes back, and the
// directory stays bounded.
func TestLogReopenRestoresWhatWasRetained(t *testing.T) {
	dir := t.TempDir()
	lim := Limits{Size: 5, TTL: time.Hour, MaxBytes: 64 << 10}
	const seg = 16 << 10
	l := openLogSized(t, dir, lim, seg)
	body := bytes.Repeat([]byte("r"), 3000)
	n := 0
	var largest int64
	defer func() { t.Logf("directory at most %d bytes", largest) }()
	for round := range 15 {
		p := newPublisher(l)
		for range 300 {
			n++
			ch := fmt.Sprint("c/", n%7) // busy
			if n%53 == 0 {
				ch = fmt.Sprint("quiet/", n%3)
			}
			if err := p.append(&message.Message{Channel: ch, Body: body[:50+(n*97)%2950]}); err != nil {
				t.Fatal(err)
			}
		}
		before := all(l)
		l.Close()
		// Twice what is retained, two segments, the active one, and one
		// more that a compaction has not yet emptied.
		size := dirBytes(t, dir)
		largest = max(largest, size)
		if size > 2*lim.MaxBytes+4*seg {
			t.Errorf("round %d: directory %d bytes for %d retained, in %d segments", round, size, lim.MaxBytes, segments(t, dir))
		}
		l = openLogSized(t, dir, lim, seg)
		after := all(l)
		if len(after) != len(before) {
			t.Fatalf("round %d: %d messages after reopen, %d before", round, len(after), len(before))
		}
		for i := range before {
			if !sameMessage(after[i], before[i]) {
				t.Fatalf("round %d: message %d is %v after reopen, was %v", round, i, after[i].ID, before[i].ID)
			}
		}
	}
}

// TestLogCrashBetweenCopyAndDeleteKeepsOneCopy: a segment whose messages
// were copied forward but which a crash left behind is read twice; each
// id is loaded once.
func TestLogCrashBetweenCopyAndDeleteKeepsOneCopy(t *testing.T) {
	dir := t.TempDir()
	lim := DefaultLimits()
	l := openLog(t, dir, lim)
	p := newPublisher(l)
	var ms []*message.Message
	for i := range 10 {
		m := msg("a", fmt.Sprint(i))
		ms = append(ms, m)
		if err := p.publish(m); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	// The same frames again in a newer segment, as a copy forward writes.
	data, err := os.ReadFile(segmentPath(dir, 1))
	if err != nil {
		t.Fatal(err)
	}
	var copyData []byte
	scanFrames(data, false, func(m *message.Message) { copyData = appendMessageFrame(copyData, m) }, func(mark) {})
	if err := os.WriteFile(segmentPath(dir, 2), copyData, 0o600); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, lim)
	got := all(l)
	if len(got) != len(ms) {
		t.Fatalf("%d messages, want %d", len(got), len(ms))
	}
	for i := range ms {
		if !sameMessage(got[i], ms[i]) {
			t.Errorf("message %d: %+v, want %+v", i, got[i], ms[i])
		}
	}
}

// writeSegments fills dir with a log of n messages over several segments
// of seg bytes, and returns them.
func writeSegments(t *testing.T, dir string, n int, seg int64) []*message.Message {
	t.Helper()
	l := openLogSized(t, dir, Limits{Size: 10_000, TTL: time.Hour, MaxBytes: 64 << 20}, seg)
	p := newPublisher(l)
	var ms []*message.Message
	for i := range n {
		m := msg(fmt.Sprint("c/", i%7), strings.Repeat("y", i%300))
		ms = append(ms, m)
		if err := p.publish(m); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	return ms
}

func TestLogDamagedSegmentIsAClearError(t *testing.T) {
	good := t.TempDir()
	writeSegments(t, good, 500, 32<<10)
	seqs, _ := segmentFiles(good)
	if len(seqs) < 3 {
		t.Fatalf("%d segments, want several", len(seqs))
	}
	first := segmentPath(good, seqs[0])
	data, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(at int) []byte {
		d := bytes.Clone(data)
		d[at] ^= 0x20
		return d
	}
	cases := map[string][]byte{
		"garbage":       bytes.Repeat([]byte("not a segment "), 1000),
		"bit in a body": flip(len(data) / 2),
		"bit in a crc":  flip(4),
		"length":        flip(0),
		"cut mid-frame": data[:len(data)/3],
		"zeroed middle": append(append(bytes.Clone(data[:len(data)/2]), make([]byte, 100)...), data[len(data)/2+100:]...),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for _, seq := range seqs {
				d, _ := os.ReadFile(segmentPath(good, seq))
				if seq == seqs[0] {
					d = content
				}
				if err := os.WriteFile(segmentPath(dir, seq), d, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			l, err := OpenLog(dir, DefaultLimits())
			if err == nil {
				l.Close()
				t.Fatal("opened a log whose sealed segment is damaged")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), segmentPath(dir, seqs[0])) ||
				!strings.Contains(err.Error(), "move") {
				t.Errorf("error %q: want ErrCorrupt naming the file and what to do", err)
			}
			t.Log(err)
		})
	}
}

// TestLogTornTailIsCutAndTheRestKept: a crash mid-commit leaves part of a
// frame at the end of the newest segment: it is cut off, every whole
// frame before it is kept, and the log goes on (also once that segment
// is sealed).
func TestLogTornTailIsCutAndTheRestKept(t *testing.T) {
	for name, tail := range map[string]func(frame []byte) []byte{
		"half a frame":   func(f []byte) []byte { return f[:len(f)/2] },
		"bad crc":        func(f []byte) []byte { f = bytes.Clone(f); f[len(f)-1] ^= 1; return f },
		"header only":    func(f []byte) []byte { return f[:frameHeader] },
		"three bytes":    func(f []byte) []byte { return f[:3] },
		"gap then frame": func(f []byte) []byte { return append(make([]byte, 4096), f...) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			const seg = 32 << 10
			ms := writeSegments(t, dir, 20, seg)
			seqs, _ := segmentFiles(dir)
			path := segmentPath(dir, seqs[len(seqs)-1])
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			end, err := scanFrames(data, true, func(*message.Message) {}, func(mark) {})
			if err != nil {
				t.Fatal(err)
			}
			torn := msg("c/0", "never acknowledged")
			torn.ID = message.ID{Ms: ms[len(ms)-1].ID.Ms + 1}
			torn.Time = time.Now()
			copy(data[end:], tail(appendMessageFrame(nil, torn)))
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}

			lim := Limits{Size: 10_000, TTL: time.Hour, MaxBytes: 64 << 20}
			l := openLogSized(t, dir, lim, seg)
			// What lies past zeros is not read, but cut off all the same.
			if info := l.Loaded(); name != "gap then frame" && (info.TornFile != path || info.TornAt != end) {
				t.Errorf("Loaded() = %+v, want the torn tail of %s at %d", info, path, end)
			}
			got := all(l)
			if len(got) != len(ms) || got[len(got)-1].ID != ms[len(ms)-1].ID {
				t.Fatalf("%d messages after the torn tail, want the %d whole ones", len(got), len(ms))
			}
			// Go on past the cut, across segments.
			p := newPublisher(l)
			for i := range 200 {
				m := msg("c/1", strings.Repeat("z", 200+i))
				if err := p.publish(m); err != nil {
					t.Fatal(err)
				}
				ms = append(ms, m)
			}
			l.Close()
			l = openLogSized(t, dir, lim, seg)
			if info := l.Loaded(); info.TornFile != "" {
				t.Errorf("a torn tail again after a clean close: %+v", info)
			}
			if got := all(l); len(got) != len(ms) {
				t.Fatalf("%d messages after going on, want %d", len(got), len(ms))
			}
		})
	}
}

func TestLogFileInUseIsAClearError(t *testing.T) {
	dir := t.TempDir()
	openLog(t, dir, DefaultLimits())
	_, err := OpenLog(dir, DefaultLimits())
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second OpenLog of one directory: %v, want in use", err)
	}
}

func TestLogRefusesABboltStore(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "history.db"), []byte("bbolt"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenLog(dir, DefaultLimits())
	if err == nil || !strings.Contains(err.Error(), "history.db") || !strings.Contains(err.Error(), "move it") {
		t.Fatalf("OpenLog beside a bbolt file: %v, want an error saying to move it away", err)
	}
}

func TestLogFailedCommitIsUnavailableUntilOneSucceeds(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, DefaultLimits())
	p := newPublisher(l)
	diskFull := errors.New("no space left on device")
	hook := func() error { return diskFull }
	l.testCommit.Store(&hook)
	m := msg("a", "x")
	err := p.publish(m)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, diskFull) {
		t.Fatalf("publish on a full disk: %v, want ErrUnavailable and the cause", err)
	}
	if err := l.Err(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Err after a failed commit: %v", err)
	}
	if err := p.append(msg("a", "y")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Append while failing: %v", err)
	}
	l.testCommit.Store(nil) // space again: the committer's retry succeeds
	if err := l.Sync(m); err != nil {
		t.Fatalf("Sync of the retried message: %v", err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("Err after a retry succeeded: %v", err)
	}
	if ids := diskIDs(t, dir); len(ids) != 1 || ids[0] != m.ID {
		t.Fatalf("on disk after the retry: %v, want [%v]", ids, m.ID)
	}
	if err := p.publish(msg("a", "z")); err != nil {
		t.Fatal(err)
	}
}

// TestLogFullDiskAtANewSegmentIsUnavailableThenRecovers: the disk fills
// when the active segment is full and a new one cannot be made; publishes
// are refused, nothing acknowledged is lost, and the log goes on once a
// segment can be made again.
func TestLogFullDiskAtANewSegmentIsUnavailableThenRecovers(t *testing.T) {
	dir := t.TempDir()
	lim := Limits{Size: 100_000, TTL: time.Hour, MaxBytes: 1 << 30}
	l := openLogSized(t, dir, lim, 16<<10)
	p := newPublisher(l)
	first := msg("a", "first") // makes the first segment
	if err := p.publish(first); err != nil {
		t.Fatal(err)
	}
	diskFull := errors.New("no space left on device")
	hook := func() error { return diskFull }
	l.testRoll.Store(&hook)
	kept := []*message.Message{first}
	var failed *message.Message
	for failed == nil {
		m := msg("a", strings.Repeat("f", 500))
		if err := p.publish(m); err != nil {
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, diskFull) {
				t.Fatalf("publish on a full disk: %v, want ErrUnavailable and the cause", err)
			}
			failed = m
			break
		}
		kept = append(kept, m)
	}
	if err := p.append(msg("a", "refused")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Append while the disk is full: %v", err)
	}
	l.testRoll.Store(nil)
	for i := 0; l.Sync(failed) != nil; i++ { // each waits for one retry
		if i == 20 {
			t.Fatalf("still failing once a segment can be made: %v", l.Err())
		}
	}
	if err := p.publish(msg("a", "after")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLogSized(t, dir, lim, 16<<10)
	have := map[message.ID]bool{}
	for _, m := range all(l) {
		have[m.ID] = true
	}
	for _, m := range append(kept, failed) {
		if !have[m.ID] {
			t.Fatalf("message %v lost across the full disk", m.ID)
		}
	}
}

func TestLogClosedFileIsUnavailable(t *testing.T) {
	l := openLog(t, t.TempDir(), DefaultLimits())
	p := newPublisher(l)
	if err := p.publish(msg("a", "first")); err != nil {
		t.Fatal(err)
	}
	hook := func() error { l.active().f.Close(); return nil } // the file goes away under the store
	l.testCommit.Store(&hook)
	if err := p.publish(msg("a", "x")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("publish on a closed file: %v, want ErrUnavailable", err)
	}
	if err := l.Err(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Err: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Logf("Close: %v", err)
	}
}

func TestLogCloseCommitsWhatIsQueued(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, DefaultLimits())
	p := newPublisher(l)
	var ms []*message.Message
	for i := range 100 {
		m := msg("a", fmt.Sprint(i))
		ms = append(ms, m)
		if err := p.append(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if err := l.Sync(m); err != nil {
			t.Fatalf("Sync after Close: %v", err)
		}
	}
	if err := p.append(msg("a", "late")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Append after Close: %v", err)
	}
	l = openLog(t, dir, DefaultLimits())
	if n := len(all(l)); n != 100 {
		t.Fatalf("%d messages after Close and reopen, want 100", n)
	}
}

func TestLogHistoryOffKeepsNothing(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Limits{})
	p := newPublisher(l)
	if err := p.publish(msg("a", "x")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if n := segments(t, dir); n != 0 {
		t.Fatalf("history off wrote %d segments", n)
	}
}

// BenchmarkLogPublish: durable publishes/s with 1, 4, 16 and 64
// concurrent publishers, each Append under one lock (the order lock) then Sync.
// History is full (Size 100 on 64 channels, MaxBytes 1 MiB) so every
// commit also evicts, and segments roll and are deleted, as on a busy
// server.
func BenchmarkLogPublish(b *testing.B) {
	body := bytes.Repeat([]byte("m"), 200)
	for _, writers := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprint("publishers=", writers), func(b *testing.B) {
			st := openLog(b, b.TempDir(), Limits{Size: 100, TTL: time.Hour, MaxBytes: 1 << 20})
			p := newPublisher(st)
			for i := range 5000 { // a full history
				if err := p.append(&message.Message{Channel: fmt.Sprint("c/", i%64), Body: body}); err != nil {
					b.Fatal(err)
				}
			}
			commits := st.commits.Load()
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range writers {
				n := b.N / writers
				if w < b.N%writers {
					n++
				}
				wg.Go(func() {
					for i := range n {
						m := &message.Message{Channel: fmt.Sprint("c/", (w*7+i)%64), Body: body}
						if err := p.publish(m); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
			b.ReportMetric(float64(b.N)/float64(st.commits.Load()-commits), "msgs/commit")
		})
	}
}

// BenchmarkReplay10k: one resume that replays 10,000 messages.
func BenchmarkReplay10k(b *testing.B) {
	st := openLog(b, b.TempDir(), Limits{Size: 20_000, TTL: time.Hour, MaxBytes: 64 << 20})
	p := newPublisher(st)
	var first *message.Message
	for i := range 10_001 {
		m := &message.Message{Channel: "room/" + fmt.Sprint(i%10), Type: "text/plain", Body: bytes.Repeat([]byte("r"), 100)}
		if err := p.append(m); err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			first = m
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		r := st.Replay("room", nil, ReplayQuery{Since: true, After: first.ID})
		if len(r.Messages) != 10_000 || !r.Recovered {
			b.Fatalf("replayed %d, recovered %v", len(r.Messages), r.Recovered)
		}
	}
}

// BenchmarkLogOpen10k: a restart's load of 10,000 messages from disk.
func BenchmarkLogOpen10k(b *testing.B) {
	dir := b.TempDir()
	lim := Limits{Size: 20_000, TTL: time.Hour, MaxBytes: 64 << 20}
	st, err := OpenLog(dir, lim)
	if err != nil {
		b.Fatal(err)
	}
	p := newPublisher(st)
	var last *message.Message
	for i := range 10_000 {
		last = &message.Message{Channel: "room/" + fmt.Sprint(i%10), Type: "text/plain", Body: bytes.Repeat([]byte("r"), 100)}
		if err := p.append(last); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	b.ReportAllocs()
	for b.Loop() {
		st, err := OpenLog(dir, lim)
		if err != nil {
			b.Fatal(err)
		}
		if st.LastID() != last.ID {
			b.Fatal("not loaded")
		}
		st.Close()
	}
}

// TestLogFullDiskIsUnavailableThenRecovers fills a real filesystem: a
// 4 MiB tmpfs, mounted for the test. It needs root and changes the
// machine's mounts, so it runs only with MSGBUS_TEST_TMPFS=1.
func TestLogFullDiskIsUnavailableThenRecovers(t *testing.T) {
	if os.Getenv("MSGBUS_TEST_TMPFS") != "1" {
		t.Skip("set MSGBUS_TEST_TMPFS=1 (as root) to fill a tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	dir := filepath.Join(mnt, "store")
	lim := Limits{Size: 1_000_000, TTL: time.Hour, MaxBytes: 1 << 30}
	b := openLogSized(t, dir, lim, 64<<10) // preallocated: full when a new one fails
	p := newPublisher(b)
	// Leave about 300 KiB free.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 3<<20+700<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	var kept []*message.Message
	var failed *message.Message
	var err error
	for i := 0; i < 10_000 && err == nil; i++ {
		m := msg("a", strings.Repeat("f", 1000))
		if err = p.publish(m); err == nil {
			kept = append(kept, m)
		} else {
			failed = m
		}
	}
	t.Logf("full after %d publishes: %v", len(kept), err)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("publish on a full disk: %v, want ErrUnavailable, no space left", err)
	}
	if b.Err() == nil {
		t.Fatal("Err is nil on a full disk")
	}
	os.Remove(filler)
	// Each Sync of the refused message waits for one retry.
	for i := 0; b.Sync(failed) != nil; i++ {
		if i == 20 {
			t.Fatalf("still failing after space came back: %v", b.Err())
		}
	}
	if err := p.publish(msg("a", "after")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = openLogSized(t, dir, lim, 64<<10)
	if n := len(all(b)); n < len(kept)+1 {
		t.Fatalf("%d messages after reopen, want at least %d", n, len(kept)+1)
	}
}

// TestLogKill9KeepsSyncedMessages runs a publisher in a child process,
// kills it with SIGKILL mid-stream, and checks that every message whose
// Sync returned before the kill is in the reopened store with its id.
func TestLogKill9KeepsSyncedMessages(t *testing.T) {
	if dir := os.Getenv("MSGBUS_KILL9_DIR"); dir != "" {
		kill9Child(dir) // never returns
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLogKill9KeepsSyncedMessages$")
	cmd.Env = append(os.Environ(), "MSGBUS_KILL9_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []message.ID
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 3000 {
		id, err := message.ParseID(sc.Text())
		if err != nil {
			t.Fatalf("child said %q", sc.Text())
		}
		acked = append(acked, id)
	}
	cmd.Process.Kill() // SIGKILL
	for sc.Scan() {    // what was acknowledged before the kill landed
		if id, err := message.ParseID(sc.Text()); err == nil {
			acked = append(acked, id)
		}
	}
	cmd.Wait()
	if len(acked) < 3000 {
		t.Fatalf("child acknowledged only %d messages", len(acked))
	}

	b := openLog(t, dir, Limits{Size: 1_000_000, TTL: time.Hour, MaxBytes: 1 << 30})
	have := make(map[message.ID]bool)
	for _, m := range all(b) {
		have[m.ID] = true
	}
	for _, id := range acked {
		if !have[id] {
			t.Fatalf("message %v was synced before the kill and is gone (%d acknowledged, %d kept)", id, len(acked), len(have))
		}
	}
	t.Logf("%d acknowledged, %d kept after kill -9", len(acked), len(have))
}

// kill9Child publishes from 8 goroutines until killed, printing each id
// once its Sync has returned.
func kill9Child(dir string) {
	b, err := OpenLog(dir, Limits{Size: 1_000_000, TTL: time.Hour, MaxBytes: 1 << 30})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	p := newPublisher(b)
	var out sync.Mutex
	for w := range 8 {
		go func() {
			for i := 0; ; i++ {
				m := msg(fmt.Sprint("c/", w), fmt.Sprint(i))
				if err := p.publish(m); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				out.Lock()
				fmt.Println(m.ID)
				out.Unlock()
			}
		}()
	}
	select {}
}
