package samlidp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/crewjam/saml"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/steppage"
)

var _ steppage.Requests = (*Provider)(nil)

// pendingRequest is a stored request that still waits for its step.
type pendingRequest struct {
	flows.AuthRequest
	data requestData
	sp   *sp
}

// pending loads a request of this IdP that is neither done nor expired, of
// an SP that is still configured.
func (p *Provider) pending(ctx context.Context, id string) (*pendingRequest, error) {
	fr, err := p.store().GetAuthRequest(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("auth request: %w", err)
	}
	sp := p.registry.byEntity[fr.ClientID]
	if fr.Protocol != "saml" || sp == nil {
		return nil, fmt.Errorf("auth request %s: %w", id, flows.ErrNotFound)
	}
	if fr.Done() || !p.clock.Now().Before(fr.ExpiresAt) {
		return nil, fmt.Errorf("auth request %s: %w", id, flows.ErrExpired)
	}
	pr := &pendingRequest{AuthRequest: fr, sp: sp}
	if err := json.Unmarshal(fr.Request, &pr.data); err != nil {
		return nil, fmt.Errorf("auth request %s: %w", id, err)
	}
	return pr, nil
}

// Lookup returns a request that still waits for its step.
func (p *Provider) Lookup(ctx context.Context, id string) (steppage.Request, error) {
	pr, err := p.pending(ctx, id)
	if err != nil {
		return steppage.Request{}, err
	}
	return steppage.Request{
		ID: pr.ID, ClientName: pr.sp.cfg.Name, AccountID: pr.AccountID, Methods: pr.data.Methods,
		AnswerOrigin: origin(pr.data.ACS), ExpiresAt: pr.ExpiresAt,
	}, nil
}

func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// rebuild makes the library's request again from what was stored, against
// the SP's current metadata. It is never validated again: it was checked
// when it arrived, and only its signed content was kept.
func (p *Provider) rebuild(ctx context.Context, r *http.Request, pr *pendingRequest) (*saml.IdpAuthnRequest, error) {
	now := p.clock.Now()
	meta, err := pr.sp.metadata(now)
	if err != nil {
		return nil, fmt.Errorf("service provider %s: %w", pr.sp.cfg.ID, err)
	}
	idp, err := p.idpFor(ctx, pr.sp, now)
	if err != nil {
		return nil, err
	}
	req := &saml.IdpAuthnRequest{IDP: idp, HTTPRequest: r, RelayState: pr.data.RelayState, ServiceProviderMetadata: meta, Now: now}
	if !pr.data.IdPInitiated {
		req.Request = saml.AuthnRequest{
			ID: pr.data.ID, Version: "2.0", IssueInstant: pr.data.IssueInstant, Issuer: &saml.Issuer{Value: pr.data.SP},
			NameIDPolicy: pr.data.NameIDPolicy,
		}
		if pr.data.NameID != nil {
			nid := *pr.data.NameID
			req.Request.Subject = &saml.Subject{NameID: &nid}
		}
		if rac := pr.data.RAC; rac != nil {
			req.Request.RequestedAuthnContext = &saml.RequestedAuthnContext{Comparison: rac.Comparison, AuthnContextClassRefs: rac.ClassRefs}
		}
	}
	// The answer goes where the request was told it would, if the SP's
	// current metadata still lists that endpoint.
	for i := range meta.SPSSODescriptors {
		d := &meta.SPSSODescriptors[i]
		for j := range d.AssertionConsumerServices {
			e := &d.AssertionConsumerServices[j]
			if e.Location == pr.data.ACS && e.Binding == pr.data.ACSBinding {
				req.SPSSODescriptor, req.ACSEndpoint = d, e
				return req, nil
			}
		}
	}
	return nil, fmt.Errorf("service provider %s no longer lists the assertion consumer service %s", pr.sp.cfg.ID, pr.data.ACS)
}

// Complete answers the SP with a signed assertion once the request's
// sign-in is approved. It trusts nothing the caller says: the sign-in is
// read again and must be the request's own, approved, for its account,
// and the account must still be active.
func (p *Provider) Complete(w http.ResponseWriter, r *http.Request, id string, sgn flows.SignIn) {
	ctx := r.Context()
	pr, err := p.pending(ctx, id)
	if err != nil {
		plainError(w, "This sign-in request is finished or has expired. Go back to the app and sign in again.", http.StatusBadRequest)
		return
	}
	sgn, err = p.flows.GetSignIn(ctx, sgn.ID)
	if err != nil || sgn.ID != pr.SignInID || sgn.AccountID != pr.AccountID || sgn.Status != flows.StatusApproved {
		p.log.WarnContext(ctx, "saml: step completion refused: the sign-in is not this request's approved one", "auth_request", id, "err", err)
		plainError(w, "This sign-in was not approved.", http.StatusBadRequest)
		return
	}
	req, err := p.rebuild(ctx, r, pr)
	if err != nil {
		p.log.WarnContext(ctx, "saml: cannot answer the service provider", "auth_request", id, "err", err)
		plainError(w, "The app that sent you here can no longer be answered. Go back to the app and sign in again.", http.StatusBadRequest)
		return
	}
	now := req.Now
	if err := p.accountActive(ctx, pr.AccountID); err != nil {
		p.sendStatus(w, r, req, id, statusFor(err))
		return
	}
	if now.Sub(sgn.DecidedAt) > flows.MaxSignInTTL {
		p.sendStatus(w, r, req, id, &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusAuthnFailed,
			Message: "the approval is too old; sign in again"})
		return
	}
	class, ok := pr.data.Classes[sgn.DecidedBy]
	if !ok {
		p.sendStatus(w, r, req, id, &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusNoAuthnContext,
			Message: "the sign-in used a method this app does not accept"})
		return
	}
	account, err := p.store().GetAccount(ctx, pr.AccountID)
	if err != nil {
		p.internalError(w, "account", err)
		return
	}
	err = maker{p}.MakeAssertion(req, p.session(pr.sp, account, &pr.data, class, sgn.DecidedAt, pr.ID))
	if err == nil && !pr.data.IdPInitiated {
		err = req.CheckRequestSubject()
	}
	if err != nil {
		var se *saml.StatusError
		if errors.As(err, &se) {
			p.sendStatus(w, r, req, id, se)
			return
		}
		p.internalError(w, "make the assertion", err)
		return
	}
	form, err := req.PostBinding() // signs (and encrypts) before anything is recorded
	if err != nil {
		p.internalError(w, "sign the response", err)
		return
	}
	res := flows.AuthResult{AuthTime: sgn.DecidedAt, ACR: class, AMR: []string{string(sgn.DecidedBy)}, At: now.UTC()}
	err = p.store().InTx(ctx, func(tx flows.Tx) error { return tx.CompleteAuthRequest(ctx, id, res) })
	if errors.Is(err, flows.ErrAlreadyDecided) {
		plainError(w, "This sign-in request was already answered.", http.StatusBadRequest)
		return
	}
	if err != nil {
		p.internalError(w, "complete the request", err)
		return
	}
	p.log.InfoContext(r.Context(), "saml: step done", "auth_request", id, "sp", pr.sp.cfg.ID, "class", class, "method", sgn.DecidedBy)
	writeForm(w, form)
}

