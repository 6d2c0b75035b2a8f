package samlidp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/internal/accounts"
)

// maxRelayState bounds the RelayState keystep keeps and sends back. The
// specification says 80 bytes; ADFS and others send more.
const maxRelayState = 4 << 10

// requestData is what keystep keeps of a checked AuthnRequest until the
// step is done: only the fields the answer needs, taken from the signed
// content. The raw request is never kept (a wrapped document's unsigned
// outer content must never be read again).
type requestData struct {
	ID           string                  `json:"id,omitempty"`
	IssueInstant time.Time               `json:"issue_instant"`
	SP           string                  `json:"sp"`
	ACS          string                  `json:"acs"`
	ACSBinding   string                  `json:"acs_binding"`
	RelayState   string                  `json:"relay_state,omitempty"`
	NameID       *saml.NameID            `json:"name_id,omitempty"`
	NameIDPolicy *saml.NameIDPolicy      `json:"name_id_policy,omitempty"`
	RAC          *requestedContext       `json:"rac,omitempty"`
	Methods      []flows.Method          `json:"methods"`
	Classes      map[flows.Method]string `json:"classes"`
	IdPInitiated bool                    `json:"idp_initiated,omitempty"`
}

type requestedContext struct {
	Comparison string   `json:"comparison,omitempty"`
	ClassRefs  []string `json:"class_refs"`
}

// sessions is the library's SessionProvider: it checks the request, stores
// it and sends the browser to the step page. It never returns a session:
// the answer is written later by Complete or Refuse.
type sessions struct{ p *Provider }

// GetSession implements saml.SessionProvider.
func (s sessions) GetSession(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest) *saml.Session {
	p := s.p
	ctx := r.Context()
	entity := req.ServiceProviderMetadata.EntityID
	sp := p.registry.byEntity[entity]
	if sp == nil { // cannot happen: the registry found it
		p.onError(w, r, http.StatusBadRequest, fmt.Errorf("unknown service provider %s", entity))
		return nil
	}
	idp, err := p.idpFor(ctx, sp, req.Now)
	if err != nil {
		p.internalError(w, "signing key", err)
		return nil
	}
	req.IDP = idp // errors are signed with the SP's own algorithm

	// A signature is what stops a stranger from sending prompts to a
	// user's phone. Every signature present was verified by Validate.
	if !isSigned(req, r) && !sp.cfg.AllowUnsignedRequests {
		p.onError(w, r, http.StatusBadRequest, fmt.Errorf("service provider %s: the AuthnRequest is not signed", sp.cfg.ID))
		return nil
	}
	if len(req.RelayState) > maxRelayState {
		p.onError(w, r, http.StatusBadRequest, fmt.Errorf("RelayState of %d bytes", len(req.RelayState)))
		return nil
	}
	// Each request is used once, signed or not, from the moment it
	// arrives: a replayed request gets nothing, not even a prompt.
	if err := p.useRequestID(ctx, entity, req.Request.ID, req.Request.IssueInstant); err != nil {
		if errors.Is(err, flows.ErrReplay) {
			p.onError(w, r, http.StatusBadRequest, fmt.Errorf("service provider %s: request %s was already used", sp.cfg.ID, req.Request.ID))
		} else {
			p.internalError(w, "replay check", err)
		}
		return nil
	}
	refuse := func(e *saml.StatusError) *saml.Session {
		p.log.InfoContext(r.Context(), "saml: request refused with a status", "sp", sp.cfg.ID, "status", e.SecondLevel, "message", e.Message)
		if err := idp.SendErrorResponse(w, req, e); err != nil {
			p.internalError(w, "error response", err)
		}
		return nil
	}
	// keystep keeps no session of its own: a passive request can never be
	// met, and ForceAuthn always is (every request runs a fresh step).
	if req.Request.IsPassive != nil && *req.Request.IsPassive {
		return refuse(&saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusNoPassive,
			Message: "keystep always asks the user"})
	}
	name, se := p.requestedName(req, sp)
	if se != nil {
		return refuse(se)
	}
	account, err := p.matchAccount(ctx, sp.cfg.Match, name)
	if err != nil {
		var se *saml.StatusError
		if errors.As(err, &se) {
			return refuse(se)
		}
		p.internalError(w, "account", err)
		return nil
	}
	switch account.State {
	case flows.AccountRemoved:
		return refuse(unknownPrincipal())
	case flows.AccountSuspended:
		return refuse(&saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusRequestDenied,
			Message: "the account is suspended"})
	}
	data := requestData{
		ID: req.Request.ID, IssueInstant: req.Request.IssueInstant, SP: entity,
		ACS: req.ACSEndpoint.Location, ACSBinding: req.ACSEndpoint.Binding, RelayState: req.RelayState,
		NameIDPolicy: req.Request.NameIDPolicy,
	}
	if subj := req.Request.Subject; subj != nil && subj.NameID != nil {
		nid := *subj.NameID
		data.NameID = &nid
	}
	if rac := req.Request.RequestedAuthnContext; rac != nil && len(rac.ClassRefs()) > 0 {
		data.RAC = &requestedContext{Comparison: rac.Comparison, ClassRefs: rac.ClassRefs()}
	}
	// Only the methods whose answer the SP would accept reach the page:
	// a request that cannot be met is answered now, before any prompt.
	data.Methods, data.Classes, err = p.answerableMethods(req, sp, account, &data)
	if err != nil {
		var se *saml.StatusError
		if errors.As(err, &se) {
			return refuse(se)
		}
		p.internalError(w, "check the request", err)
		return nil
	}
	id, err := p.createRequest(ctx, sp, account, data)
	if err != nil {
		p.internalError(w, "store the request", err)
		return nil
	}
	p.log.InfoContext(r.Context(), "saml: request accepted; the user takes the step", "sp", sp.cfg.ID, "auth_request", id, "methods", data.Methods)
	http.Redirect(w, r, p.stepPath+id, http.StatusSeeOther)
	return nil
}

