//go:build unix

package server

import (
	"syscall"
	"unsafe"
)

// maxIovecs caps one writev call's vectors; the rest goes in the next call.
const maxIovecs = 64

// sockWrite writes b to the non-blocking socket fd with write(2), retrying on EINTR.
// It returns how many bytes the kernel took; a full send buffer is syscall.EAGAIN.
func sockWrite(fd int, b []byte) (int, error) {
	for {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}

// sockWritev writes bufs in order with as few writev(2) calls as the kernel allows. It
// stops at the first short write and returns the bytes written and the error (EAGAIN
// when the send buffer filled).
func sockWritev(fd int, bufs [][]byte) (int, error) {
	if len(bufs) == 1 {
		return sockWrite(fd, bufs[0])
	}
	var iov [maxIovecs]syscall.Iovec
	total := 0
	for len(bufs) > 0 {
		cnt, want := 0, 0
		for cnt < len(bufs) && cnt < maxIovecs {
			if len(bufs[cnt]) > 0 {
				iov[cnt].Base = &bufs[cnt][0]
			} else {
				iov[cnt].Base = nil
			}
			iov[cnt].SetLen(len(bufs[cnt]))
			want += len(bufs[cnt])
			cnt++
		}
		r, _, e := syscall.Syscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return total, e
		}
		total += int(r)
		if int(r) < want {
			return total, syscall.EAGAIN
		}
		bufs = bufs[cnt:]
	}
	return total, nil
}
