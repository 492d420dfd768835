package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/tether-gw/tether/protocol"
)

// readBody reads r's body, at most Options.MaxBodyBytes (413 beyond), and decodes it
// into v (decodeJSON).
func (a *API) readBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return newError(http.StatusRequestEntityTooLarge, protocol.ErrorBadRequest,
				"body larger than "+strconv.FormatInt(a.opts.MaxBodyBytes, 10)+" bytes")
		}
		return badRequest("cannot read the body: " + err.Error())
	}
	return decodeJSON(body, v)
}

// decodeJSON decodes data, which must be one JSON object with only v's fields, into v;
// anything else is BAD_REQUEST.
func decodeJSON(data []byte, v any) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return badRequest("the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON: " + err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("invalid JSON: data after the object")
	}
	return nil
}
