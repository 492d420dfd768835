//go:build !linux

package server

import "github.com/cloudwego/netpoll"

// reserveFD returns ln: the reserved-descriptor refusal (fdreserve_linux.go) is
// Linux-only; elsewhere netpoll pauses accepting and retries while out of descriptors.
func (s *Server) reserveFD(ln netpoll.Listener, _ Transport) netpoll.Listener { return ln }
