package httpapi

import (
	"net/http"

	"github.com/tether-gw/tether/server/control"
)

// opRoute is the handler of a route that decodes its body into the control port's
// request type and runs the control.Ops method op on it, the same as the control
// port's session does (KICK, JOIN, LEAVE, PRESENCE).
func opRoute[Req, Res any](op func(control.Ops, *Req) (Res, error)) func(a *API, w http.ResponseWriter, r *http.Request) (any, error) {
	return func(a *API, w http.ResponseWriter, r *http.Request) (any, error) {
		var req Req
		if err := a.readBody(w, r, &req); err != nil {
			return nil, err
		}
		return op(a.ops, &req)
	}
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