// Refuse answers the SP with an error status for one of the step page's
// reasons.
func (p *Provider) Refuse(w http.ResponseWriter, r *http.Request, id, reason string) {
	ctx := r.Context()
	fr, err := p.store().GetAuthRequest(ctx, id)
	if err != nil || fr.Protocol != "saml" || fr.Done() || p.registry.byEntity[fr.ClientID] == nil {
		plainError(w, "This sign-in request is finished or has expired. Go back to the app and sign in again.", http.StatusBadRequest)
		return
	}
	pr := &pendingRequest{AuthRequest: fr, sp: p.registry.byEntity[fr.ClientID]}
	if err := json.Unmarshal(fr.Request, &pr.data); err != nil {
		p.internalError(w, "load auth request", err)
		return
	}
	req, err := p.rebuild(ctx, r, pr)
	if err != nil {
		p.log.WarnContext(ctx, "saml: cannot answer the service provider", "auth_request", id, "err", err)
		plainError(w, "The app that sent you here can no longer be answered. Go back to the app and sign in again.", http.StatusBadRequest)
		return
	}
	// The page says why; only the store says whether the account is
	// suspended or removed.
	switch err := p.accountActive(ctx, fr.AccountID); {
	case err != nil && (errors.Is(err, flows.ErrAccountSuspended) || errors.Is(err, flows.ErrAccountRemoved)):
		p.sendStatus(w, r, req, id, statusFor(err))
		return
	case reason == steppage.RefusedSuspended || reason == steppage.RefusedRemoved:
		reason = ""
	}
	p.sendStatus(w, r, req, id, refusalStatus(reason))
}

// sendStatus answers the SP with an error Response, once: the request is
// finished first, so that no later Continue answers it again (with
// another status, or an assertion).
func (p *Provider) sendStatus(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest, id string, e *saml.StatusError) {
	ctx := r.Context()
	err := p.store().InTx(ctx, func(tx flows.Tx) error {
		return tx.CompleteAuthRequest(ctx, id, flows.AuthResult{At: req.Now.UTC()})
	})
	if errors.Is(err, flows.ErrAlreadyDecided) {
		plainError(w, "This sign-in request was already answered.", http.StatusBadRequest)
		return
	}
	if err != nil {
		p.internalError(w, "finish the request", err)
		return
	}
	p.log.InfoContext(r.Context(), "saml: answered with an error status", "auth_request", id, "status", e.SecondLevel, "message", e.Message)
	if err := req.IDP.SendErrorResponse(w, req, e); err != nil {
		p.internalError(w, "error response", err)
	}
}

// statusFor is the status for an account that is no longer active.
func statusFor(err error) *saml.StatusError {
	switch {
	case errors.Is(err, flows.ErrAccountSuspended):
		return refusalStatus(steppage.RefusedSuspended)
	case errors.Is(err, flows.ErrAccountRemoved):
		return refusalStatus(steppage.RefusedRemoved)
	}
	return &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusAuthnFailed, Message: "the account cannot sign in"}
}

// refusalStatus is the SAML status of a step that ended without success.
func refusalStatus(reason string) *saml.StatusError {
	e := &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusAuthnFailed}
	switch reason {
	case steppage.RefusedDenied:
		e.Message = "the user denied the sign-in"
	case steppage.RefusedCancelled:
		e.Message = "the user cancelled the sign-in"
	case steppage.RefusedExpired:
		e.Message = "the sign-in was not approved in time"
	case steppage.RefusedSuspended:
		e.SecondLevel, e.Message = saml.StatusRequestDenied, "the account is suspended"
	case steppage.RefusedRemoved:
		return unknownPrincipal()
	case steppage.RefusedNoDevice:
		e.Message = "the user has no registered device"
	case steppage.RefusedLocked:
		e.Message = "the user is locked out for now"
	default:
		e.Message = "the sign-in did not succeed"
	}
	return e
}
