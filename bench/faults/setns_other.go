//go:build !(linux && (amd64 || arm64))

package faults

// sysSetns is unknown here: halfopen fails with ENOSYS.
const sysSetns = -1
