package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// The OpenAPI document is the API's contract: every test's requests go through
// validating, which checks each response (and each request the server accepted as
// well-formed) against docs/openapi.yaml, and TestOpenAPIRoutes checks that the
// document and the route table list the same operations.

const openAPIPath = "../../docs/openapi.yaml"

var (
	specOnce sync.Once
	spec     *openapi3.T
	specErr  error
)

// loadSpec loads and validates docs/openapi.yaml once.
func loadSpec(t testing.TB) *openapi3.T {
	t.Helper()
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		spec, specErr = loader.LoadFromFile(openAPIPath)
		if specErr == nil {
			specErr = spec.Validate(context.Background())
		}
	})
	if specErr != nil {
		t.Fatalf("%s: %v", openAPIPath, specErr)
	}
	return spec
}

// Every documented operation is served, and every served route is documented.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadSpec(t)
	var documented, served []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	for _, r := range routes {
		served = append(served, r.method+" "+r.path)
	}
	sort.Strings(documented)
	sort.Strings(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Fatalf("documented:\n%s\nserved:\n%s", strings.Join(documented, "\n"), strings.Join(served, "\n"))
	}
	// Open routes are exactly those the document exempts from the key.
	for _, r := range routes {
		op := doc.Paths.Find(r.path).GetOperation(r.method)
		exempt := op.Security != nil && len(*op.Security) == 0
		if exempt != r.open {
			t.Errorf("%s %s: served without a key %v, documented without one %v", r.method, r.path, r.open, exempt)
		}
	}
}

// validating wraps rt so that every exchange with a documented route is validated
// against the OpenAPI document: the response always, the request unless the server
// refused it as malformed (400, 405, 413), which tests do on purpose.
func validating(t *testing.T, rt http.RoundTripper) *validator {
	return &validator{t: t, rt: rt, doc: loadSpec(t), seen: make(map[string]map[int]bool)}
}

type validator struct {
	t   *testing.T
	rt  http.RoundTripper
	doc *openapi3.T

	mu   sync.Mutex
	seen map[string]map[int]bool // "METHOD /path" -> statuses validated
}

// covered fails the test unless every route had a success validated, and a failure
// too for those that need the key (/v1/healthz can only fail by method).
func (v *validator) covered(t *testing.T) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, r := range routes {
		var ok, failed bool
		for status := range v.seen[r.method+" "+r.path] {
			ok = ok || status < 300
			failed = failed || status >= 400
		}
		if !ok || !failed && !r.open {
			t.Errorf("%s %s: validated a success %v, a failure %v (statuses %v)", r.method, r.path, ok, failed, v.seen[r.method+" "+r.path])
		}
	}
}

func (v *validator) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		var err error
		if reqBody, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := v.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	v.check(req, reqBody, resp, respBody)
	return resp, nil
}

// check validates one exchange. An undocumented path or method (the 404 and 405
// tests) has no operation to check against: its body must be an ErrorBody.
func (v *validator) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	item := v.doc.Paths.Find(req.URL.Path)
	var operation *openapi3.Operation
	if item != nil {
		operation = item.GetOperation(req.Method)
	}
	if operation == nil {
		var body any
		err := json.Unmarshal(respBody, &body)
		if err == nil {
			err = v.doc.Components.Schemas["ErrorBody"].Value.VisitJSON(body)
		}
		if resp.StatusCode < 400 || err != nil {
			v.t.Errorf("OpenAPI: %s %s (undocumented) answered %d %s, want an ErrorBody: %v", req.Method, req.URL.Path, resp.StatusCode, respBody, err)
		}
		return
	}
	vreq := req.Clone(req.Context())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	in := &openapi3filter.RequestValidationInput{
		Request: vreq,
		Route:   &routers.Route{Spec: v.doc, Path: req.URL.Path, PathItem: item, Method: req.Method, Operation: operation},
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	switch {
	case resp.StatusCode == http.StatusBadRequest, resp.StatusCode == http.StatusMethodNotAllowed,
		resp.StatusCode == http.StatusRequestEntityTooLarge, req.Context().Value(invalidRequest{}) != nil:
	default:
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			v.t.Errorf("OpenAPI: request %s %s %s (answered %d) does not fit the document: %v", req.Method, req.URL.Path, reqBody, resp.StatusCode, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		v.t.Errorf("OpenAPI: response %d %s to %s %s does not fit the document: %v", resp.StatusCode, respBody, req.Method, req.URL.Path, err)
	}
	v.mu.Lock()
	op := req.Method + " " + req.URL.Path
	if v.seen[op] == nil {
		v.seen[op] = make(map[int]bool)
	}
	v.seen[op][resp.StatusCode] = true
	v.mu.Unlock()
}
