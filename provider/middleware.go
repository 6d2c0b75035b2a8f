package provider

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/keystep/keystep/provider/api"
)

// HeaderRequestID names the response header that carries the request id,
// the one the server's log mentions for this request.
const HeaderRequestID = "X-Request-Id"

type ctxKey int

const requestIDKey ctxKey = iota

// requestID returns the id that guard gave the request.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// securityHeaders are set on every response.
var securityHeaders = map[string]string{
	"Cache-Control":           "no-store",
	"X-Content-Type-Options":  "nosniff",
	"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
	"Referrer-Policy":         "no-referrer",
}

// guard gives every request an id, sets the security headers and turns a
// panic into a logged internal error that tells the client only the id.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		start := time.Now()
		r, span := s.tel.startRequest(r, id)
		h := w.Header()
		for k, v := range securityHeaders {
			h.Set(k, v)
		}
		h.Set(HeaderRequestID, id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
		tw := &trackingWriter{ResponseWriter: w}
		// Counted (and the span ended) last, once a panic is answered; the
		// mux has set r.Pattern by then.
		defer func() { s.tel.observeRequest(r, span, r.Pattern, tw.code, start) }()
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "panic in handler", "request_id", id, "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if tw.wrote {
				panic(http.ErrAbortHandler) // too late for a clean answer: cut the connection
			}
			writeProblem(tw, internalProblem(id))
		}()
		next.ServeHTTP(tw, r)
	})
}

// trackingWriter remembers whether the response has started, and its
// status code.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
	code  int
}

func (t *trackingWriter) WriteHeader(code int) {
	if code >= 200 && !t.wrote {
		t.wrote, t.code = true, code
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	if !t.wrote {
		t.wrote, t.code = true, http.StatusOK
	}
	return t.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and the deadlines.
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// routeMisses answers the mux's own "404 page not found" and "405 method
// not allowed" as problem documents; everything else goes to the mux.
func (s *Server) routeMisses(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &bufferedWriter{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.code {
		case http.StatusNotFound:
			writeProblem(w, problem(api.ProblemNotFound, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path))
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeProblem(w, api.Problem{Type: "about:blank", Title: "Method Not Allowed",
				Status: http.StatusMethodNotAllowed, Detail: r.Method + " is not allowed here; allowed: " + rec.header.Get("Allow")})
		default: // a redirect to the clean path
			for k, v := range rec.header {
				if k != "Content-Type" {
					w.Header()[k] = v
				}
			}
			w.WriteHeader(rec.code)
		}
	})
}

// bufferedWriter captures what the mux's fallback handlers write.
type bufferedWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}
