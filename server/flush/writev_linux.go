package flush

import (
	"syscall"
	"unsafe"
)

// maxIovecs is Linux's IOV_MAX, the most buffers one writev takes.
const maxIovecs = 1024

// canWritevNow reports whether writevNow works on this platform.
const canWritevNow = true

// iovecs is a writer's scratch space for the iovec array.
type iovecs = []syscall.Iovec

func newIovecs() iovecs { return make([]syscall.Iovec, 0, maxIovecs) }

// writevNow writes bufs to the non-blocking socket fd with as few writev
// calls as it takes, stopping early when the socket buffer is full. It
// returns the bytes written; EAGAIN is not an error, just a short count.
// iov is scratch space for the iovec array, reused across calls.
func writevNow(fd int, bufs [][]byte, iov *[]syscall.Iovec) (int, error) {
	total := 0
	for len(bufs) > 0 {
		v := (*iov)[:0]
		want := 0
		i := 0
		for ; i < len(bufs) && len(v) < maxIovecs; i++ {
			if b := bufs[i]; len(b) > 0 {
				io := syscall.Iovec{Base: &b[0]}
				io.SetLen(len(b))
				v = append(v, io)
				want += len(b)
			}
		}
		*iov = v
		bufs = bufs[i:]
		if len(v) == 0 {
			continue
		}
		n, _, errno := syscall.Syscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&v[0])), uintptr(len(v)))
		clear(v) // drop the pointers into frames, so queued memory can be freed
		switch errno {
		case 0:
		case syscall.EAGAIN:
			return total, nil
		case syscall.EINTR:
			return total, nil // the blocking path retries
		default:
			return total, errno
		}
		total += int(n)
		if int(n) < want {
			return total, nil
		}
	}
	return total, nil
}

// unsentLimit caps the bytes the kernel holds unsent for a subscriber's
// socket (TCP_NOTSENT_LOWAT). Without it Linux lets a socket whose client
// never reads take megabytes before a write would block, so a crowd of
// stalled subscribers keeps the flush pool copying into their buffers
// while a healthy subscriber's queue overflows. With it, a stalled socket
// is full after a few hundred KiB and goes to a goroutine of its own, and
// its queue, not the healthy one's, passes the limit. What is in flight to
// a reading client is not counted, so throughput does not suffer.
const unsentLimit = 128 << 10

// limitUnsent sets unsentLimit on the socket.
func limitUnsent(raw syscall.RawConn) {
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotsentLowat, unsentLimit)
	})
}

// tcpNotsentLowat is TCP_NOTSENT_LOWAT (linux/tcp.h), which package syscall
// does not name.
const tcpNotsentLowat = 25
