package oidcop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/internal/webutil"
	"github.com/keystep/keystep/provider/steppage"
)

var _ steppage.Requests = (*Provider)(nil)

// Lookup returns a request that still waits for its step.
func (p *Provider) Lookup(ctx context.Context, id string) (steppage.Request, error) {
	ar, err := p.pending(ctx, id)
	if err != nil {
		return steppage.Request{}, err
	}
	c := p.clients[ar.ClientID]
	return steppage.Request{
		ID: ar.ID, ClientName: c.cfg.Name, AccountID: ar.AccountID, Methods: ar.data.Policy.Methods,
		AnswerOrigin: origin(ar.data.RedirectURI), ExpiresAt: ar.ExpiresAt, Locales: ar.data.UILocales,
	}, nil
}

// pending loads a request that is neither done nor expired, of a client
// that is still configured.
func (p *Provider) pending(ctx context.Context, id string) (*authRequest, error) {
	fr, err := p.store().GetAuthRequest(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("auth request: %w", err)
	}
	if fr.Protocol != "oidc" || p.clients[fr.ClientID] == nil {
		return nil, fmt.Errorf("auth request %s: %w", id, flows.ErrNotFound)
	}
	if fr.Done() || !p.clock.Now().Before(fr.ExpiresAt) {
		return nil, fmt.Errorf("auth request %s: %w", id, flows.ErrExpired)
	}
	return newAuthRequest(fr)
}

func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Complete records the approved sign-in on the request and answers the
// client: a code (code flow) or an ID token (Entra's implicit form_post).
// It trusts nothing the caller says: the sign-in is read again and must be
// the request's own, approved, for the request's account.
func (p *Provider) Complete(w http.ResponseWriter, r *http.Request, id string, sgn flows.SignIn) {
	ctx := r.Context()
	ar, err := p.pending(ctx, id)
	if err != nil {
		p.plainError(w, "This sign-in request is finished or has expired. Go back to the app and sign in again.", http.StatusBadRequest)
		return
	}
	sgn, err = p.flows.GetSignIn(ctx, sgn.ID)
	if err != nil || sgn.ID != ar.SignInID || sgn.AccountID != ar.AccountID || sgn.Status != flows.StatusApproved {
		p.log.WarnContext(ctx, "step completion refused: the sign-in is not this request's approved one", "auth_request", id, "err", err)
		p.plainError(w, "This sign-in was not approved.", http.StatusBadRequest)
		return
	}
	now := p.clock.Now().UTC()
	// The approval counts only while the account is active and only for
	// as long as a sign-in may wait: a suspension after the approval, or
	// an approval left lying, gives nothing.
	if err := p.accountActive(ctx, ar.AccountID); err != nil {
		p.answerError(w, r, ar, oidc.ErrAccessDenied().WithDescription("%s", refusalFor(err)))
		return
	}
	if now.Sub(sgn.DecidedAt) > flows.MaxSignInTTL {
		p.answerError(w, r, ar, oidc.ErrAccessDenied().WithDescription("the approval is too old; sign in again"))
		return
	}
	acr, amr, err := ar.data.Policy.result(sgn.DecidedBy)
	if err != nil {
		p.answerError(w, r, ar, oidc.ErrAccessDenied().WithDescription("%s", err.Error()))
		return
	}
	res := flows.AuthResult{AuthTime: sgn.DecidedAt, ACR: acr, AMR: amr, At: now}
	ar.DoneAt, ar.AuthTime, ar.ACR, ar.AMR = res.At, res.AuthTime, res.ACR, res.AMR
	ctx = withClient(op.ContextWithIssuer(ctx, p.issuer), ar.ClientID)
	fields := url.Values{}
	var code string
	if ar.data.ResponseType == oidc.ResponseTypeCode {
		if code, err = op.BuildAuthRequestCode(ar, p.op.Crypto()); err != nil {
			p.internalError(w, "create code", err)
			return
		}
		fields.Set("code", code)
	}
	// The result and the code land together, once.
	err = p.store().InTx(ctx, func(tx flows.Tx) error {
		if err := tx.CompleteAuthRequest(ctx, id, res); err != nil {
			return err
		}
		if l := ar.data.Link; l != nil {
			if err := tx.LinkSubject(ctx, l.Issuer, l.Subject, ar.AccountID); err != nil {
				return fmt.Errorf("link federated subject: %w", err)
			}
		}
		if code == "" {
			return nil
		}
		return tx.SaveAuthCode(ctx, id, flows.HashSecret(code))
	})
	if errors.Is(err, flows.ErrAlreadyDecided) {
		p.plainError(w, "This sign-in request was already answered.", http.StatusBadRequest)
		return
	}
	if errors.Is(err, flows.ErrConflict) {
		p.log.WarnContext(r.Context(), "federated subject is linked to another account", "auth_request", id, "client_id", ar.ClientID)
		p.answerError(w, r, ar, oidc.ErrAccessDenied().WithDescription("this user cannot sign in with keystep; contact your IT administrator"))
		return
	}
	if err != nil {
		p.internalError(w, "complete the request", err)
		return
	}
	if code == "" {
		resp, err := op.CreateTokenResponse(ctx, ar, p.clients[ar.ClientID], p.op, false, "", "")
		if err != nil {
			p.internalError(w, "create ID token", err)
			return
		}
		fields.Set("id_token", resp.IDToken)
	}
	if ar.data.State != "" {
		fields.Set("state", ar.data.State)
	}
	p.log.InfoContext(r.Context(), "step done", "auth_request", id, "client_id", ar.ClientID, "acr", acr, "amr", amr, "client_request_id", ar.data.ClientRequestID)
	p.answer(w, r, ar, fields)
}

