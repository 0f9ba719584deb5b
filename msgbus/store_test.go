package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKill9LosesNothingAnswered204: publishers flood a server with --store,
// the server is killed with SIGKILL mid-flood, and a new one on the same
// folder replays every message that was answered 204, exactly once, in
// order, with its id; ids then go on increasing.
func TestKill9LosesNothingAnswered204(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	args := []string{"-l", addr, "-m", "production", "--log-level", "error", "--store", dir,
		"--history-size", "100000", "--resume-max", "100000"}
	p := startMsgbus(t, addr, binary, args...)

	var (
		mu   sync.Mutex
		acks []acked
		wg   sync.WaitGroup
		stop = make(chan struct{})
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf("w%d-%d", w, i)
				resp, err := client.Post("http://"+addr+"/msgbus/flood/"+strconv.Itoa(w), "text/plain", strings.NewReader(body))
				if err != nil {
					return // the server is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusNoContent {
					mu.Lock()
					acks = append(acks, acked{resp.Header.Get("Msgbus-Id"), body})
					mu.Unlock()
				}
			}
		}()
	}
	for {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= 2000 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.cmd.Process.Kill() // SIGKILL, mid-flood
	<-p.done
	close(stop)
	wg.Wait()

	startMsgbus(t, addr, binary, args...)
	kept, order := historyIDs(t, client, addr, "flood") // id → body, from every page
	for _, a := range acks {
		if body, ok := kept[a.id]; !ok || body != a.body {
			t.Fatalf("answered 204 with id %s (%q), after the restart history has %q, %v", a.id, a.body, body, ok)
		}
	}
	t.Logf("%d answered 204, %d in history after kill -9", len(acks), len(kept))
	// Ids go on after the restart.
	resp, err := client.Post("http://"+addr+"/msgbus/flood/0", "text/plain", strings.NewReader("after"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := resp.Header.Get("Msgbus-Id"); !idAfter(id, order[len(order)-1]) {
		t.Fatalf("first id after the restart %s, not after the last stored %s", id, order[len(order)-1])
	}
}

// idAfter reports whether id a comes after id b ("<ms>-<seq>").
func idAfter(a, b string) bool {
	parse := func(s string) (uint64, uint64) {
		ms, seq, _ := strings.Cut(s, "-")
		m, _ := strconv.ParseUint(ms, 10, 64)
		q, _ := strconv.ParseUint(seq, 10, 64)
		return m, q
	}
	am, as := parse(a)
	bm, bs := parse(b)
	return am > bm || (am == bm && as > bs)
}
