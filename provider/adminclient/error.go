package adminclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// Error is an error answer of a keystep server: the problem+json document it
// sent, or one made up from the status when the body was not a problem
// (a proxy's error page, say). The device API's client returns it too.
type Error struct {
	Problem api.Problem
}

// Error returns the problem's title and detail.
func (e *Error) Error() string {
	title := e.Problem.Title
	if title == "" {
		title = fmt.Sprintf("server answered %d %s", e.Problem.Status, http.StatusText(e.Problem.Status))
	}
	if e.Problem.Detail == "" || e.Problem.Detail == title {
		return title
	}
	return title + ": " + e.Problem.Detail
}

// problemErrors maps each problem type to the flows error it stands for.
var problemErrors = map[string]error{
	api.ProblemInvalid:              flows.ErrInvalid,
	api.ProblemNotFound:             flows.ErrNotFound,
	api.ProblemConflict:             flows.ErrConflict,
	api.ProblemAccountSuspended:     flows.ErrAccountSuspended,
	api.ProblemAccountRemoved:       flows.ErrAccountRemoved,
	api.ProblemNoDevice:             flows.ErrNoDevice,
	api.ProblemDeviceUnregistered:   flows.ErrDeviceUnregistered,
	api.ProblemWrongAccount:         flows.ErrWrongAccount,
	api.ProblemExpired:              flows.ErrExpired,
	api.ProblemAlreadyDecided:       flows.ErrAlreadyDecided,
	api.ProblemAlreadyUsed:          flows.ErrAlreadyUsed,
	api.ProblemBadSignature:         flows.ErrBadSignature,
	api.ProblemReplay:               flows.ErrReplay,
	api.ProblemMethodNotAllowed:     flows.ErrMethodNotAllowed,
	api.ProblemWrongNumber:          flows.ErrWrongNumber,
	api.ProblemWrongCode:            flows.ErrWrongCode,
	api.ProblemLocked:               flows.ErrLocked,
	api.ProblemRateLimited:          flows.ErrRateLimited,
	api.ProblemDeliveryFailed:       flows.ErrDeliveryFailed,
	api.ProblemChannelUnavailable:   flows.ErrChannelUnavailable,
	api.ProblemDirectoryUnavailable: flows.ErrDirectoryUnavailable,
}

// Unwrap returns the flows error the problem type stands for, if any, so
// that errors.Is(err, flows.ErrAccountSuspended) and the like hold for the
// problem type that carries that error over the wire.
func (e *Error) Unwrap() error { return problemErrors[e.Problem.Type] }

// HasType reports whether err is (or wraps) an *Error whose problem type is
// typ, one of the api.Problem* constants.
func HasType(err error, typ string) bool {
	p, ok := AsProblem(err)
	return ok && p.Type == typ
}

// AsProblem returns the problem document inside err, if it holds one.
func AsProblem(err error) (api.Problem, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Problem, true
	}
	return api.Problem{}, false
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// ReadError turns a non-2xx answer into an *Error, decoding its
// problem+json body when it has one. It reads (a bounded part of) the body
// but does not close it.
func ReadError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return DecodeProblem(resp.StatusCode, resp.Header.Get("Content-Type"), body)
}

// DecodeProblem builds the *Error for an answer with the given status,
// content type and body. A body that is not a problem document still gives
// an *Error, with the status and a short excerpt of the body as detail.
func DecodeProblem(status int, contentType string, body []byte) *Error {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/problem+json" || mt == "application/json" {
		var p api.Problem
		if err := json.Unmarshal(body, &p); err == nil && (p.Type != "" || p.Title != "") {
			if p.Status == 0 {
				p.Status = status
			}
			return &Error{Problem: p}
		}
	}
	p := api.Problem{Status: status, Title: fmt.Sprintf("server answered %d %s", status, http.StatusText(status))}
	if excerpt := strings.TrimSpace(string(body)); excerpt != "" && isText(mt) {
		p.Detail = clip(excerpt, 200)
	}
	return &Error{Problem: p}
}

func isText(mediaType string) bool {
	return mediaType == "" || strings.HasPrefix(mediaType, "text/") || strings.HasSuffix(mediaType, "json")
}

// clip shortens s to at most n bytes on a rune boundary, on one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
