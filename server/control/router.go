package control

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tether-gw/tether/internal/wire"
	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server"
)

// maxRouteLen bounds subscribed route and prefix names.
const maxRouteLen = 255

// router maps a client SEND's route to the services subscribed to it: an exact route
// wins over prefixes, and among prefixes the longest wins. Prefixes are scanned
// linearly, longest first: services subscribe to a handful, and a scan of a few
// strings.HasPrefix calls is cheaper than a trie at that size.
//
// Subscriber lists and the event list are copy-on-write, so lookup returns a slice
// the caller may use after the lock is released.
type router struct {
	// announce, when set, tells the other nodes of a cluster a route's or prefix's
	// new subscriber count (server.AnnounceCount); called under mu, never blocks.
	announce func(kind server.CountKind, key string, n int)

	mu       sync.RWMutex
	exact    map[string]*group
	prefixes []*group // longest key first, then by key
	events   []*session
	acks     []*session // subscribed to "ack" events
}

// group is the services subscribed to one route or prefix; rr spreads uplinks over them.
type group struct {
	key  string
	subs []*session // copy-on-write
	rr   atomic.Uint32
}

func (r *router) init() { r.exact = make(map[string]*group) }

// lookup returns the group serving route and its subscribers, or nil.
func (r *router) lookup(route string) (*group, []*session) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if g := r.exact[route]; g != nil {
		return g, g.subs
	}
	for _, g := range r.prefixes {
		if strings.HasPrefix(route, g.key) {
			return g, g.subs
		}
	}
	return nil, nil
}

// localCount returns how many of this node's services serve route and with which key:
// exact tells an exact route from the longest matching prefix.
func (r *router) localCount(route string) (n int, key string, exact bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if g := r.exact[route]; g != nil {
		return len(g.subs), route, true
	}
	for _, g := range r.prefixes {
		if strings.HasPrefix(route, g.key) {
			return len(g.subs), g.key, false
		}
	}
	return 0, "", false
}

// told announces a group's subscriber count; r.mu is held.
func (r *router) told(kind server.CountKind, g *group, n int) {
	if r.announce != nil {
		r.announce(kind, g.key, n)
	}
}

// eventSubs returns the sessions subscribed to connection events.
func (r *router) eventSubs() []*session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.events
}

// ackSubs returns the sessions subscribed to ack events.
func (r *router) ackSubs() []*session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.acks
}

// setAcks adds s to, or removes it from, the ack event subscribers.
func (r *router) setAcks(s *session, on bool) {
	if on == s.acks {
		return
	}
	s.acks = on
	if on {
		r.acks = append(slices.Clip(r.acks), s)
	} else {
		r.acks = without(r.acks, s)
	}
	r.told(server.CountRoute, &group{key: ackKey}, len(r.acks))
}

// ackKey is the name under which a node tells the cluster how many of its services
// want ack events, as a route count (no route can be named so: routes are printable).
const ackKey = "\x00acks"

