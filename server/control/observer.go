package control

import "github.com/tether-gw/tether/internal/wire"

// Observer is told of this node's own client connections and their uplinks, besides
// the subscribed services; package server/webhook implements it to POST them to an
// HTTP endpoint. Set it in Options.Observer.
//
// Both methods run on the gateway's worker pool (the goroutine of the Handler call
// that caused them) and must not block. Events of other nodes' connections, which a
// cluster forwards to this node's services, are not given to it: each node's Observer
// sees its own connections, so in a cluster nothing is seen twice.
type Observer interface {
	// OnEvent is told of an online event (from OnConnect) and of an offline event
	// with its close code and reason (from OnDisconnect). ev must not be retained.
	OnEvent(ev *wire.Event)
	// OnUplink is given every client SEND with a non-empty route before it is routed,
	// and returns true when it takes uplinks of that route. Then a SEND that no
	// service is subscribed to is answered with an empty SEND_REPLY instead of ERROR
	// NO_ROUTE; one a service is subscribed to still goes to it, and the client gets
	// its REPLY. up must not be retained; payload is the caller's to keep.
	OnUplink(up *wire.Uplink, payload []byte) bool
}

// observe gives ev to the Observer, if any.
func (p *Port) observe(ev *wire.Event) {
	if o := p.opts.Observer; o != nil {
		o.OnEvent(ev)
	}
}

// observeUplink gives an uplink to the Observer, if any, and reports whether it took it.
func (p *Port) observeUplink(up *wire.Uplink, payload []byte) bool {
	o := p.opts.Observer
	return o != nil && o.OnUplink(up, payload)
}
