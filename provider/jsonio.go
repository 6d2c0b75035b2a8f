package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/keystep/keystep/provider/api"
)

// MaxBodyBytes is the largest request body either API reads.
const MaxBodyBytes = 64 << 10

// readBody reads the whole body up to MaxBodyBytes. On failure it returns
// the problem to answer.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *api.Problem) {
	if r.ContentLength > MaxBodyBytes {
		p := tooLarge()
		return nil, &p
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			p := tooLarge()
			return nil, &p
		}
		p := invalid("could not read the request body")
		return nil, &p
	}
	return b, nil
}

func tooLarge() api.Problem {
	return problem(api.ProblemTooLarge, http.StatusRequestEntityTooLarge,
		fmt.Sprintf("the request body must be at most %d bytes", MaxBodyBytes))
}

// decodeJSON strictly decodes body into v: Content-Type application/json,
// no unknown fields, exactly one JSON value. An empty body is refused
// unless emptyOK, in which case v keeps its zero value.
func decodeJSON(r *http.Request, body []byte, v any, emptyOK bool) *api.Problem {
	if len(bytes.TrimSpace(body)) == 0 {
		if emptyOK {
			return nil
		}
		p := invalid("the request needs a JSON body")
		return &p
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		p := invalid("the body must be sent with Content-Type: application/json")
		return &p
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		p := invalid(jsonError(err))
		return &p
	}
	if _, err := dec.Token(); err != io.EOF {
		p := invalid("the body must hold exactly one JSON value")
		return &p
	}
	return nil
}

// jsonError says what is wrong with a body in the client's terms, without
// Go type names.
func jsonError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("the body is not valid JSON (at byte %d)", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "the body must be a JSON object"
		}
		return fmt.Sprintf("field %q must be %s", typ.Field, jsonKind(typ.Type))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is truncated JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	default:
		return "the body is not valid JSON for this request"
	}
}

// jsonKind names the JSON kind of a Go type.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}

// writeJSON sends v as application/json with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Errorf("marshal %T: %w", v, err)) // guard logs it and answers 500
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
