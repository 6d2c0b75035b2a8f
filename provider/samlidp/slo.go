package samlidp

import (
	"html"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/crewjam/saml"

	"github.com/keystep/keystep/provider/internal/webutil"
	"github.com/keystep/keystep/provider/steppage"
)

// serveSLO answers an SP's signed LogoutRequest. keystep keeps no session
// of its own (every request runs a fresh step), so there is nothing to end
// and nobody else to tell: the answer is a signed Success. IdP-initiated
// logout is not offered for the same reason.
//
// The library writes a LogoutResponse for the HTTP-POST binding with its
// own form, which needs inline script; here its template only hands the
// form's fields over, and the answer is keystep's auto-posting page, which
// works under a strict Content-Security-Policy.
func (p *Provider) serveSLO(w http.ResponseWriter, r *http.Request) {
	idp, err := p.idpFor(r.Context(), nil, p.clock.Now())
	if err != nil {
		p.internalError(w, "signing key", err)
		return
	}
	idp.ResponseFormTemplate = sloForm
	rec := webutil.NewRecorder()
	idp.ServeSLO(rec, r)
	if rec.Code == http.StatusOK && strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		if action, fields, ok := parseSLOForm(rec.Body.String()); ok {
			steppage.WriteAutoPost(w, action, fields)
			return
		}
	}
	rec.CopyTo(w)
}

// sloForm is the library's ResponseFormTemplate on the SLO endpoint: the
// form's URL, SAMLResponse and RelayState, one per line, for parseSLOForm.
var sloForm = template.Must(template.New("slo").Parse("keystep-slo-form\n{{.URL}}\n{{.SAMLResponse}}\n{{.RelayState}}"))

func parseSLOForm(body string) (string, url.Values, bool) {
	lines := strings.SplitN(body, "\n", 4) // RelayState, last, may hold newlines
	if len(lines) != 4 || lines[0] != "keystep-slo-form" {
		return "", nil, false
	}
	action := html.UnescapeString(lines[1])
	fields := url.Values{"SAMLResponse": {html.UnescapeString(lines[2])}}
	if relay := html.UnescapeString(lines[3]); relay != "" {
		fields.Set("RelayState", relay)
	}
	return action, fields, action != ""
}

// InvalidateSession implements saml.SessionInvalidator: there is no
// keystep session to end.
func (sessions) InvalidateSession(http.ResponseWriter, *http.Request, *saml.IdpLogoutRequest) error {
	return nil
}
