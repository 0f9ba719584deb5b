package server

import (
	"syscall"
	"unsafe"
)

// maxIovecs is Linux's IOV_MAX, the most buffers one writev takes.
const maxIovecs = 1024

// canWritevNow reports whether writevNow works on this platform.
const canWritevNow = true

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
