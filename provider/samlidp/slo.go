package samlidp

import (
	"net/http"

	"github.com/crewjam/saml"
)

// serveSLO answers an SP's signed LogoutRequest. keystep keeps no session
// of its own (every request runs a fresh step), so there is nothing to end
// and nobody else to tell: the answer is a signed Success. IdP-initiated
// logout is not offered for the same reason.
func (p *Provider) serveSLO(w http.ResponseWriter, r *http.Request) {
	idp, err := p.idpFor(r.Context(), nil, p.clock.Now())
	if err != nil {
		p.internalError(w, "signing key", err)
		return
	}
	idp.ServeSLO(w, r)
}

// InvalidateSession implements saml.SessionInvalidator: there is no
// keystep session to end.
func (sessions) InvalidateSession(http.ResponseWriter, *http.Request, *saml.IdpLogoutRequest) error {
	return nil
}
