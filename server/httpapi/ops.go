package httpapi

import (
	"net/http"

	"github.com/tether-gw/tether/internal/wire"
)

// The routes other than pushes: each decodes its body into the control port's request
// type and runs the same control.Ops method as the control port's session.

// kick is POST /v1/kick.
func (a *API) kick(w http.ResponseWriter, r *http.Request) (any, error) {
	var req wire.Kick
	if err := a.readBody(w, r, &req); err != nil {
		return nil, err
	}
	return a.ops.Kick(&req)
}

// join is POST /v1/rooms/join.
func (a *API) join(w http.ResponseWriter, r *http.Request) (any, error) {
	var req wire.Room
	if err := a.readBody(w, r, &req); err != nil {
		return nil, err
	}
	return a.ops.Join(&req)
}

// leave is POST /v1/rooms/leave.
func (a *API) leave(w http.ResponseWriter, r *http.Request) (any, error) {
	var req wire.Room
	if err := a.readBody(w, r, &req); err != nil {
		return nil, err
	}
	return a.ops.Leave(&req)
}

// presence is POST /v1/presence.
func (a *API) presence(w http.ResponseWriter, r *http.Request) (any, error) {
	var req wire.Presence
	if err := a.readBody(w, r, &req); err != nil {
		return nil, err
	}
	return a.ops.Presence(&req)
}

// stats is GET /v1/stats.
func (a *API) stats(http.ResponseWriter, *http.Request) (any, error) { return a.ops.Stats() }

// Health is the result of GET /v1/healthz.
type Health struct {
	// Status is "ok" while the API serves.
	Status string `json:"status"`
	// Draining is true once the gateway has begun a graceful shutdown.
	Draining bool `json:"draining"`
}

// healthz is GET /v1/healthz, served without the key.
func (a *API) healthz(http.ResponseWriter, *http.Request) (any, error) {
	return &Health{Status: "ok", Draining: a.srv.Stats().Draining}, nil
}
