package backoff_test

import (
	"fmt"
	"time"

	"github.com/tether-gw/tether/internal/backoff"
)

// A client whose every session is closed right after authentication (two app
// instances sharing a device id, say) sees the ceiling of its waits double up
// to the cap, with package client's defaults; a session that lives StableAfter
// starts it over.
func ExampleSchedule() {
	s := backoff.Schedule{
		Policy:      backoff.Policy{Min: 250 * time.Millisecond, Max: 30 * time.Second},
		StableAfter: 10 * time.Second,
	}
	for range 8 {
		s.Next(backoff.Ending{Authenticated: true, Lived: 50 * time.Millisecond})
		fmt.Print(s.Ceiling(s.Failures()), " ")
	}
	s.Next(backoff.Ending{Authenticated: true, Lived: time.Minute})
	fmt.Println("| after a stable session:", s.Ceiling(s.Failures()))
	// Output: 500ms 1s 2s 4s 8s 16s 30s 30s | after a stable session: 250ms
}
