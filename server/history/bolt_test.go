package history

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
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

func openBolt(t testing.TB, dir string, lim Limits) *Bolt {
	t.Helper()
	b, err := OpenBolt(dir, lim)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func newPublisher(st Store) *publisher {
	p := &publisher{st: st}
	p.ids.Resume(st.LastID())
	return p
}

func msg(channel, body string) *message.Message {
	return &message.Message{Channel: channel, Type: "text/plain", Body: []byte(body)}
}

// diskIDs returns the ids in b's file, in order.
func diskIDs(t testing.TB, b *Bolt) []message.ID {
	t.Helper()
	var ids []message.ID
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMessages).ForEach(func(k, _ []byte) error {
			id, _ := decodeKey(k)
			ids = append(ids, id)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func all(st Store) []*message.Message {
	return st.Replay("", nil, ReplayQuery{Since: true}).Messages
}

func sameMessage(a, b *message.Message) bool {
	return a.ID == b.ID && a.Channel == b.Channel && a.Type == b.Type && a.Sender == b.Sender &&
		a.Key == b.Key && a.Time.Equal(b.Time) && bytes.Equal(a.Body, b.Body)
}

func TestBoltKeepsMessagesAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	lim := DefaultLimits()
	b := openBolt(t, dir, lim)
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

	b = openBolt(t, dir, lim)
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

func TestBoltIDsContinueAfterEverythingExpired(t *testing.T) {
	dir := t.TempDir()
	lim := Limits{Size: 10, TTL: time.Hour}
	b := openBolt(t, dir, lim)
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
	b = openBolt(t, dir, lim)
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

func TestBoltSyncWaitsForTheCommit(t *testing.T) {
	b := openBolt(t, t.TempDir(), DefaultLimits())
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
	if ids := diskIDs(t, b); len(ids) != 1 || ids[0] != m.ID {
		t.Fatalf("on disk after Sync: %v, want [%v]", ids, m.ID)
	}
	// A message already committed syncs at once.
	if err := b.Sync(m); err != nil {
		t.Fatal(err)
	}
}

func TestBoltConcurrentSyncsShareCommits(t *testing.T) {
	b := openBolt(t, t.TempDir(), DefaultLimits())
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
	if n := len(diskIDs(t, b)); n != writers*each {
		t.Errorf("%d messages on disk, want %d", n, writers*each)
	}
}

func TestBoltEvictionDeletesFromDisk(t *testing.T) {
	dir := t.TempDir()
	lim := Limits{Size: 2, TTL: time.Hour, MaxBytes: 1 << 20}
	b := openBolt(t, dir, lim)
	p := newPublisher(b)
	var ms []*message.Message
	for i := range 5 {
		m := msg("a", fmt.Sprint(i))
		ms = append(ms, m)
		if err := p.publish(m); err != nil {
			t.Fatal(err)
		}
	}
	// The last delete may be queued behind the last put's commit.
	if err := p.publish(msg("b", "flush")); err != nil {
		t.Fatal(err)
	}
	if ids := diskIDs(t, b); len(ids) != 3 || ids[0] != ms[3].ID || ids[1] != ms[4].ID {
		t.Fatalf("on disk: %v, want %v %v and b's", ids, ms[3].ID, ms[4].ID)
	}
	b.Close()

	// Lower limits at restart: loading evicts, and deletes.
	b = openBolt(t, dir, Limits{Size: 1, TTL: time.Hour, MaxBytes: 1 << 20})
	got := all(b)
	if len(got) != 2 || got[0].ID != ms[4].ID {
		t.Fatalf("after reopen with Size 1: %v", got)
	}
	if r := b.Replay("a", nil, ReplayQuery{Since: true, After: ms[1].ID}); r.Recovered {
		t.Errorf("resume from before deleted messages says recovered")
	}
	if r := b.Replay("a", nil, ReplayQuery{Since: true, After: ms[4].ID}); !r.Recovered {
		t.Errorf("resume from the newest says not recovered")
	}
	b.Close()
	b = openBolt(t, dir, Limits{Size: 1, TTL: time.Hour, MaxBytes: 1 << 20})
	if ids := diskIDs(t, b); len(ids) != 2 {
		t.Fatalf("the deletes of loading were not committed: %v", ids)
	}
}

func TestBoltExpireDeletesFromDisk(t *testing.T) {
	b := openBolt(t, t.TempDir(), Limits{Size: 10, TTL: 50 * time.Millisecond})
	p := newPublisher(b)
	if err := p.publish(msg("a", "x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	b.Expire()
	deadline := time.Now().Add(5 * time.Second)
	for len(diskIDs(t, b)) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("expired message still on disk")
		}
		time.Sleep(time.Millisecond)
	}
}

// fileSize returns the size of b's file.
func fileSize(t testing.TB, dir string) int64 {
	t.Helper()
	st, err := os.Stat(filepath.Join(dir, BoltFile))
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestBoltDiskStaysBounded fills a 1 MiB history 25 times over with
// bodies of 100 B to 40 KiB (some take overflow pages) and checks that the
// file stops growing: bbolt reuses the pages that deletes free.
//
// The bound: at most 1 MiB of message.Size is retained, so under 1 MiB of
// records; bbolt's leaves are at least half full after a rebalance, so
// the tree is under 2 MiB, plus pages freed by the last commits not yet
// reused; and bbolt grows the file by doubling its map up to 1 GiB. So
// 4 MiB.
func TestBoltDiskStaysBounded(t *testing.T) {
	dir := t.TempDir()
	lim := Limits{Size: 50, TTL: time.Hour, MaxBytes: 1 << 20}
	b := openBolt(t, dir, lim)
	p := newPublisher(b)
	body := bytes.Repeat([]byte("b"), 40<<10)
	const rounds, perRound = 25, 1000
	var sizes []int64
	for r := range rounds {
		var last *message.Message
		for i := range perRound {
			n := 100 + (i*37)%400
			if i%50 == 0 {
				n = 10<<10 + (i*131)%(30<<10)
			}
			last = &message.Message{Channel: fmt.Sprint("ch/", i%40), Body: body[:n]}
			if err := p.append(last); err != nil {
				t.Fatal(err)
			}
			if i%100 == 99 {
				if err := b.Sync(last); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := b.Sync(last); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, fileSize(t, dir))
		_ = r
	}
	t.Logf("file sizes after each 1000 messages: %v; retained %+v", sizes, b.Stats())
	const bound = 4 << 20
	if max := sizes[len(sizes)-1]; max > bound {
		t.Fatalf("file is %d bytes after %d messages, want at most %d", max, rounds*perRound, bound)
	}
	if sizes[len(sizes)-1] > sizes[4] {
		t.Errorf("file still growing: %d after round 5, %d after round %d", sizes[4], sizes[len(sizes)-1], rounds)
	}
}

func TestBoltDamagedFileIsAClearError(t *testing.T) {
	// A good file to damage.
	good := t.TempDir()
	b := openBolt(t, good, Limits{Size: 10_000, TTL: time.Hour, MaxBytes: 64 << 20})
	p := newPublisher(b)
	for i := range 2000 {
		if err := p.append(msg(fmt.Sprint("c/", i%7), strings.Repeat("y", i%300))); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	data, err := os.ReadFile(filepath.Join(good, BoltFile))
	if err != nil {
		t.Fatal(err)
	}
	pages := len(data) / 4096

	cases := map[string][]byte{
		"garbage":   bytes.Repeat([]byte("not a database "), 1000),
		"short":     data[:100],
		"truncated": data[:len(data)/3],
	}
	for _, pg := range []int{0, 1, 2, 3, pages / 2, pages - 1} {
		d := bytes.Clone(data)
		for i := pg * 4096; i < (pg+1)*4096 && i < len(d); i += 7 {
			d[i] ^= 0x5a
		}
		cases[fmt.Sprint("page ", pg)] = d
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, BoltFile), content, 0o600); err != nil {
				t.Fatal(err)
			}
			b, err := OpenBolt(dir, DefaultLimits())
			if err != nil {
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Join(dir, BoltFile)) {
					t.Errorf("error %q: want ErrCorrupt naming the file", err)
				}
				t.Log(err)
				return
			}
			// Damage bbolt could not see (a page no longer in use) is no
			// error; the store must work.
			defer b.Close()
			if err := newPublisher(b).publish(msg("a", "z")); err != nil {
				t.Errorf("publish on a store that opened: %v", err)
			}
		})
	}
}

func TestBoltFileInUseIsAClearError(t *testing.T) {
	dir := t.TempDir()
	openBolt(t, dir, DefaultLimits())
	_, err := OpenBolt(dir, DefaultLimits())
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second OpenBolt of one directory: %v, want in use", err)
	}
}

func TestBoltFailedCommitIsUnavailableUntilOneSucceeds(t *testing.T) {
	b := openBolt(t, t.TempDir(), DefaultLimits())
	p := newPublisher(b)
	diskFull := errors.New("no space left on device")
	hook := func() error { return diskFull }
	b.testCommit.Store(&hook)
	m := msg("a", "x")
	err := p.publish(m)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, diskFull) {
		t.Fatalf("publish on a full disk: %v, want ErrUnavailable and the cause", err)
	}
	if err := b.Err(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Err after a failed commit: %v", err)
	}
	if err := p.append(msg("a", "y")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Append while failing: %v", err)
	}
	b.testCommit.Store(nil) // space again: the committer's retry succeeds
	deadline := time.Now().Add(5 * time.Second)
	for b.Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("still failing after the disk recovered: %v", b.Err())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := b.Sync(m); err != nil {
		t.Fatalf("Sync of the retried message: %v", err)
	}
	if ids := diskIDs(t, b); len(ids) != 1 || ids[0] != m.ID {
		t.Fatalf("on disk after the retry: %v, want [%v]", ids, m.ID)
	}
	if err := p.publish(msg("a", "z")); err != nil {
		t.Fatal(err)
	}
}

