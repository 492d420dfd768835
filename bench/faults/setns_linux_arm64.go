package faults

// sysSetns is setns(2) on linux/arm64 (package syscall does not define it here).
const sysSetns = 268
