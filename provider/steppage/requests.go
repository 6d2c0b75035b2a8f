package steppage

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/keystep/keystep/flows"
)

// Request is what the step page knows of a federation request that sent a
// user to it (an OpenID Connect authorization request, a SAML AuthnRequest).
type Request struct {
	ID         string
	ClientName string // the app asking, shown on the page and on the phone
	AccountID  string // the account the request names
	// Methods are the methods the client allows, in its order of
	// preference (push, qr, sms, email, override).
	Methods []flows.Method
	// AnswerOrigin is the scheme://host[:port] the answer goes to; the
	// page's CSP form-action allows it, so the redirect after a POST lands.
	AnswerOrigin string
	ExpiresAt    time.Time
	Locales      []string // the client's ui_locales, most preferred first
}

// Why a step ended without success.
const (
	RefusedDenied    = "denied"    // the user denied it on the phone
	RefusedCancelled = "cancelled" // the user gave up on the page
	RefusedExpired   = "expired"   // nobody decided in time, or the request expired
	RefusedSuspended = "suspended" // the account is suspended
	RefusedRemoved   = "removed"   // the account was removed
	RefusedNoDevice  = "no_device" // no registered device and no code method open
	RefusedLocked    = "locked"    // too many wrong codes: locked out for now
	// RefusedUnavailable: the account's directory could not confirm it
	// (the live check failed, fail-closed); trying again may work.
	RefusedUnavailable = "unavailable"
)

// Requests is the protocol side of the step page: the OpenID Provider (and
// later the SAML IdP) implements it. The step page owns the browser: the
// session, binding a request to it, starting sign-ins and showing them;
// the protocol owns the request and the answer to the client.
type Requests interface {
	// Lookup returns a pending request; an error wrapping flows.ErrNotFound
	// or flows.ErrExpired when there is none to finish.
	Lookup(ctx context.Context, id string) (Request, error)
	// Complete is called once the sign-in sgn of request id is approved:
	// it records the result and writes the answer to the client (a
	// redirect or an auto-posting form, see WriteAutoPost). It checks for
	// itself that sgn is the request's approved sign-in.
	Complete(w http.ResponseWriter, r *http.Request, id string, sgn flows.SignIn)
	// Refuse writes the error answer to the client (OIDC access_denied, a
	// SAML error status), for one of the Refused… reasons.
	Refuse(w http.ResponseWriter, r *http.Request, id, reason string)
}

// ByProtocol is the Requests of several protocols on one step page: each
// call goes to the protocol that made the request (flows.AuthRequest's
// Protocol, "oidc" or "saml").
func ByProtocol(store flows.Store, byProtocol map[string]Requests) Requests {
	return protocols{store: store, m: byProtocol}
}

type protocols struct {
	store flows.Store
	m     map[string]Requests
}

// of is the protocol of request id, or nil when there is none.
func (p protocols) of(ctx context.Context, id string) (Requests, error) {
	ar, err := p.store.GetAuthRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	r := p.m[ar.Protocol]
	if r == nil {
		return nil, fmt.Errorf("auth request %s of protocol %q: %w", id, ar.Protocol, flows.ErrNotFound)
	}
	return r, nil
}

func (p protocols) Lookup(ctx context.Context, id string) (Request, error) {
	r, err := p.of(ctx, id)
	if err != nil {
		return Request{}, err
	}
	return r.Lookup(ctx, id)
}

func (p protocols) Complete(w http.ResponseWriter, r *http.Request, id string, sgn flows.SignIn) {
	q, err := p.of(r.Context(), id)
	if err != nil {
		http.Error(w, "This sign-in request is finished or has expired. Go back to the app and sign in again.", http.StatusBadRequest)
		return
	}
	q.Complete(w, r, id, sgn)
}

func (p protocols) Refuse(w http.ResponseWriter, r *http.Request, id, reason string) {
	q, err := p.of(r.Context(), id)
	if err != nil {
		http.Error(w, "This sign-in request is finished or has expired. Go back to the app and sign in again.", http.StatusBadRequest)
		return
	}
	q.Refuse(w, r, id, reason)
}
