//go:build !linux

package fdreserve

import "syscall"

// Hold does nothing: the spare descriptor is Linux-only.
func Hold() {}

// Guard runs accept.
func Guard(accept func()) { accept() }

// Accept is not available outside Linux; it returns syscall.ENOSYS, and callers use
// their listener's own Accept.
func Accept(int) (int, error) { return -1, syscall.ENOSYS }

// Refuse has no spare to refuse with outside Linux.
func Refuse(int, []byte) (answered, ok bool) { return false, false }
