package samlidp

import (
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/keystep/keystep/flows"
)

// An IdP-initiated login starts at keystep (/saml/login/{sp}) for an SP
// that allows it: the user names themselves, takes the step, and the SP
// gets an unsolicited Response. It is a possession-only login (no host
// first factor), so it asserts the methods' own classes, never REFEDS MFA.

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in to {{.Name}}</title></head>
<body><main>
<h1>Sign in to {{.Name}}</h1>
<form method="post" action="/saml/login/{{.ID}}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<input type="hidden" name="RelayState" value="{{.RelayState}}">
<button type="submit">Continue</button>
</form>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
</main></body></html>
`))

type loginData struct {
	ID, Name, RelayState, Error string
}

func loginHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// loginSP is the SP of an IdP-initiated login, or nil when it has none.
func (p *Provider) loginSP(r *http.Request) *sp {
	s := p.registry.byID[r.PathValue("sp")]
	if s == nil || !s.cfg.IdPInitiated {
		return nil
	}
	return s
}

// relayPath accepts an IdP-initiated RelayState only as a path on the SP
// ("/home"): anyone can craft the login link, and many SPs redirect to
// the RelayState, so a URL there would be an open redirect at the SP.
func relayPath(v string) bool {
	return v == "" || (len(v) <= maxRelayState && strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//") &&
		!strings.ContainsAny(v, "\\\r\n\t"))
}

func (p *Provider) serveLoginForm(w http.ResponseWriter, r *http.Request) {
	s := p.loginSP(r)
	if s == nil {
		http.NotFound(w, r)
		return
	}
	relay := r.URL.Query().Get("RelayState")
	if !relayPath(relay) {
		plainError(w, "The RelayState must be a path on the app, such as /home.", http.StatusBadRequest)
		return
	}
	loginHeaders(w)
	_ = loginPage.Execute(w, loginData{ID: s.cfg.ID, Name: s.cfg.Name, RelayState: relay})
}

var crossOrigin = http.NewCrossOriginProtection()

func (p *Provider) serveLogin(w http.ResponseWriter, r *http.Request) {
	s := p.loginSP(r)
	if s == nil {
		http.NotFound(w, r)
		return
	}
	if err := crossOrigin.Check(r); err != nil {
		plainError(w, "This form must be sent from keystep's own page.", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		plainError(w, "The form cannot be read.", http.StatusBadRequest)
		return
	}
	relay := r.PostForm.Get("RelayState")
	if !relayPath(relay) {
		plainError(w, "The RelayState must be a path on the app, such as /home.", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	account, err := p.matchAccount(ctx, s.cfg.Match, r.PostForm.Get("username"))
	if err == nil && account.State != flows.AccountActive {
		err = errors.New("not active")
	}
	if err != nil {
		loginHeaders(w)
		w.WriteHeader(http.StatusForbidden)
		_ = loginPage.Execute(w, loginData{ID: s.cfg.ID, Name: s.cfg.Name, RelayState: relay,
			Error: "This user cannot sign in with keystep. Contact your IT administrator."})
		return
	}
	idp, err := p.idpFor(ctx, s, p.clock.Now())
	if err != nil {
		p.internalError(w, "signing key", err)
		return
	}
	req, err := idp.NewIdpInitiatedRequest(r, s.cfg.EntityID, relay)
	if err != nil {
		p.log.WarnContext(ctx, "saml: IdP-initiated login impossible", "sp", s.cfg.ID, "err", err)
		plainError(w, "This app cannot be signed in to from here. Go to the app and sign in there.", http.StatusBadRequest)
		return
	}
	data := requestData{SP: s.cfg.EntityID, ACS: req.ACSEndpoint.Location, ACSBinding: req.ACSEndpoint.Binding,
		RelayState: relay, IdPInitiated: true, Classes: map[flows.Method]string{}}
	for _, m := range s.cfg.Methods {
		class := s.cfg.Classes[m]
		if class == "" || class == ClassREFEDSMFA {
			class = classOf(m)
		}
		data.Methods = append(data.Methods, m)
		data.Classes[m] = class
	}
	id, err := p.createRequest(ctx, s, account, data)
	if err != nil {
		p.internalError(w, "store the request", err)
		return
	}
	p.log.InfoContext(ctx, "saml: IdP-initiated login; the user takes the step", "sp", s.cfg.ID, "auth_request", id)
	http.Redirect(w, r, p.stepPath+id, http.StatusSeeOther)
}