// subscribe adds sub to s's subscriptions.
func (r *router) subscribe(s *session, sub wire.Subscription, limit int) *Failure {
	if f := validRoutes(sub.Routes, false); f != nil {
		return f
	}
	if f := validRoutes(sub.Prefixes, true); f != nil {
		return f
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// A closing session has left the router already (close sets closing before it
	// takes r.mu): adding it back would route uplinks to a dead connection.
	if s.isClosing() {
		return fail(protocol.ErrorInternal, "connection closing")
	}
	if s.routes == nil {
		s.routes, s.prefixes = make(map[string]struct{}), make(map[string]struct{})
	}
	added := 0
	for _, k := range sub.Routes {
		if _, ok := s.routes[k]; !ok {
			added++
		}
	}
	for _, k := range sub.Prefixes {
		if _, ok := s.prefixes[k]; !ok {
			added++
		}
	}
	if len(s.routes)+len(s.prefixes)+added > limit {
		return fail(protocol.ErrorTooManyRooms, "too many subscriptions for this connection")
	}
	for _, k := range sub.Routes {
		if _, ok := s.routes[k]; ok {
			continue
		}
		s.routes[k] = struct{}{}
		g := r.exact[k]
		if g == nil {
			g = &group{key: k}
			r.exact[k] = g
		}
		g.subs = append(slices.Clip(g.subs), s)
		r.told(server.CountRoute, g, len(g.subs))
	}
	for _, k := range sub.Prefixes {
		if _, ok := s.prefixes[k]; ok {
			continue
		}
		s.prefixes[k] = struct{}{}
		i := slices.IndexFunc(r.prefixes, func(g *group) bool { return g.key == k })
		if i < 0 {
			r.prefixes = append(slices.Clip(r.prefixes), &group{key: k})
			sort.SliceStable(r.prefixes, func(a, b int) bool {
				ka, kb := r.prefixes[a].key, r.prefixes[b].key
				if len(ka) != len(kb) {
					return len(ka) > len(kb)
				}
				return ka < kb
			})
			i = slices.IndexFunc(r.prefixes, func(g *group) bool { return g.key == k })
		}
		g := r.prefixes[i]
		g.subs = append(slices.Clip(g.subs), s)
		r.told(server.CountPrefix, g, len(g.subs))
	}
	if sub.Events && !s.events {
		s.events = true
		r.events = append(slices.Clip(r.events), s)
	}
	if sub.Acks {
		r.setAcks(s, true)
	}
	return nil
}

// unsubscribe removes sub from s's subscriptions; names s is not subscribed to are
// ignored.
func (r *router) unsubscribe(s *session, sub wire.Subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range sub.Routes {
		if _, ok := s.routes[k]; ok {
			delete(s.routes, k)
			r.dropExact(s, k)
		}
	}
	for _, k := range sub.Prefixes {
		if _, ok := s.prefixes[k]; ok {
			delete(s.prefixes, k)
			r.dropPrefix(s, k)
		}
	}
	if sub.Events && s.events {
		s.events = false
		r.events = without(r.events, s)
	}
	if sub.Acks {
		r.setAcks(s, false)
	}
}

// removeSession drops every subscription of s.
func (r *router) removeSession(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range s.routes {
		r.dropExact(s, k)
	}
	for k := range s.prefixes {
		r.dropPrefix(s, k)
	}
	s.routes, s.prefixes = nil, nil
	if s.events {
		s.events = false
		r.events = without(r.events, s)
	}
	r.setAcks(s, false)
}

func (r *router) dropExact(s *session, k string) {
	g := r.exact[k]
	if g == nil {
		return
	}
	g.subs = without(g.subs, s)
	r.told(server.CountRoute, g, len(g.subs))
	if len(g.subs) == 0 {
		delete(r.exact, k)
	}
}

func (r *router) dropPrefix(s *session, k string) {
	i := slices.IndexFunc(r.prefixes, func(g *group) bool { return g.key == k })
	if i < 0 {
		return
	}
	g := r.prefixes[i]
	g.subs = without(g.subs, s)
	r.told(server.CountPrefix, g, len(g.subs))
	if len(g.subs) == 0 {
		r.prefixes = slices.Delete(slices.Clone(r.prefixes), i, i+1)
	}
}

// without returns a new slice holding ss minus s (copy-on-write).
func without(ss []*session, s *session) []*session {
	out := make([]*session, 0, len(ss))
	for _, x := range ss {
		if x != s {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// snapshot returns s's subscriptions, sorted.
func (r *router) snapshot(s *session) wire.SubscribeResult {
	r.mu.RLock()
	defer r.mu.RUnlock()
	res := wire.SubscribeResult{Routes: []string{}, Prefixes: []string{}, Events: s.events, Acks: s.acks}
	for k := range s.routes {
		res.Routes = append(res.Routes, k)
	}
	for k := range s.prefixes {
		res.Prefixes = append(res.Prefixes, k)
	}
	sort.Strings(res.Routes)
	sort.Strings(res.Prefixes)
	return res
}

// counts returns the number of distinct routes and prefixes, and of event subscribers.
func (r *router) counts() (routes, prefixes, events int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.exact), len(r.prefixes), len(r.events)
}

// validRoutes checks subscribed names: not empty (prefixes may be, to match every
// route) and at most maxRouteLen bytes.
func validRoutes(names []string, prefix bool) *Failure {
	for _, k := range names {
		if k == "" && !prefix {
			return badRequest("empty route name")
		}
		if len(k) > maxRouteLen {
			return badRequest("route or prefix longer than 255 bytes")
		}
	}
	return nil
}
