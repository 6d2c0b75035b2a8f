package samlidp

import (
	"net/http"
	"net/url"

	"github.com/crewjam/saml"

	"github.com/keystep/keystep/provider/steppage"
)

// maker is the library's AssertionMaker with keystep's changes to the
// default assertion: only the SP's configured attributes (no statement when
// there are none, and nothing guessed from the SP's requested attributes),
// the client's address as seen through trusted proxies, and an echoed
// NameID that keeps the qualifiers the request gave.
type maker struct{ p *Provider }

// MakeAssertion implements saml.AssertionMaker.
func (m maker) MakeAssertion(req *saml.IdpAuthnRequest, s *saml.Session) error {
	custom := s.CustomAttributes
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, s); err != nil {
		return err
	}
	a := req.Assertion
	a.AttributeStatements = nil
	if len(custom) > 0 {
		a.AttributeStatements = []saml.AttributeStatement{{Attributes: custom}}
	}
	addr := m.p.clientIP(req.HTTPRequest)
	if a.Subject != nil {
		for i := range a.Subject.SubjectConfirmations {
			if d := a.Subject.SubjectConfirmations[i].SubjectConfirmationData; d != nil {
				d.Address = addr
			}
		}
	}
	for i := range a.AuthnStatements {
		if addr == "" {
			a.AuthnStatements[i].SubjectLocality = nil
		} else if l := a.AuthnStatements[i].SubjectLocality; l != nil {
			l.Address = addr
		}
	}
	if sub := req.Request.Subject; sub != nil && sub.NameID != nil && a.Subject != nil && a.Subject.NameID != nil &&
		sub.NameID.Value == a.Subject.NameID.Value {
		a.Subject.NameID.NameQualifier = sub.NameID.NameQualifier
		a.Subject.NameID.SPNameQualifier = sub.NameID.SPNameQualifier
		a.Subject.NameID.SPProvidedID = sub.NameID.SPProvidedID
	}
	return nil
}

// autoPost is the library's ResponseWriter: the HTTP-POST binding's form,
// on keystep's auto-posting page (no inline script, strict CSP).
type autoPost struct{}

// WriteResponse implements saml.ResponseWriter.
func (autoPost) WriteResponse(w http.ResponseWriter, req *saml.IdpAuthnRequest) error {
	form, err := req.PostBinding()
	if err != nil {
		return err
	}
	writeForm(w, form)
	return nil
}

func writeForm(w http.ResponseWriter, form saml.IdpAuthnRequestForm) {
	fields := url.Values{"SAMLResponse": {form.SAMLResponse}}
	if form.RelayState != "" {
		fields.Set("RelayState", form.RelayState)
	}
	steppage.WriteAutoPost(w, form.URL, fields)
}
