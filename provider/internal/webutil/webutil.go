// Package webutil holds the small HTTP helpers the front doors (the
// OpenID Provider, the SAML IdP) share.
package webutil

import (
	"bytes"
	"net"
	"net/http"
)

// RemoteIP is the host of the request's RemoteAddr, the client's address
// when no trusted proxy stands in front.
func RemoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// IsLoopback reports whether a URL's host is this machine: localhost or a
// loopback address. Only there is plain http accepted without
// --insecure-dev.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Recorder buffers a handler's response so that the caller can look at it
// before anything reaches the client (see CopyTo).
type Recorder struct {
	Code int
	head http.Header
	Body bytes.Buffer
}

// NewRecorder returns an empty Recorder whose status is 200.
func NewRecorder() *Recorder { return &Recorder{Code: http.StatusOK, head: http.Header{}} }

// Header implements http.ResponseWriter.
func (r *Recorder) Header() http.Header { return r.head }

// WriteHeader implements http.ResponseWriter.
func (r *Recorder) WriteHeader(code int) { r.Code = code }

// Write implements http.ResponseWriter.
func (r *Recorder) Write(b []byte) (int, error) { return r.Body.Write(b) }

// CopyTo writes the recorded response to w as it was.
func (r *Recorder) CopyTo(w http.ResponseWriter) {
	for k, v := range r.head {
		w.Header()[k] = v
	}
	w.WriteHeader(r.Code)
	_, _ = w.Write(r.Body.Bytes())
}
