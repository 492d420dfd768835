// Package fdreserve keeps the process's one spare file descriptor, with which a listener
// that is out of descriptors (accept fails with EMFILE or ENFILE) can still answer a
// waiting client, say SERVER_FULL, instead of leaving it in the kernel's backlog waiting
// for an answer that never comes.
//
// The trick frees the spare, accepts on the slot it left, writes the answer, closes, and
// opens the spare again. Any descriptor opened by another thread in that window takes
// the slot; a second listener of the process retrying its own accept is the likely
// thief. So every accept of the process's listeners goes through Accept (or Guard),
// which takes the same lock as Refuse: no listener of ours can take the slot another is
// refusing with. One spare for the whole process is enough, because refusals are
// serialised by that lock.
//
// It is Linux-only (accept4); elsewhere Refuse reports that it has no reserve and the
// listeners fall back to retrying with back-off.
package fdreserve

import "syscall"

// IsOutOfFD reports whether err means the process or the system ran out of file
// descriptors.
func IsOutOfFD(err error) bool {
	return err == syscall.EMFILE || err == syscall.ENFILE
}
