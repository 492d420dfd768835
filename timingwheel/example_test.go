package timingwheel_test

import (
	"fmt"
	"time"

	"github.com/tether-gw/tether/timingwheel"
)

// session is a caller's struct with its heartbeat timer embedded.
type session struct {
	name string
	idle timingwheel.Timer[session]
}

// Example drives the pure core with made-up times: a session that keeps
// talking touches its deadline and survives; a silent one expires.
func Example() {
	const timeout = 30 * int64(time.Second)
	w := timingwheel.New[session](timingwheel.Options{Now: func() int64 { return 1 }})

	chatty, silent := &session{name: "chatty"}, &session{name: "silent"}
	for _, s := range []*session{chatty, silent} {
		s.idle.SetOwner(s)
		w.Schedule(&s.idle, w.Clock()+timeout)
	}

	var expired []*timingwheel.Timer[session]
	for now := int64(1); now <= 60*int64(time.Second); now += int64(time.Second) {
		chatty.idle.Touch(now + timeout) // a message arrived: one CAS, no lock
		expired = w.Advance(now, expired[:0])
		for _, t := range expired {
			fmt.Printf("%s idle at %ds\n", t.Owner().name, now/int64(time.Second))
		}
	}
	fmt.Println("pending:", w.Len(), chatty.idle.Pending())
	// Output:
	// silent idle at 30s
	// pending: 1 true
}
