package server

// curl is the client the README and the original msgbus document: these
// tests check that it can subscribe (HTTP/1.1 and 1.0) and publish.

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// curlPath finds curl or skips the test.
func curlPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not found in PATH: install curl to run the curl interoperability tests (CI installs it)")
	}
	return path
}

// curlProc is a running curl whose output is collected until it exits.
type curlProc struct {
	cmd      *exec.Cmd
	out, err bytes.Buffer
	done     chan struct{} // closed once Wait returned
	waitErr  error
}

// startCurl runs curl with args in the background. The process is killed
// (if still running) and waited for when the test ends.
func startCurl(t *testing.T, args ...string) *curlProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	p := &curlProc{done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, curlPath(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.err
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting curl: %v", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

// wait waits for curl to exit and returns its standard output, failing the
// test unless it exits cleanly within a few seconds.
func (p *curlProc) wait(t *testing.T) string {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("curl %q did not exit", p.cmd.Args[1:])
	}
	if p.waitErr != nil {
		t.Fatalf("curl %q: %v; stderr: %s", p.cmd.Args[1:], p.waitErr, p.err.String())
	}
	return p.out.String()
}

// curlRun runs curl to completion with stdin and returns its standard output.
func curlRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, curlPath(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 2 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %q: %v; stderr: %s", args, err, stderr.String())
	}
	return string(out)
}

func TestCurlSubscribesAndPublishes(t *testing.T) {
	curlPath(t)
	// The big body goes with "Expect: 100-continue", as curl sends for
	// large uploads.
	big := strings.Repeat("line with CRLF\r\n", 200) + "--00MsgBus00\r\n"
	bodies := []string{"hello from curl\n", "", big, "bin\x00\xff\r\n\r\n"}
	cases := []struct {
		name     string
		subArgs  []string
		secret   string
		subUser  string // -u for the subscriber, "" for none
		pubUser  string // -u for the publisher
		wantHead string // part header lines before Content-Length
	}{
		{name: "HTTP/1.1", subArgs: []string{"-sSN"}, wantHead: "Content-Type: text/plain\r\n"},
		{name: "HTTP/1.0", subArgs: []string{"--http1.0", "-sSN"}, wantHead: "Content-Type: text/plain\r\n"},
		{name: "HTTP/1.1 with secret", subArgs: []string{"-sSN"}, secret: "s3cret",
			subUser: "carol:s3cret", pubUser: "alice:s3cret", wantHead: "From: alice\r\nContent-Type: text/plain\r\n"},
		{name: "HTTP/1.0 with secret", subArgs: []string{"--http1.0", "-sSN"}, secret: "s3cret",
			subUser: "carol:s3cret", pubUser: "bob:s3cret", wantHead: "From: bob\r\nContent-Type: text/plain\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Config{Secret: tc.secret})
			subArgs := tc.subArgs
			if tc.subUser != "" {
				subArgs = append(subArgs, "-u", tc.subUser)
			}
			sub := startCurl(t, append(subArgs, ts.URL("/msgbus/news"))...)
			ts.waitSubscribers(t, 1)

			var want strings.Builder
			for _, body := range bodies {
				args := []string{"-sS", "-o", "/dev/null", "-D", "-", "--data-binary", "@-",
					"-H", "Content-Type: text/plain"}
				if tc.pubUser != "" {
					args = append(args, "-u", tc.pubUser)
				}
				if body == big {
					args = append(args, "-H", "Expect: 100-continue")
				}
				head := curlRun(t, body, append(args, ts.URL("/msgbus/news"))...)
				head = strings.TrimPrefix(head, "HTTP/1.1 100 Continue\r\n\r\n")
				if !strings.HasPrefix(head, "HTTP/1.1 204 ") || !strings.Contains(head, "\r\nMsgbus-Subscribers: 1\r\n") {
					t.Fatalf("publish of %d bytes answered:\n%s\nwant 204 with Msgbus-Subscribers: 1", len(body), head)
				}
				id := regexp.MustCompile(`\r\nMsgbus-Id: ([0-9]+-[0-9]+)\r\n`).FindStringSubmatch(head)
				if id == nil {
					t.Fatalf("publish answered without a Msgbus-Id:\n%s", head)
				}
				want.WriteString(wirePart("Msgbus-Id: "+id[1]+"\r\n"+tc.wantHead, body))
			}
			want.WriteString("--00MsgBus00--\r\n")

			ts.stop(t) // ends the stream, so curl exits
			if got := sub.wait(t); got != want.String() {
				t.Fatalf("curl %s output:\n got %q\nwant %q", strings.Join(tc.subArgs, " "), got, want.String())
			}
		})
	}
}
