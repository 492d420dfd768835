package faults

import "syscall"

// setns moves the calling thread into the namespace of the descriptor fd (nstype
// CLONE_NEWNET). It calls the system call directly so that the module needs no
// golang.org/x/sys of its own.
func setns(fd uintptr) error {
	if sysSetns < 0 {
		return syscall.ENOSYS
	}
	if _, _, e := syscall.RawSyscall(uintptr(sysSetns), fd, syscall.CLONE_NEWNET, 0); e != 0 {
		return e
	}
	return nil
}