// requestedName is the name of the user the request asks a step for: its
// <Subject><NameID>, or, for an SP configured with a NameAttribute and a
// request without a Subject, the one value of that attribute in the
// request's <Extensions>.
func (p *Provider) requestedName(req *saml.IdpAuthnRequest, sp *sp) (string, *saml.StatusError) {
	subj := req.Request.Subject
	if subj == nil && sp.cfg.NameAttribute != "" {
		name, err := extensionAttribute(req.RequestBuffer, sp.cfg.NameAttribute)
		if err != nil {
			p.log.Info("saml: the request names no user", "sp", sp.cfg.ID, "err", err)
			return "", &saml.StatusError{TopLevel: saml.StatusRequester, SecondLevel: saml.StatusRequestUnsupported,
				Message: "name the user in <Subject><NameID> or in the attribute " + sp.cfg.NameAttribute}
		}
		return name, nil
	}
	switch {
	case subj == nil || (subj.NameID == nil && subj.BaseID == nil && subj.EncryptedID == nil):
		return "", &saml.StatusError{TopLevel: saml.StatusRequester, SecondLevel: saml.StatusRequestUnsupported,
			Message: "name the user in <Subject><NameID>"}
	case subj.NameID == nil || subj.NameID.Value == "":
		return "", unknownPrincipal()
	}
	return subj.NameID.Value, nil
}

// extensionAttribute reads the one value of the attribute name in the
// <samlp:Extensions> of an AuthnRequest. The request's signature covers
// its whole root element (the library accepts only a signature of the
// root), so what is read here is signed; zero, several attributes of that
// name or several values are refused as ambiguous.
func extensionAttribute(request []byte, name string) (string, error) {
	var doc struct {
		Extensions *struct {
			Attributes []saml.Attribute `xml:"urn:oasis:names:tc:SAML:2.0:assertion Attribute"`
		} `xml:"urn:oasis:names:tc:SAML:2.0:protocol Extensions"`
	}
	if err := xml.Unmarshal(request, &doc); err != nil {
		return "", fmt.Errorf("read the request: %w", err)
	}
	if doc.Extensions == nil {
		return "", errors.New("no Subject and no Extensions")
	}
	value, found := "", 0
	for _, a := range doc.Extensions.Attributes {
		if a.Name != name {
			continue
		}
		found++
		if len(a.Values) != 1 {
			return "", fmt.Errorf("the attribute %s has %d values", name, len(a.Values))
		}
		value = strings.TrimSpace(a.Values[0].Value)
	}
	if found != 1 || value == "" {
		return "", fmt.Errorf("%d attributes %s with a value", found, name)
	}
	return value, nil
}

func unknownPrincipal() *saml.StatusError {
	return &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusUnknownPrincipal,
		Message: "this user cannot sign in with keystep; contact your IT administrator"}
}

// useRequestID records an AuthnRequest ID of an SP as used, in the store
// that every instance shares.
func (p *Provider) useRequestID(ctx context.Context, entity, id string, issued time.Time) error {
	sum := sha256.Sum256([]byte(entity + " " + id))
	now := p.clock.Now()
	from := now
	if issued.After(now) {
		from = issued
	}
	exp := from.Add(saml.MaxIssueDelay + saml.MaxClockSkew)
	return p.store().UseNonce(ctx, "saml-authn:"+hex.EncodeToString(sum[:]), exp)
}

// matchAccount finds the account a NameID names.
func (p *Provider) matchAccount(ctx context.Context, match, value string) (flows.Account, error) {
	a, err := accounts.Find(ctx, p.store(), match == MatchID, value)
	if errors.Is(err, accounts.ErrUnknown) {
		return a, unknownPrincipal()
	}
	return a, err
}

