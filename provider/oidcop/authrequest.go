package oidcop

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/keystep/keystep/flows"
)

// requestData is the protocol part of an auth request, stored as JSON in
// flows.AuthRequest.Request.
type requestData struct {
	Scopes          []string            `json:"scopes"`
	ResponseType    oidc.ResponseType   `json:"response_type"`
	ResponseMode    oidc.ResponseMode   `json:"response_mode,omitempty"`
	RedirectURI     string              `json:"redirect_uri"`
	State           string              `json:"state,omitempty"`
	Nonce           string              `json:"nonce,omitempty"`
	CodeChallenge   *oidc.CodeChallenge `json:"code_challenge,omitempty"`
	UILocales       []string            `json:"ui_locales,omitempty"`
	Policy          stepPolicy          `json:"policy"`
	ClientRequestID string              `json:"client_request_id,omitempty"` // Entra's correlation id, for the log
	// Link is a federated subject to link to the account once the step
	// succeeds (MatchLink, first sign-in): never before the user proved
	// possession.
	Link *pendingLink `json:"link,omitempty"`
}

// pendingLink is a federated subject waiting to be linked.
type pendingLink struct {
	Issuer  string `json:"issuer"`
	Subject string `json:"subject"`
}

// authRequest is a stored request as zitadel/oidc sees it (op.AuthRequest).
type authRequest struct {
	flows.AuthRequest
	data requestData
}

func newAuthRequest(fr flows.AuthRequest) (*authRequest, error) {
	a := &authRequest{AuthRequest: fr}
	if err := json.Unmarshal(fr.Request, &a.data); err != nil {
		return nil, fmt.Errorf("auth request %s: stored request: %w", fr.ID, err)
	}
	return a, nil
}

func (a *authRequest) GetID() string                         { return a.ID }
func (a *authRequest) GetACR() string                        { return a.ACR }
func (a *authRequest) GetAMR() []string                      { return a.AMR }
func (a *authRequest) GetAudience() []string                 { return []string{a.ClientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.AuthTime }
func (a *authRequest) GetClientID() string                   { return a.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.data.CodeChallenge }
func (a *authRequest) GetNonce() string                      { return a.data.Nonce }
func (a *authRequest) GetRedirectURI() string                { return a.data.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.data.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.data.ResponseMode }
func (a *authRequest) GetScopes() []string                   { return a.data.Scopes }
func (a *authRequest) GetState() string                      { return a.data.State }
func (a *authRequest) GetSubject() string                    { return a.Subject }
func (a *authRequest) Done() bool                            { return a.AuthRequest.Done() }

// LogValue keeps secrets (state, nonce, challenge) out of the log.
func (a *authRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", a.ID), slog.String("client_id", a.ClientID),
		slog.String("response_type", string(a.data.ResponseType)), slog.String("client_request_id", a.data.ClientRequestID))
}

// refreshRequest is a stored token as a refresh request (op.RefreshTokenRequest).
type refreshRequest struct {
	tok    flows.OIDCToken
	scopes []string
}

func (r *refreshRequest) GetAMR() []string                 { return r.tok.AMR }
func (r *refreshRequest) GetAudience() []string            { return r.tok.Audience }
func (r *refreshRequest) GetAuthTime() time.Time           { return r.tok.AuthTime }
func (r *refreshRequest) GetClientID() string              { return r.tok.ClientID }
func (r *refreshRequest) GetScopes() []string              { return r.scopes }
func (r *refreshRequest) GetSubject() string               { return r.tok.Subject }
func (r *refreshRequest) SetCurrentScopes(scopes []string) { r.scopes = scopes }
