package tools_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/msgbus/msgbus/server"
	"github.com/msgbus/msgbus/server/bustest"
)

// openPTY opens a pseudo-terminal: what a tool writes to tty, the test
// reads from pty. Output processing is off, so bytes arrive as written.
func openPTY(t *testing.T) (pty, tty *os.File) {
	t.Helper()
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { pty.Close() })
	var n uint32
	var unlock int32
	if err := ioctl(pty, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		t.Skipf("TIOCGPTN: %v", err)
	}
	if err := ioctl(pty, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		t.Skipf("TIOCSPTLCK: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the terminal: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	var tio syscall.Termios
	if err := ioctl(tty, syscall.TCGETS, unsafe.Pointer(&tio)); err != nil {
		t.Fatalf("TCGETS: %v", err)
	}
	tio.Oflag &^= syscall.OPOST
	if err := ioctl(tty, syscall.TCSETS, unsafe.Pointer(&tio)); err != nil {
		t.Fatalf("TCSETS: %v", err)
	}
	return pty, tty
}

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// readAll reads the terminal's output until every writer has closed it.
func readAll(pty *os.File) <-chan string {
	ch := make(chan string, 1)
	go func() {
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := pty.Read(buf)
			b.Write(buf[:n])
			if err != nil { // EIO once the last writer has gone
				ch <- b.String()
				return
			}
		}
	}()
	return ch
}

func TestMsgdumpShowsATerminalNoRawBinaryNorEscapes(t *testing.T) {
	bins := build(t, "msgsend", "msgdump")
	ts := startServer(t, server.Config{})
	pty, tty := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dump := exec.CommandContext(ctx, bins["msgdump"], "-u", ts.URL, "-c", "screen", "-n", "3")
	var dumpErr syncBuffer
	dump.Stdout, dump.Stderr = tty, &dumpErr
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close() // msgdump holds the only writer now
	out := readAll(pty)
	ts.waitSubscribers(t, 1, dump, &dumpErr)

	image := "\x89PNG\r\n\x1a\n" + strings.Repeat("\xff", 292) // 300 bytes, not UTF-8
	for _, m := range []struct{ typ, body string }{
		{"image/png", image},
		{"text/plain", "\x1b]0;owned\x07\x1b[2Jred\r\n"}, // retitle the window, clear the screen
		{"text/plain; charset=utf-8", "plain\n"},
	} {
		if _, stderr, err := runTool(t, m.body, bins["msgsend"], "-u", ts.URL, "-c", "screen", "-t", m.typ); err != nil {
			t.Fatalf("msgsend: %v: %s", err, stderr)
		}
	}
	if err := dump.Wait(); err != nil {
		t.Fatalf("msgdump: %v: %s", err, &dumpErr)
	}
	var got string
	select {
	case got = <-out:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal was not closed")
	}
	want := "channel=screen type=image/png from= size=300\n" +
		"00000000  89 50 4e 47 0d 0a 1a 0a  ff ff ff ff ff ff ff ff  |.PNG............|\n"
	if !strings.HasPrefix(got, want) {
		t.Fatalf("the terminal shows\n%q\nwant it to start with\n%q", got, want)
	}
	wantTail := "000000f0  ff ff ff ff ff ff ff ff  ff ff ff ff ff ff ff ff  |................|\n" +
		"... and 44 bytes more (not UTF-8 text: -x dumps it all; redirected, msgdump writes the bytes)\n\n" +
		"channel=screen type=text/plain from= size=19\n" +
		`\x1b]0;owned\x07\x1b[2Jred` + "\r\n\n" +
		"channel=screen type=text/plain;%20charset=utf-8 from= size=6\nplain\n\n"
	if !strings.HasSuffix(got, wantTail) || strings.Contains(got, "\x1b") || strings.Contains(got, "\xff") {
		t.Fatalf("the terminal shows\n%q\nwant it to end with\n%q and no raw escape or binary byte", got, wantTail)
	}
}

func TestMsgsendSaysItReadsATerminal(t *testing.T) {
	bins := build(t, "msgsend")
	ts := startServer(t, server.Config{})
	sub := subscribe(t, ts, "typed")
	pty, tty := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	send := exec.CommandContext(ctx, bins["msgsend"], "-u", ts.URL, "-c", "typed")
	var stderr syncBuffer
	send.Stdin, send.Stderr = tty, &stderr
	if err := send.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	bustest.Until(t, func() string { return fmt.Sprintf("msgsend said %q, want it to say it reads the terminal", &stderr) },
		func() bool {
			return strings.Contains(stderr.String(), "msgsend: reading the message from the terminal; end it with Ctrl-D")
		})
	if _, err := pty.WriteString("typed by hand\n\x04"); err != nil { // Ctrl-D ends the input
		t.Fatal(err)
	}
	if err := send.Wait(); err != nil {
		t.Fatalf("msgsend: %v: %s", err, &stderr)
	}
	if m := next(t, sub); string(m.Body) != "typed by hand\n" {
		t.Fatalf("published %q", m.Body)
	}
}
