package floor

import (
	"fmt"
	"strings"
)

// Text renders the result for people.
func (r *Result) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, `kernel floor, raw system calls on one locked thread
in process (%d loopback socket pairs, %d rounds; CPU time of that thread; nobody is blocked reading the client ends):
  write(2) of %d bytes to one socket        %7.2f µs CPU  (%.2f µs wall)
  read(2) 12 B + write(2) 12 B (heartbeat)  %7.2f µs CPU  (%.2f µs wall)
  the same, with epoll_wait                 %7.2f µs CPU
  accept4(2)+close(2), bare accept loop     %7.2f µs CPU, %.0f accepts/s (%d connections)
`, r.N, r.Rounds, r.Size, r.Write/1e3, r.WriteWall/1e3, r.ReadWrite/1e3, r.ReadWriteWall/1e3, r.EpollReadWrite/1e3,
		r.Accept/1e3, r.AcceptRate, r.Accepts)
	if r.Conns > 0 {
		fmt.Fprintf(&b, `fair (%d connections; a peer process reads the client ends with goroutines blocked in epoll, as the loaders do;
CPU is utime+stime of the probe process from /proc, as for the servers):
  write(2) of %d bytes to one socket        %7.2f µs CPU  (%.2f µs wall; peer %.2f µs CPU per message read)
  heartbeat: epoll_wait + read(2) + write(2) %6.2f µs CPU  (%d PINGs at %.0f/s, %.2f ready sockets per epoll_wait; peer %.2f µs CPU per PING)
`, r.Conns, r.Size, r.FairWrite/1e3, r.FairWriteWall/1e3, r.FairWritePeer/1e3,
			r.FairHeartbeat/1e3, r.FairHeartbeats, r.FairHeartbeatRate, r.FairEventsPerWait, r.FairHeartbeatPeer/1e3)
	}
	return b.String()
}
