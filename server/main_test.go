package server

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// server the tests start must leave nothing behind once shut down. Two
// goroutines of fasthttp's own are let go: the process-wide Date header
// ticker, and the worker-pool cleaner, which sleeps up to
// MaxIdleWorkerDuration before it sees the pool stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}
