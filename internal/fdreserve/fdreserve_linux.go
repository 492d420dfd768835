package fdreserve

import (
	"sync"
	"syscall"
)

var (
	// mu serialises every accept of the process's listeners with the refusals, so that
	// none takes the slot a refusal has just freed. Nothing else is locked under it.
	mu      sync.Mutex
	reserve = -1 // the spare descriptor, on /dev/null; -1 when none is held
)

// Hold opens the spare descriptor if none is held. Listeners call it when they start,
// while descriptors can still be had. It is safe for concurrent use.
func Hold() {
	mu.Lock()
	defer mu.Unlock()
	holdLocked()
}

func holdLocked() {
	if reserve >= 0 {
		return
	}
	if fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err == nil {
		reserve = fd
	}
}

// Guard runs accept, which must accept without blocking, while no refusal is under way.
func Guard(accept func()) {
	mu.Lock()
	defer mu.Unlock()
	accept()
}

// Accept accepts one connection from the non-blocking listening socket lfd (accept4,
// non-blocking and close-on-exec) under the lock; it returns syscall.EAGAIN when none is
// waiting.
func Accept(lfd int) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	fd, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
	return fd, err
}

// Refuse accepts one waiting connection of the listening socket lfd on the spare's slot,
// writes answer to it, reads what the peer had sent (so the close is a FIN rather than a
// reset that could discard the answer before the peer reads it), closes it and opens the
// spare again. answered reports whether a connection got the answer; ok is false when
// no spare could be had (the caller then retries later), true otherwise, including when
// no connection was waiting.
func Refuse(lfd int, answer []byte) (answered, ok bool) {
	mu.Lock()
	defer mu.Unlock()
	if holdLocked(); reserve < 0 {
		return false, false
	}
	_ = syscall.Close(reserve)
	reserve = -1
	fd, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
	if err == nil {
		_, _ = syscall.Write(fd, answer)
		var discard [512]byte
		_, _ = syscall.Read(fd, discard[:])
		_ = syscall.Close(fd)
	}
	holdLocked()
	return err == nil, err == nil || err == syscall.EAGAIN
}
