package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/tether-gw/tether/protocol"
	"github.com/tether-gw/tether/server/control"
)

// route is one endpoint of the API. A handler returns the JSON result (sent 200) or an
// error (an *Error, or a *control.Failure from an operation), which ServeHTTP renders.
type route struct {
	method, path string
	name         string // the metrics label
	open         bool   // served without the key
	handle       func(a *API, w http.ResponseWriter, r *http.Request) (any, error)
}

// routes is every endpoint; docs/openapi.yaml documents exactly these
// (TestOpenAPIRoutes).
var routes = []route{
	{method: http.MethodPost, path: "/v1/push", name: "push", handle: (*API).push},
	{method: http.MethodPost, path: "/v1/push/batch", name: "push_batch", handle: (*API).pushBatch},
	{method: http.MethodPost, path: "/v1/kick", name: "kick", handle: opRoute(control.Ops.Kick)},
	{method: http.MethodPost, path: "/v1/rooms/join", name: "rooms_join", handle: opRoute(control.Ops.Join)},
	{method: http.MethodPost, path: "/v1/rooms/leave", name: "rooms_leave", handle: opRoute(control.Ops.Leave)},
	{method: http.MethodPost, path: "/v1/presence", name: "presence", handle: opRoute(control.Ops.Presence)},
	{method: http.MethodGet, path: "/v1/stats", name: "stats", handle: (*API).stats},
	{method: http.MethodGet, path: "/v1/healthz", name: "healthz", open: true, handle: (*API).healthz},
}

// ServeHTTP routes a request, checks its method and key, runs its handler and writes
// the result or the error as JSON, counting it in the metrics.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rt, err := a.match(w, r)
	name := "unknown"
	var res any
	if rt != nil {
		name = rt.name
		if !rt.open {
			err = a.authorize(w, r)
		}
		if err == nil {
			res, err = rt.handle(a, w, r)
		}
	}
	status := http.StatusOK
	if err != nil {
		e := asError(err)
		status, res = e.Status, &ErrorBody{Error: e}
	}
	writeJSON(w, status, res)
	a.m.request(name, status)
	if rt != nil {
		a.m.route(name).Observe(time.Since(start).Seconds())
	}
}

// match finds the route of r: 404 for an unknown path, 405 (with Allow) for a method
// the path does not serve.
func (a *API) match(w http.ResponseWriter, r *http.Request) (*route, error) {
	rs := a.routes[r.URL.Path]
	if len(rs) == 0 {
		return nil, newError(http.StatusNotFound, protocol.ErrorNotFound, "no such route: "+r.URL.Path)
	}
	allow := make([]string, 0, len(rs))
	for _, rt := range rs {
		if rt.method == r.Method {
			return rt, nil
		}
		allow = append(allow, rt.method)
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	return nil, newError(http.StatusMethodNotAllowed, protocol.ErrorBadRequest, r.Method+" not allowed on "+r.URL.Path+"; use "+strings.Join(allow, ", "))
}

// writeJSON writes v as the JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v) // a write error means the client went away
}
