package server

import (
	"errors"
	"fmt"

	"github.com/tether-gw/tether/protocol"
)

var (
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("server: closed")
	// ErrNoAuthenticator is returned by New when Options.Authenticator is nil.
	ErrNoAuthenticator = errors.New("server: no authenticator configured (use a JWT authenticator, or InsecureAuthenticator for development)")
	// ErrConnNotFound is returned when a push, kick or room operation names a
	// connection that is not connected.
	ErrConnNotFound = errors.New("server: connection not found")
	// ErrNotReady is returned by Conn.Push before the connection has been sent AUTH_OK.
	ErrNotReady = errors.New("server: connection not authenticated yet")
	// ErrTooManyRooms is returned by Join when a connection is already in
	// Options.MaxRoomsPerConn rooms.
	ErrTooManyRooms = errors.New("server: too many rooms for this connection")
	// ErrDeferReply is returned by Handler.OnMessage to say that it will answer later
	// through Message.Reply or Message.Fail (for example after asking a backend service).
	ErrDeferReply = errors.New("server: reply deferred")
	// ErrAlreadyReplied is returned by Message.Reply and Message.Fail when the message
	// was already answered.
	ErrAlreadyReplied = errors.New("server: message already answered")
	// ErrConnClosed is returned when writing to a connection that is closing or closed.
	ErrConnClosed = errors.New("server: connection closed")
	// ErrPayloadTooLarge is returned by pushes and replies whose frame would exceed
	// Options.MaxFrame, the size announced to clients in AUTH_OK.
	ErrPayloadTooLarge = errors.New("server: payload exceeds the announced max frame size")
	// ErrInvalidRoom is returned for an empty room name or one longer than 255 bytes.
	ErrInvalidRoom = errors.New("server: invalid room name")
)

// ReplyError is an error a Handler returns to answer a SEND with an ERROR frame carrying
// a specific code (from the 4000-4999 range) instead of ErrorInternal.
type ReplyError struct {
	// Code is sent in the ERROR frame.
	Code protocol.ErrorCode
	// Message is sent in the ERROR frame; keep it short and free of secrets.
	Message string
}

// Error implements error.
func (e *ReplyError) Error() string {
	return fmt.Sprintf("server: reply error %s: %s", e.Code, e.Message)
}

// errorReply maps a handler error to the ERROR frame's code and message.
func errorReply(err error) (protocol.ErrorCode, string) {
	var re *ReplyError
	if errors.As(err, &re) {
		return re.Code, re.Message
	}
	return protocol.ErrorInternal, "internal error"
}
