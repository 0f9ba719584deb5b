package main

// Several msgbus processes on one real redis-server (PROTOCOL.md §7):
// one bus, one order, one id space, across nodes, through Redis faults.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgbus/msgbus/client"
	"github.com/msgbus/msgbus/server/engine/redis/redistest"
)

// startNodes starts n msgbus nodes on one Redis.
func startNodes(t *testing.T, n int, redisURL string, extra ...string) []*proc {
	t.Helper()
	var nodes []*proc
	for range n {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		args := append([]string{"-l", addr, "-m", "production", "--log-level", "error", "--redis", redisURL,
			"--history-size", "100000", "--resume-max", "100000"}, extra...)
		nodes = append(nodes, startMsgbus(t, addr, binary, args...))
	}
	return nodes
}

// A reader is one subscriber's view of a stream: the bodies (and ids,
// where the format has them) in the order they came.
type reader struct {
	name string
	mu   sync.Mutex
	msgs []client.Message
	more chan struct{} // cap 1: a message came
	err  error
}

func newReader(name string) *reader { return &reader{name: name, more: make(chan struct{}, 1)} }

func (r *reader) add(m client.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *reader) fail(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

// waitFor waits until the reader has n messages, failing after d.
func (r *reader) waitFor(t *testing.T, n int, d time.Duration) []client.Message {
	t.Helper()
	deadline := time.After(d)
	for {
		r.mu.Lock()
		got, err := slices.Clone(r.msgs), r.err
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if err != nil {
			t.Fatalf("%s: %v after %d messages", r.name, err, len(got))
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("%s: %d messages after %v, want %d", r.name, len(got), d, n)
		}
	}
}

// readSSE reads an event stream on addr+path into r until ctx ends.
func readSSE(ctx context.Context, t *testing.T, addr, path string, r *reader) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("SSE %s: %s", path, resp.Status)
	}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var m client.Message
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m.ID != "" {
					r.add(m)
				}
				m = client.Message{}
			case strings.HasPrefix(line, "id: "):
				m.ID = line[4:]
			case strings.HasPrefix(line, "data: "):
				m.Body = []byte(line[6:])
			}
		}
		if ctx.Err() == nil {
			r.fail(fmt.Errorf("SSE stream ended: %v", sc.Err()))
		}
	}()
}

// readSub reads a client Subscription into r until ctx ends.
func readSub(ctx context.Context, s interface {
	Next(context.Context) (client.Message, error)
}, r *reader) {
	go func() {
		for {
			m, err := s.Next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.fail(err)
				}
				return
			}
			r.add(m)
		}
	}()
}

func bodies(ms []client.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Body)
	}
	return out
}