func TestBoltClosedFileIsUnavailable(t *testing.T) {
	b := openBolt(t, t.TempDir(), DefaultLimits())
	p := newPublisher(b)
	b.db.Close() // the file goes away under the store
	if err := p.publish(msg("a", "x")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("publish on a closed file: %v, want ErrUnavailable", err)
	}
	if err := b.Err(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Err: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Logf("Close: %v", err)
	}
}

func TestBoltCloseCommitsWhatIsQueued(t *testing.T) {
	dir := t.TempDir()
	b := openBolt(t, dir, DefaultLimits())
	p := newPublisher(b)
	var ms []*message.Message
	for i := range 100 {
		m := msg("a", fmt.Sprint(i))
		ms = append(ms, m)
		if err := p.append(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if err := b.Sync(m); err != nil {
			t.Fatalf("Sync after Close: %v", err)
		}
	}
	if err := p.append(msg("a", "late")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Append after Close: %v", err)
	}
	b = openBolt(t, dir, DefaultLimits())
	if n := len(all(b)); n != 100 {
		t.Fatalf("%d messages after Close and reopen, want 100", n)
	}
}

func TestBoltHistoryOffKeepsNothing(t *testing.T) {
	b := openBolt(t, t.TempDir(), Limits{})
	p := newPublisher(b)
	if err := p.publish(msg("a", "x")); err != nil {
		t.Fatal(err)
	}
	if ids := diskIDs(t, b); len(ids) != 0 {
		t.Fatalf("history off wrote %v", ids)
	}
}

// BenchmarkBoltPublish: durable publishes/s with 1, 4, 16 and 64
// concurrent publishers, each Append under one lock (the order lock) then Sync.
// History is full (Size 100 on 64 channels, MaxBytes 1 MiB) so every
// commit also deletes, as on a busy server.
func BenchmarkBoltPublish(b *testing.B) {
	body := bytes.Repeat([]byte("m"), 200)
	for _, writers := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprint("publishers=", writers), func(b *testing.B) {
			st := openBolt(b, b.TempDir(), Limits{Size: 100, TTL: time.Hour, MaxBytes: 1 << 20})
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
	st := openBolt(b, b.TempDir(), Limits{Size: 20_000, TTL: time.Hour, MaxBytes: 64 << 20})
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

// BenchmarkBoltOpen10k: a restart's load of 10,000 messages from disk.
func BenchmarkBoltOpen10k(b *testing.B) {
	dir := b.TempDir()
	lim := Limits{Size: 20_000, TTL: time.Hour, MaxBytes: 64 << 20}
	st, err := OpenBolt(dir, lim)
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
		st, err := OpenBolt(dir, lim)
		if err != nil {
			b.Fatal(err)
		}
		if st.LastID() != last.ID {
			b.Fatal("not loaded")
		}
		st.Close()
	}
}

// TestBoltFullDiskIsUnavailableThenRecovers fills a real filesystem: a
// 4 MiB tmpfs, mounted for the test. It needs root and changes the
// machine's mounts, so it runs only with MSGBUS_TEST_TMPFS=1.
func TestBoltFullDiskIsUnavailableThenRecovers(t *testing.T) {
	if os.Getenv("MSGBUS_TEST_TMPFS") != "1" {
		t.Skip("set MSGBUS_TEST_TMPFS=1 (as root) to fill a tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	dir := filepath.Join(mnt, "store")
	b := openBolt(t, dir, Limits{Size: 1_000_000, TTL: time.Hour, MaxBytes: 1 << 30})
	p := newPublisher(b)
	// Leave about 300 KiB free.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 3<<20+700<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	var kept []*message.Message
	var err error
	for i := 0; i < 10_000 && err == nil; i++ {
		m := msg("a", strings.Repeat("f", 1000))
		if err = p.publish(m); err == nil {
			kept = append(kept, m)
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
	deadline := time.Now().Add(5 * time.Second)
	for b.Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("still failing after space came back: %v", b.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.publish(msg("a", "after")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = openBolt(t, dir, Limits{Size: 1_000_000, TTL: time.Hour, MaxBytes: 1 << 30})
	if n := len(all(b)); n < len(kept)+1 {
		t.Fatalf("%d messages after reopen, want at least %d", n, len(kept)+1)
	}
}

// TestBoltKill9KeepsSyncedMessages runs a publisher in a child process,
// kills it with SIGKILL mid-stream, and checks that every message whose
// Sync returned before the kill is in the reopened store with its id.
func TestBoltKill9KeepsSyncedMessages(t *testing.T) {
	if dir := os.Getenv("MSGBUS_KILL9_DIR"); dir != "" {
		kill9Child(dir) // never returns
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBoltKill9KeepsSyncedMessages$")
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

	b := openBolt(t, dir, Limits{Size: 1_000_000, TTL: time.Hour, MaxBytes: 1 << 30})
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
	b, err := OpenBolt(dir, Limits{Size: 1_000_000, TTL: time.Hour, MaxBytes: 1 << 30})
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
