package control

import (
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// Observer is told of this node's own client connections and their uplinks, besides
// the subscribed services; package server/webhook implements it to POST them to an
// HTTP endpoint. Set it in Options.Observer.
//
// Every method runs on the gateway's worker pool, inside the server.Handler call that
// caused it (OnConnect, OnDisconnect, OnMessage), before the port's own handling, and
// must not block. Events of other nodes' connections, which a cluster relays to this
// node's services, are not given to it: each node's Observer sees its own connections,
// so across a cluster nothing is seen twice. Acknowledgement events are not given to it.
type Observer interface {
	// OnConnect is told that c authenticated (the online event).
	OnConnect(c *server.Conn)
	// OnDisconnect is told that c closed with code (the offline event).
	OnDisconnect(c *server.Conn, code protocol.CloseCode)
	// OnUplink is given every client SEND with a non-empty route before it is routed,
	// and returns true when it takes uplinks of that route. Then a SEND no service is
	// subscribed to is answered with an empty SEND_REPLY instead of ERROR NO_ROUTE;
	// one a service is subscribed to still goes to it, and the client gets its REPLY.
	// It must not answer m (m.Reply, m.Fail).
	OnUplink(m *server.Message) bool
}

func (p *Port) observeConnect(c *server.Conn) {
	if o := p.opts.Observer; o != nil {
		o.OnConnect(c)
	}
}

func (p *Port) observeDisconnect(c *server.Conn, code protocol.CloseCode) {
	if o := p.opts.Observer; o != nil {
		o.OnDisconnect(c, code)
	}
}

// observeUplink gives m to the Observer, if any, and reports whether it took it.
func (p *Port) observeUplink(m *server.Message) bool {
	o := p.opts.Observer
	return o != nil && o.OnUplink(m)
}
