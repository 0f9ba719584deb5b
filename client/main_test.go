package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgbus/msgbus/server"
)

// busURL is the server the Examples talk to, started by TestMain; in real
// code it is something like "http://localhost:8888".
var busURL string

// leakOptions lets go two goroutines of fasthttp's own, as the server
// package's TestMain does: the process-wide Date header ticker, and the
// worker-pool cleaner, which sleeps a while before it sees the pool stopped.
var leakOptions = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
}

// TestMain runs a server for the Examples, and fails the package if any
// goroutine outlives the tests: every Subscription ended by its context or
// Close must leave nothing behind.
func TestMain(m *testing.M) {
	srv, err := server.New(server.Config{Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	busURL = "http://" + ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()

	code := m.Run()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(ctx)
	cancel()
	<-done
	if code == 0 {
		if err := goleak.Find(leakOptions...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
