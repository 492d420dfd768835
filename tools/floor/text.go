package floor

import "fmt"

// Text renders the result for people.
func (r *Result) Text() string {
	return fmt.Sprintf(`kernel floor, one locked thread issuing raw system calls, CPU time of that thread
(%d loopback socket pairs, %d rounds):
  write(2) of %d bytes to one socket        %7.2f µs CPU  (%.2f µs wall)
  read(2) 12 B + write(2) 12 B (heartbeat)  %7.2f µs CPU  (%.2f µs wall)
  the same, with epoll_wait                 %7.2f µs CPU
  accept4(2)+close(2), bare accept loop     %7.2f µs CPU, %.0f accepts/s (%d connections)
`, r.N, r.Rounds, r.Size, r.Write/1e3, r.WriteWall/1e3, r.ReadWrite/1e3, r.ReadWriteWall/1e3, r.EpollReadWrite/1e3,
		r.Accept/1e3, r.AcceptRate, r.Accepts)
}
