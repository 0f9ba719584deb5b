//go:build unix

package server

// Tests that the web root serves regular files only (PROTOCOL.md §5): a
// FIFO, socket or device is 404 at once and never blocks a thread, even when
// a file is swapped for a FIFO between the checks and the open.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// webrootFIFO makes a FIFO at root/name, and at the end of the test opens
// it for writing once, which would free any open still waiting on it (so a
// broken web root fails the test instead of hanging it).
func webrootFIFO(t *testing.T, root, name string) string {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	t.Cleanup(func() { webrootUnblock(p) })
	return p
}

// webrootUnblock frees readers blocked opening the FIFO at p.
func webrootUnblock(p string) {
	if f, err := os.OpenFile(p, os.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
		f.Close()
	}
}

// webrootGet sends GET target on its own connection and returns the status,
// or an error; it may run on any goroutine.
func webrootGet(addr, target string, timeout time.Duration) (int, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", target, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestWebRootFIFOIs404AndNeverBlocks(t *testing.T) {
	f := staticSetup(t)
	webrootFIFO(t, f.root, "fifo")
	webrootFIFO(t, f.root, "fifo.html")
	webrootFIFO(t, f.root, "pipes/index.html") // a folder whose index is a FIFO
	ts := startServer(t, Config{WebRoot: f.root})

	for _, target := range []string{"/fifo", "/fifo.html", "/pipes/index.html"} {
		limCheckReason(t, staticGet(t, ts, "GET", target), http.StatusNotFound)
		if r := staticGet(t, ts, "HEAD", target); r.status != http.StatusNotFound {
			t.Errorf("HEAD %s: status %d, want 404", target, r.status)
		}
	}
	// A FIFO index is no index: the folder is answered as one without any.
	if r := staticGet(t, ts, "GET", "/pipes/"); r.status != http.StatusForbidden && r.status != http.StatusNotFound {
		t.Errorf("GET /pipes/: status %d, want 403 or 404 as for a folder without index.html", r.status)
	}

	// Many GETs of FIFOs at once, with page loads among them: every one is
	// answered promptly, and no thread is spent per request (each used to
	// block in open(2) until a writer came, and ~10,000 killed the process).
	const requests, workers = 2000, 200
	threads := pprof.Lookup("threadcreate").Count()
	start := time.Now()
	jobs := make(chan int)
	errs := make(chan error, requests)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				target, want := "/fifo", http.StatusNotFound
				switch i % 10 {
				case 1:
					target = "/fifo.html"
				case 2:
					target = "/pipes/index.html"
				case 3:
					target, want = "/page.html", http.StatusOK
				}
				status, err := webrootGet(ts.Addr, target, 5*time.Second)
				if err == nil && status != want {
					err = fmt.Errorf("GET %s: status %d, want %d", target, status, want)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range requests {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Fatalf("%d of %d requests failed", n, requests)
	}
	elapsed := time.Since(start)
	if more := pprof.Lookup("threadcreate").Count() - threads; more > workers/2 {
		t.Errorf("%d requests for FIFOs made %d more threads, want far fewer than the %d in flight", requests, more, workers)
	}
	t.Logf("%d requests in %v", requests, elapsed)
	if r := staticGet(t, ts, "GET", "/page.html"); r.status != http.StatusOK || r.body != "<p>page</p>" {
		t.Fatalf("GET /page.html after the FIFOs: %d %q, want 200", r.status, r.body)
	}
}

func TestWebRootSocketAndDeviceAre404(t *testing.T) {
	f := staticSetup(t)
	var targets []string
	// A Unix socket (its path must be short: make it where the root is).
	if l, err := net.Listen("unix", filepath.Join(f.root, "sock")); err == nil {
		defer l.Close()
		targets = append(targets, "/sock")
	} else {
		t.Logf("no Unix socket: %v", err)
	}
	// A character device (/dev/null's numbers), where we may make one:
	// as root on Linux.
	if runtime.GOOS != "linux" {
		t.Logf("no device node on %s", runtime.GOOS)
	} else if err := syscall.Mknod(filepath.Join(f.root, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err == nil {
		targets = append(targets, "/null")
	} else {
		t.Logf("no device node: %v", err)
	}
	if len(targets) == 0 {
		t.Skip("could make neither a socket nor a device")
	}
	ts := startServer(t, Config{WebRoot: f.root})
	for _, target := range targets {
		limCheckReason(t, staticGet(t, ts, "GET", target), http.StatusNotFound)
	}
}

// TestWebRootOpenRefusesAFileSwappedForAFIFO swaps a name between a regular
// file and a FIFO (atomically, by rename) while others open it through the
// web root's file system: each open ends at once, with the regular file or
// a not-found error, never with a FIFO and never blocked.
func TestWebRootOpenRefusesAFileSwappedForAFIFO(t *testing.T) {
	dir := t.TempDir()
	staticWrite(t, dir, "regular", "content")
	fifo := webrootFIFO(t, dir, "fifo")
	target := filepath.Join(dir, "swapped")
	t.Cleanup(func() { webrootUnblock(target) })
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	fsys := regularFS{root}

	stop := make(chan struct{})
	var swapper sync.WaitGroup
	swapper.Go(func() {
		tmp := filepath.Join(dir, "tmp")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			src := filepath.Join(dir, "regular")
			if i%2 == 1 {
				src = fifo
			}
			os.Remove(tmp)
			if err := os.Link(src, tmp); err != nil {
				t.Error(err)
				return
			}
			if err := os.Rename(tmp, target); err != nil {
				t.Error(err)
				return
			}
		}
	})

	var mu sync.Mutex
	counts := map[string]int{}
	var abort atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 2000 {
					if abort.Load() {
						return
					}
					file, err := fsys.Open("swapped")
					kind := "regular"
					switch {
					case errors.Is(err, fs.ErrNotExist):
						kind = "refused"
					case err != nil:
						t.Errorf("Open: %v", err)
						return
					default:
						fi, err := file.Stat()
						if err != nil || !fi.Mode().IsRegular() {
							t.Errorf("Open returned a %v (%v), want a regular file", fi.Mode(), err)
						} else if b, err := io.ReadAll(file); err != nil || string(b) != "content" {
							t.Errorf("read %q, %v; want the regular file's content", b, err)
						}
						file.Close()
					}
					mu.Lock()
					counts[kind]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		abort.Store(true)
		close(stop)
		swapper.Wait()
		for {
			webrootUnblock(target)
			select {
			case <-done:
				t.Fatal("an Open blocked on the FIFO")
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	close(stop)
	swapper.Wait()
	t.Logf("opens: %v", counts)
	if counts["regular"] == 0 || counts["refused"] == 0 {
		t.Logf("the swap never raced both ways (%v): the test proved less than it could", counts)
	}
}
