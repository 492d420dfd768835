package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/tether-gw/tether/internal/wire"
)

// PushRequest is the body of POST /v1/push and one element of a batch: the control
// port's PUSH header (exactly one of users, conns, room and all; qos; exclude) with the
// payload, as UTF-8 text (Payload) or base64 (PayloadB64), exactly one of the two.
type PushRequest struct {
	wire.Push
	Payload    *string `json:"payload,omitempty"`
	PayloadB64 *string `json:"payload_b64,omitempty"`
}

// BatchRequest is the body of POST /v1/push/batch: up to Options.MaxBatch pushes,
// run in order.
type BatchRequest struct {
	Pushes []json.RawMessage `json:"pushes"`
}

// BatchResponse is the result of POST /v1/push/batch: one item per push, in order,
// and how many succeeded and failed.
type BatchResponse struct {
	Results []BatchItem `json:"results"`
	OK      int         `json:"ok"`
	Failed  int         `json:"failed"`
}

// BatchItem is one push's outcome in a BatchResponse: its result, or its error.
type BatchItem struct {
	Result *wire.PushResult `json:"result,omitempty"`
	Error  *Error           `json:"error,omitempty"`
}

// payload returns the request's payload bytes.
func (p *PushRequest) payload() ([]byte, error) {
	switch {
	case (p.Payload == nil) == (p.PayloadB64 == nil):
		return nil, badRequest("a push needs exactly one of payload and payload_b64")
	case p.Payload != nil:
		return []byte(*p.Payload), nil
	}
	b, err := base64.StdEncoding.DecodeString(*p.PayloadB64)
	if err != nil {
		return nil, badRequest("payload_b64 is not base64 (RFC 4648, with padding): " + err.Error())
	}
	return b, nil
}

// push is POST /v1/push.
func (a *API) push(w http.ResponseWriter, r *http.Request) (any, error) {
	var req PushRequest
	if err := a.readBody(w, r, &req); err != nil {
		return nil, err
	}
	return a.pushOne(&req)
}

// pushOne runs one decoded push.
func (a *API) pushOne(req *PushRequest) (*wire.PushResult, error) {
	payload, err := req.payload()
	if err != nil {
		return nil, err
	}
	res, err := a.ops.Push(&req.Push, payload)
	if err != nil {
		return nil, err
	}
	a.m.delivered.Add(res.Delivered)
	return res, nil
}

// pushBatch is POST /v1/push/batch. A malformed batch fails as a whole; each push of
// a well-formed one succeeds or fails on its own, as it would alone, and the pushes
// run in order, so a later one never overtakes an earlier one to the same connection.
func (a *API) pushBatch(w http.ResponseWriter, r *http.Request) (any, error) {
	var req BatchRequest
	if err := a.readBody(w, r, &req); err != nil {
		return nil, err
	}
	switch {
	case len(req.Pushes) == 0:
		return nil, badRequest("the batch has no pushes")
	case len(req.Pushes) > a.opts.MaxBatch:
		return nil, badRequest("the batch has " + strconv.Itoa(len(req.Pushes)) + " pushes, more than " + strconv.Itoa(a.opts.MaxBatch))
	}
	res := &BatchResponse{Results: make([]BatchItem, len(req.Pushes))}
	for i, raw := range req.Pushes {
		var p PushRequest
		err := decodeJSON(raw, &p)
		var pr *wire.PushResult
		if err == nil {
			pr, err = a.pushOne(&p)
		}
		if err != nil {
			res.Results[i].Error = asError(err)
			res.Failed++
			continue
		}
		res.Results[i].Result = pr
		res.OK++
	}
	a.m.batchOK.Add(res.OK)
	a.m.batchFail.Add(res.Failed)
	return res, nil
}
