package main

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned by Store methods for a conversation or message that does
// not exist; the client gets ERROR 4008 NOT_FOUND.
var ErrNotFound = errors.New("chat: not found")

// errBadRequest (ERROR 4000 BAD_REQUEST: malformed or invalid) and errDenied (ERROR
// 4004 DENIED: not a member, not the sender, the recall window passed) wrap the
// request errors the client is told about; any other error is 4007 INTERNAL and
// logged.
var (
	errBadRequest = errors.New("chat: bad request")
	errDenied     = errors.New("chat: denied")
)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

func denied(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errDenied, fmt.Sprintf(format, args...))
}