// post publishes body on addr+path and returns the status and Msgbus-Id.
func postMsg(hc *http.Client, addr, path, body string) (int, string, error) {
	resp, err := hc.Post("http://"+addr+path, "text/plain", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Msgbus-Id"), nil
}

func TestThreeNodesAreOneBus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	rs := redistest.Start(t, redistest.Options{})
	nodes := startNodes(t, 3, rs.URL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Subscribers spread over the nodes, in every format, on the parent,
	// the root, and with a filter.
	var readers []*reader
	for i, n := range nodes {
		c, err := client.New(client.Config{URL: "http://" + n.addr})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, tc := range []struct {
			channel string
			opts    *client.SubscribeOptions
		}{{"c", nil}, {"", nil}, {"c", &client.SubscribeOptions{Type: "text/*"}}} {
			s, err := c.Subscribe(ctx, tc.channel, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			r := newReader(fmt.Sprintf("node %d multipart %q", i, tc.channel))
			readSub(ctx, s, r)
			readers = append(readers, r)
		}
		ws, err := c.Sub(ctx, "c", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		r := newReader(fmt.Sprintf("node %d websocket /sub/c", i))
		readSub(ctx, ws, r)
		readers = append(readers, r)
		r = newReader(fmt.Sprintf("node %d SSE", i))
		readSSE(ctx, t, n.addr, "/msgbus/c", r)
		readers = append(readers, r)
	}
	// Every subscriber is in place once each has the sentinel.
	hc := &http.Client{Timeout: 10 * time.Second}
	if code, _, err := postMsg(hc, nodes[0].addr, "/msgbus/c/ready", "ready"); err != nil || code != 204 {
		t.Fatalf("sentinel: %d %v", code, err)
	}
	for _, r := range readers {
		r.waitFor(t, 1, 10*time.Second)
	}

	const each = 200
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			for k := range each {
				code, _, err := postMsg(hc, n.addr, "/msgbus/c/"+strconv.Itoa(i), fmt.Sprintf("p%d-%d", i, k))
				if err != nil || code != 204 {
					t.Errorf("publish on node %d: %d %v", i, code, err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := 1 + len(nodes)*each
	var first []string
	for _, r := range readers {
		got := bodies(r.waitFor(t, want, 20*time.Second))
		if len(got) != want {
			t.Fatalf("%s: %d messages, want %d", r.name, len(got), want)
		}
		if first == nil {
			first = got
			continue
		}
		if !slices.Equal(got, first) {
			i := 0
			for i < len(got) && got[i] == first[i] {
				i++
			}
			t.Fatalf("%s: message %d is %q where %s had %q: not one order", r.name, i, got[i], readers[0].name, first[i])
		}
	}
	// Each publisher's messages in its own order, each once.
	next := make([]int, len(nodes))
	for _, b := range first[1:] {
		var p, k int
		fmt.Sscanf(b, "p%d-%d", &p, &k)
		if k != next[p] {
			t.Fatalf("publisher %d: message %d where %d was due", p, k, next[p])
		}
		next[p]++
	}
	// Ids increase along a stream that has them.
	ms := readers[0].waitFor(t, want, time.Second)
	for i := 1; i < len(ms); i++ {
		if !idAfter(ms[i].ID, ms[i-1].ID) {
			t.Fatalf("id %s after %s", ms[i].ID, ms[i-1].ID)
		}
	}

	// An id from node 0 resumes on node 2.
	c2, err := client.New(client.Config{URL: "http://" + nodes[2].addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	from := 300
	s, err := c2.Subscribe(ctx, "c", &client.SubscribeOptions{Since: ms[from].ID})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Recovered() {
		t.Fatal("resume on another node: not recovered")
	}
	r := newReader("resumed on node 2")
	readSub(ctx, s, r)
	got := r.waitFor(t, want-from-1, 10*time.Second)
	if !slices.Equal(bodies(got), first[from+1:]) {
		t.Fatalf("resume after #%d on another node: %d messages, not the tail", from, len(got))
	}
}

// historyIDs pages /history/<channel> on addr and returns id → body.
func historyIDs(t *testing.T, hc *http.Client, addr, channel string) (map[string]string, []string) {
	t.Helper()
	kept := map[string]string{}
	var order []string
	after := "0"
	for {
		resp, err := hc.Get("http://" + addr + "/history/" + channel + "?limit=1000&after=" + after)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Messages []struct{ ID, Body string }
			More     bool
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			if _, dup := kept[m.ID]; dup {
				t.Fatalf("id %s twice in history", m.ID)
			}
			kept[m.ID] = m.Body
			order = append(order, m.ID)
			after = m.ID
		}
		if !page.More {
			return kept, order
		}
	}
}

// An acked publish: answered 204 with this id.
type acked struct{ id, body string }

// flood publishes on addr until stop, recording every 204 and counting
// 503s.
func flood(hc *http.Client, addr, channel string, stop <-chan struct{}, mu *sync.Mutex, acks *[]acked, unavailable *int) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		body := channel + "-" + strconv.Itoa(i)
		code, id, err := postMsg(hc, addr, "/msgbus/"+channel, body)
		mu.Lock()
		switch {
		case err != nil:
		case code == 204:
			*acks = append(*acks, acked{id, body})
		case code == 503:
			*unavailable++
		}
		mu.Unlock()
		if err != nil || code != 204 {
			time.Sleep(20 * time.Millisecond) // as a client backs off
		}
	}
}

func TestRedisOutageAnswers503AndLosesNothingAnswered204(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	rs := redistest.Start(t, redistest.Options{AOF: true})
	nodes := startNodes(t, 2, rs.URL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.New(client.Config{URL: "http://" + nodes[1].addr, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.Subscribe(ctx, "o", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := newReader("subscriber on node 1")
	readSub(ctx, s, r)

	var (
		mu          sync.Mutex
		acks        []acked
		unavailable int
		stop        = make(chan struct{})
		done        = make(chan struct{})
	)
	hc := &http.Client{Timeout: 10 * time.Second}
	go func() { defer close(done); flood(hc, nodes[0].addr, "o", stop, &mu, &acks, &unavailable) }()
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(acks), unavailable
	}
	waitUntil(t, 20*time.Second, "100 acked publishes", func() bool { n, _ := count(); return n >= 100 })
	rs.Stop()
	waitUntil(t, 20*time.Second, "a 503 while Redis is down", func() bool { _, u := count(); return u >= 3 })
	before, _ := count()
	rs.Restart() // from its AOF
	waitUntil(t, 20*time.Second, "publishes acked again", func() bool { n, _ := count(); return n >= before+100 })
	close(stop)
	<-done

	kept, order := historyIDs(t, hc, nodes[1].addr, "o")
	for _, a := range acks {
		if kept[a.id] != a.body {
			t.Fatalf("answered 204 with id %s (%q); history has %q", a.id, a.body, kept[a.id])
		}
	}
	for i := 1; i < len(order); i++ {
		if !idAfter(order[i], order[i-1]) {
			t.Fatalf("history id %s after %s", order[i], order[i-1])
		}
	}
	// The subscriber on the other node got every acked message, in order,
	// once: its node filled the feed's gap from history, or the stream
	// ended and the client resumed.
	got := r.waitFor(t, len(order), 20*time.Second)
	seen := map[string]bool{}
	for i, m := range got {
		if seen[m.ID] {
			t.Fatalf("subscriber got %s twice", m.ID)
		}
		seen[m.ID] = true
		if i > 0 && !idAfter(m.ID, got[i-1].ID) {
			t.Fatalf("subscriber got %s after %s", m.ID, got[i-1].ID)
		}
	}
	for _, a := range acks {
		if !seen[a.id] {
			t.Fatalf("acked %s (%q) never reached the subscriber on the other node", a.id, a.body)
		}
	}
	t.Logf("%d acked, %d answered 503 while Redis was down", len(acks), unavailable)
}

func TestKilledNodesSubscriberResumesOnAnotherLosingNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	rs := redistest.Start(t, redistest.Options{})
	nodes := startNodes(t, 3, rs.URL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ca, err := client.New(client.Config{URL: "http://" + nodes[0].addr})
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	sa, err := ca.Subscribe(ctx, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	ra := newReader("subscriber on node 0")
	readSub(ctx, sa, ra)

	var (
		mu    sync.Mutex
		acks  []acked
		u     int
		stop  = make(chan struct{})
		wg    sync.WaitGroup
		count = func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	)
	hc := &http.Client{Timeout: 10 * time.Second}
	for _, n := range nodes[1:] {
		wg.Go(func() { flood(hc, n.addr, "k", stop, &mu, &acks, &u) })
	}
	waitUntil(t, 20*time.Second, "200 acked publishes", func() bool { return count() >= 200 })
	got := ra.waitFor(t, 50, 10*time.Second)
	nodes[0].cmd.Process.Kill() // kill -9, mid-flood
	<-nodes[0].done
	cancel()
	last := got[len(got)-1].ID
	before := len(got)

	// The client comes back on another node with the last id it had.
	cb, err := client.New(client.Config{URL: "http://" + nodes[2].addr})
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	sb, err := cb.Subscribe(ctx2, "k", &client.SubscribeOptions{Since: last})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if !sb.Recovered() {
		t.Fatal("resumed on another node: not recovered")
	}
	rb := newReader("resumed on node 2")
	readSub(ctx2, sb, rb)
	n := count()
	waitUntil(t, 20*time.Second, "more acked publishes", func() bool { return count() >= n+100 })
	close(stop)
	wg.Wait()
	mu.Lock()
	all := slices.Clone(acks)
	mu.Unlock()
	slices.SortFunc(all, func(a, b acked) int {
		if idAfter(a.id, b.id) {
			return 1
		}
		return -1
	})
	var tail []acked
	for _, a := range all {
		if idAfter(a.id, last) {
			tail = append(tail, a)
		}
	}
	resumed := rb.waitFor(t, len(tail), 20*time.Second)
	seen := map[string]bool{}
	for i, m := range resumed {
		if seen[m.ID] || (i > 0 && !idAfter(m.ID, resumed[i-1].ID)) {
			t.Fatalf("resumed stream: %s out of order or twice", m.ID)
		}
		seen[m.ID] = true
	}
	for _, a := range tail {
		if !seen[a.id] {
			t.Fatalf("acked %s after the kill never reached the resumed subscriber", a.id)
		}
	}
	t.Logf("%d before the kill, %d after, resumed on another node", before, len(tail))
}

// waitUntil polls cond until it holds, failing after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPushesSpanNodesEachToExactlyOnePuller(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	rs := redistest.Start(t, redistest.Options{})
	nodes := startNodes(t, 3, rs.URL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var readers []*reader
	for i, n := range nodes[:2] {
		c, err := client.New(client.Config{URL: "http://" + n.addr})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for k := range 2 {
			p, err := c.Pull(ctx, "jobs", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			r := newReader(fmt.Sprintf("puller %d on node %d", k, i))
			readSub(ctx, p, r)
			readers = append(readers, r)
		}
	}
	c, err := client.New(client.Config{URL: "http://" + nodes[2].addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pusher, err := c.Push(ctx, "jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pusher.Close()
	const n = 400
	for i := range n {
		if err := pusher.Send(ctx, client.TextFrame, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	count := map[string]int{}
	total := func() int {
		k := 0
		for _, r := range readers {
			r.mu.Lock()
			k += len(r.msgs)
			r.mu.Unlock()
		}
		return k
	}
	waitUntil(t, 20*time.Second, "every push pulled", func() bool { return total() >= n })
	nodesUsed := map[int]bool{}
	for i, r := range readers {
		r.mu.Lock()
		for _, m := range r.msgs {
			count[string(m.Body)]++
			nodesUsed[i/2] = true
		}
		r.mu.Unlock()
	}
	if len(count) != n {
		t.Fatalf("%d distinct pushes pulled, want %d", len(count), n)
	}
	for b, k := range count {
		if k != 1 {
			t.Fatalf("push %s pulled %d times", b, k)
		}
	}
	if len(nodesUsed) != 2 {
		t.Fatalf("pushes reached pullers on %d nodes, want 2", len(nodesUsed))
	}
}

// tool builds one of the tools (test-pub, test-sub) for these tests.
func tool(t *testing.T, name string) string {
	t.Helper()
	toolsOnce.Do(func() {
		dir := filepath.Dir(binary)
		for _, n := range []string{"test-pub", "test-sub"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(dir, n), "../tools/"+n).CombinedOutput()
			if err != nil {
				toolsErr = fmt.Errorf("go build %s: %v\n%s", n, err, out)
				return
			}
		}
	})
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
	return filepath.Join(filepath.Dir(binary), name)
}

var (
	toolsOnce sync.Once
	toolsErr  error
)

// The load tools across nodes: test-sub on two nodes, test-pub with four
// publishers on a third; every subscriber gets every message, none lost,
// duplicated or reordered, each with its id.
func TestLoadToolsAcrossNodesLoseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	rs := redistest.Start(t, redistest.Options{})
	nodes := startNodes(t, 3, rs.URL())
	const n, per = 2000, 50
	type report struct {
		Delivered, Lost, Duplicated, Reordered uint64
		IDs                                    struct {
			WithoutID uint64 `json:"without_id"`
		}
	}
	var subs []*exec.Cmd
	var outs []*bytes.Buffer
	for _, node := range nodes[1:] {
		cmd := exec.Command(tool(t, "test-sub"), "-u", "http://"+node.addr, "-c", "flood", "-N", strconv.Itoa(per),
			"-n", strconv.Itoa(n), "-d", "60s", "--check-ids", "--json", "-q")
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		subs, outs = append(subs, cmd), append(outs, out)
	}
	// Every subscriber in place: a publish on a node says how many it
	// reached there (test-sub counts such messages as foreign, not load).
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, node := range nodes[1:] {
		waitUntil(t, 20*time.Second, "test-sub's subscribers on "+node.addr, func() bool {
			resp, err := hc.Post("http://"+node.addr+"/msgbus/flood/ready", "text/plain", strings.NewReader("ready"))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.Header.Get("Msgbus-Subscribers") == strconv.Itoa(per)
		})
	}
	pub := exec.Command(tool(t, "test-pub"), "-u", "http://"+nodes[0].addr, "-c", "flood", "-n", strconv.Itoa(n), "-P", "4", "-q")
	if out, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("test-pub: %v\n%s", err, out)
	}
	for i, cmd := range subs {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("test-sub on node %d: %v\n%s", i+1, err, outs[i])
		}
		var r report
		if err := json.Unmarshal(outs[i].Bytes(), &r); err != nil {
			t.Fatalf("test-sub report: %v\n%s", err, outs[i])
		}
		if r.Delivered != n*per || r.Lost+r.Duplicated+r.Reordered+r.IDs.WithoutID != 0 {
			t.Fatalf("test-sub on node %d: %+v", i+1, r)
		}
	}
}
