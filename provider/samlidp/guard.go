package samlidp

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/keystep/keystep/provider/internal/ratelimit"
	"github.com/keystep/keystep/provider/internal/xmlguard"
)

// Input limits in front of the library's parser.
const (
	maxPostBytes  = 64 << 10
	maxQueryBytes = 16 << 10
)

// guardSSO refuses, before the library parses anything, what keystep never
// accepts: other methods, oversized bodies and queries, repeated
// parameters, the SimpleSign binding (not offered), and XML with a DTD,
// entities, processing instructions, deep nesting or too many tokens
// (inflated with a cap, so a deflate bomb stops early). It only refuses:
// the library's own parse of the untouched request is the one used.
func (p *Provider) guardSSO(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := p.checkInput(w, r); err != nil {
			status := http.StatusBadRequest
			var mb *http.MaxBytesError
			switch {
			case errors.As(err, &mb):
				status = http.StatusRequestEntityTooLarge
			case errors.Is(err, errQueryTooLong):
				status = http.StatusRequestURITooLong
			case errors.Is(err, errMethod):
				w.Header().Set("Allow", "GET, POST")
				status = http.StatusMethodNotAllowed
			}
			p.onError(w, r, status, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

var (
	errQueryTooLong = errors.New("the query is too long")
	errMethod       = errors.New("only GET and POST are accepted")
)

func (p *Provider) checkInput(w http.ResponseWriter, r *http.Request) error {
	if len(r.URL.RawQuery) > maxQueryBytes {
		return errQueryTooLong
	}
	var value string
	deflated := false
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		for _, k := range []string{"SAMLRequest", "RelayState", "SigAlg", "Signature"} {
			if len(q[k]) > 1 {
				return fmt.Errorf("the parameter %s is given more than once", k)
			}
		}
		value, deflated = q.Get("SAMLRequest"), true
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxPostBytes)
		if err := r.ParseForm(); err != nil {
			return fmt.Errorf("read the form: %w", err)
		}
		for _, k := range []string{"SAMLRequest", "RelayState"} {
			if len(r.PostForm[k]) > 1 || (len(r.PostForm[k]) > 0 && r.URL.Query().Has(k)) {
				return fmt.Errorf("the parameter %s is given more than once", k)
			}
		}
		if r.Form.Has("SigAlg") || r.Form.Has("Signature") {
			return errors.New("the HTTP-POST-SimpleSign binding is not offered")
		}
		value = r.PostForm.Get("SAMLRequest")
	default:
		return errMethod
	}
	if value == "" {
		return errors.New("no SAMLRequest")
	}
	if _, err := xmlguard.DecodeRequest(value, deflated, xmlguard.Request); err != nil {
		return fmt.Errorf("SAMLRequest: %w", err)
	}
	return nil
}

// limitSSO answers 429 when one client address has sent too many requests
// this minute. The count is per instance, in memory.
func (p *Provider) limitSSO(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := ratelimit.Key(p.clientIP(r))
		if wait := p.ssoHits.Hit(key, p.clock.Now()); wait > 0 {
			p.log.WarnContext(r.Context(), "saml: too many requests from one address", "ip", key)
			ratelimit.TooMany(w, wait)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveSSO runs the library's SSO endpoint with an IdP for this request.
// GetSession sets the SP's own key and encryption once the SP is known;
// until then the IdP signs with the default RSA key (the library answers
// an expired request with a signed Requester status).
func (p *Provider) serveSSO(w http.ResponseWriter, r *http.Request) {
	idp, err := p.idpFor(r.Context(), nil, p.clock.Now())
	if err != nil {
		p.internalError(w, "signing key", err)
		return
	}
	idp.ServeSSO(w, r)
}