// answerableMethods returns the SP's methods whose assertion the request
// would accept, and the class each earns. It asks the library itself: for
// each method, an assertion is made (not signed) for a copy of the request
// and checked against its RequestedAuthnContext, NameIDPolicy and Subject,
// exactly as it will be at the end. None left: the first refusal.
func (p *Provider) answerableMethods(req *saml.IdpAuthnRequest, sp *sp, a flows.Account, data *requestData) ([]flows.Method, map[flows.Method]string, error) {
	var methods []flows.Method
	classes := map[flows.Method]string{}
	var first error
	for _, m := range sp.cfg.Methods {
		class := classFor(m, &sp.cfg, data)
		probe := *req
		probe.Assertion, probe.AssertionEl, probe.ResponseEl = nil, nil, nil
		err := maker{p}.MakeAssertion(&probe, p.session(sp, a, data, class, req.Now, ""))
		if err == nil {
			err = probe.CheckRequestSubject()
		}
		if err != nil {
			var se *saml.StatusError
			if !errors.As(err, &se) {
				return nil, nil, err
			}
			if first == nil {
				first = err
			}
			continue
		}
		methods = append(methods, m)
		classes[m] = class
	}
	if len(methods) == 0 {
		if first == nil {
			first = &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusNoAuthnContext}
		}
		return nil, nil, first
	}
	return methods, classes, nil
}

// classFor is the class asserted when the user proves themselves with m.
func classFor(m flows.Method, c *SPConfig, data *requestData) string {
	switch c.REFEDSMFA {
	case REFEDSAlways:
		return ClassREFEDSMFA
	case REFEDSRequested:
		if data.RAC != nil && slices.Contains(data.RAC.ClassRefs, ClassREFEDSMFA) {
			return ClassREFEDSMFA
		}
	}
	if class := c.Classes[m]; class != "" {
		return class
	}
	return classOf(m)
}

// session is what the assertion says of the user.
func (p *Provider) session(sp *sp, a flows.Account, data *requestData, class string, at time.Time, index string) *saml.Session {
	s := &saml.Session{ID: index, Index: index, CreateTime: at, ExpireTime: at, AuthnContextClassRef: class,
		NameIDFormat: sp.cfg.NameIDFormat}
	switch sp.cfg.NameID {
	case NameIDEcho:
		if data.NameID != nil && data.NameID.Value != "" {
			s.NameID = data.NameID.Value
			if f := data.NameID.Format; f != "" {
				s.NameIDFormat = f
			} else {
				s.NameIDFormat = string(saml.UnspecifiedNameIDFormat)
			}
		} else {
			s.NameID = a.Username
		}
	case NameIDUsername:
		s.NameID = a.Username
	case NameIDID:
		s.NameID = a.ID
	}
	for _, attr := range sp.cfg.Attributes {
		v := ""
		switch attr.Value {
		case "username":
			v = a.Username
		case "email":
			v = a.Email
		case "display_name":
			v = a.DisplayName
		case "id":
			v = a.ID
		}
		if v == "" {
			continue
		}
		s.CustomAttributes = append(s.CustomAttributes, saml.Attribute{Name: attr.Name, FriendlyName: attr.FriendlyName,
			NameFormat: attr.NameFormat, Values: []saml.AttributeValue{{Type: "xs:string", Value: v}}})
	}
	return s
}

// createRequest stores a checked request and returns its id.
func (p *Provider) createRequest(ctx context.Context, sp *sp, a flows.Account, data requestData) (string, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return "", fmt.Errorf("auth request: %w", err)
	}
	now := p.clock.Now().UTC()
	fr := flows.AuthRequest{ID: flows.NewID(), ClientID: sp.cfg.EntityID, Protocol: "saml", Request: raw, AccountID: a.ID,
		Subject: a.ID, CreatedAt: now, ExpiresAt: now.Add(p.ttl)}
	if err := p.store().CreateAuthRequest(ctx, fr); err != nil {
		return "", fmt.Errorf("auth request: %w", err)
	}
	return fr.ID, nil
}

// isSigned reports whether the request came signed: a query signature
// (HTTP-Redirect) or an enveloped signature on the root element. Validate
// verified every signature present (the library's own isSigned is not
// exported, and the request it re-reads from the signed bytes has lost its
// Signature).
func isSigned(req *saml.IdpAuthnRequest, r *http.Request) bool {
	if r.Method == http.MethodGet && r.URL.Query().Has("Signature") {
		return true
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(req.RequestBuffer); err != nil || doc.Root() == nil {
		return false
	}
	for _, c := range doc.Root().ChildElements() {
		if c.Tag == "Signature" && c.NamespaceURI() == "http://www.w3.org/2000/09/xmldsig#" {
			return true
		}
	}
	return false
}
