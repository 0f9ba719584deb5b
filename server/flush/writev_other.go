//go:build !linux

package flush

import "syscall"

// Elsewhere than Linux the flush pool does not writev: every stream is
// written by a goroutine of its own through net.Buffers, which the
// standard library turns into writev where the system has it.
const canWritevNow = false

type iovecs = struct{}

func newIovecs() iovecs { return iovecs{} }

func writevNow(int, [][]byte, *iovecs) (int, error) { return 0, nil }

func limitUnsent(syscall.RawConn) {}