// Refuse answers the client with access_denied for one of the step page's
// reasons.
func (p *Provider) Refuse(w http.ResponseWriter, r *http.Request, id, reason string) {
	fr, err := p.store().GetAuthRequest(r.Context(), id)
	if err != nil || fr.Protocol != "oidc" || fr.Done() || p.clients[fr.ClientID] == nil {
		p.plainError(w, "This sign-in request is finished or has expired. Go back to the app and sign in again.", http.StatusBadRequest)
		return
	}
	ar, err := newAuthRequest(fr)
	if err != nil {
		p.internalError(w, "load auth request", err)
		return
	}
	p.answerError(w, r, ar, oidc.ErrAccessDenied().WithDescription("%s", refusalText(reason)))
}

// refusalFor describes an account that is no longer active.
func refusalFor(err error) string {
	switch {
	case errors.Is(err, flows.ErrAccountSuspended):
		return refusalText(steppage.RefusedSuspended)
	case errors.Is(err, flows.ErrAccountRemoved):
		return refusalText(steppage.RefusedRemoved)
	}
	return "the account cannot sign in"
}

func refusalText(reason string) string {
	switch reason {
	case steppage.RefusedDenied:
		return "the user denied the sign-in"
	case steppage.RefusedCancelled:
		return "the user cancelled the sign-in"
	case steppage.RefusedExpired:
		return "the sign-in was not approved in time"
	case steppage.RefusedSuspended:
		return "the account is suspended"
	case steppage.RefusedRemoved:
		return "the account was removed"
	case steppage.RefusedNoDevice:
		return "the user has no registered device"
	case steppage.RefusedLocked:
		return "the user is locked out for now"
	}
	return "the sign-in did not succeed"
}

func (p *Provider) answerError(w http.ResponseWriter, r *http.Request, ar *authRequest, e *oidc.Error) {
	fields := url.Values{"error": {string(e.ErrorType)}}
	if e.Description != "" {
		fields.Set("error_description", e.Description)
	}
	if ar.data.State != "" {
		fields.Set("state", ar.data.State)
	}
	p.answer(w, r, ar, fields)
}

// answer sends fields to the client's redirect URI as its response mode
// says: an auto-posting form, the query or the fragment.
func (p *Provider) answer(w http.ResponseWriter, r *http.Request, ar *authRequest, fields url.Values) {
	fields.Set("iss", p.issuer) // RFC 9207
	mode := ar.data.ResponseMode
	if mode == "" {
		mode = oidc.ResponseModeQuery
		if ar.data.ResponseType != oidc.ResponseTypeCode {
			mode = oidc.ResponseModeFragment
		}
	}
	if mode == oidc.ResponseModeFormPost {
		steppage.WriteAutoPost(w, ar.data.RedirectURI, fields)
		return
	}
	u, err := url.Parse(ar.data.RedirectURI)
	if err != nil {
		p.internalError(w, "redirect URI", err)
		return
	}
	if mode == oidc.ResponseModeFragment {
		u.Fragment = fields.Encode()
	} else {
		q := u.Query()
		for k, v := range fields {
			q[k] = v
		}
		u.RawQuery = q.Encode()
	}
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

func (p *Provider) plainError(w http.ResponseWriter, msg string, status int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}

func (p *Provider) internalError(w http.ResponseWriter, what string, err error) {
	p.log.Error("oidc provider: "+what, "err", err)
	p.plainError(w, "Something went wrong on our side. Go back to the app and try again.", http.StatusInternalServerError)
}

// authorizeErrors finishes the library's error redirects from /authorize:
// each carries iss (RFC 9207) like keystep's own answers, and one for a
// request with response_mode=form_post is posted (the library always uses
// the fragment for an implicit request; Entra ID expects errors posted
// back). Only a redirect to the request's own redirect_uri, which the
// library sends only once that URI is checked against the client's, is
// touched.
func (p *Provider) authorizeErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			p.plainError(w, "The request cannot be read.", http.StatusBadRequest)
			return
		}
		if name := canonicalParams(r.Form); name != "" {
			p.plainError(w, "The request gives the parameter "+name+" more than once.", http.StatusBadRequest)
			return
		}
		rec := webutil.NewRecorder()
		next.ServeHTTP(rec, r)
		if rec.Code == http.StatusFound || rec.Code == http.StatusSeeOther {
			loc, err := url.Parse(rec.Header().Get("Location"))
			redirect := r.Form.Get("redirect_uri")
			if err == nil && redirect != "" && sameEndpoint(loc, redirect) {
				inFragment := loc.Fragment != ""
				fields := loc.Query()
				if inFragment {
					if fields, err = url.ParseQuery(loc.EscapedFragment()); err != nil {
						fields = url.Values{}
					}
				}
				if fields.Get("error") != "" {
					fields.Set("iss", p.issuer)
					if r.Form.Get("response_mode") == string(oidc.ResponseModeFormPost) {
						steppage.WriteAutoPost(w, redirect, fields)
						return
					}
					if inFragment {
						loc.RawFragment, loc.Fragment = "", fields.Encode()
					} else {
						loc.RawQuery = fields.Encode()
					}
					rec.Header().Set("Location", loc.String())
				}
			}
		}
		rec.CopyTo(w)
	})
}

// sameEndpoint reports whether loc, without query and fragment, is raw.
func sameEndpoint(loc *url.URL, raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	a, b := *loc, *u
	a.RawQuery, a.Fragment, a.RawFragment = "", "", ""
	b.RawQuery, b.Fragment, b.RawFragment = "", "", ""
	return a.String() == b.String()
}
