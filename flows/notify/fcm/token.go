package fcm

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keystep/keystep/flows/notify/push"
)

// Token lifetimes.
const (
	// AssertionLifetime is how long the signed assertion is valid: the
	// most Google accepts.
	AssertionLifetime = time.Hour
	// TokenMargin is how long before its expiry an access token is
	// replaced, so that a token is not refused in flight.
	TokenMargin = time.Minute
	// maxTokenLifetime caps an expires_in that is out of reason.
	maxTokenLifetime = 24 * time.Hour
)

// GrantType is the OAuth 2.0 grant of RFC 7523 section 2.1.
const GrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// tokenSource fetches access tokens and keeps one until TokenMargin
// before it expires. One fetch runs at a time; others wait for it (or for
// their context).
type tokenSource struct {
	sa      *serviceAccount
	url     string
	client  *http.Client
	clock   func() time.Time
	timeout time.Duration

	lock   chan struct{} // held (full) while the fields below are used
	token  string
	expiry time.Time
}

func newTokenSource(sa *serviceAccount, tokenURL string, c *http.Client, clock func() time.Time, timeout time.Duration) *tokenSource {
	return &tokenSource{sa: sa, url: tokenURL, client: c, clock: clock, timeout: timeout, lock: make(chan struct{}, 1)}
}

// get returns the cached access token, or fetches one.
func (ts *tokenSource) get(ctx context.Context) (string, error) {
	select {
	case ts.lock <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-ts.lock }()
	now := ts.clock()
	if ts.token != "" && now.Before(ts.expiry) {
		return ts.token, nil
	}
	tok, lifetime, err := ts.fetch(ctx, now)
	if err != nil {
		return "", err
	}
	ts.token, ts.expiry = tok, now.Add(lifetime-TokenMargin)
	return tok, nil
}

// invalidate drops tok if it is still the cached token, so that many sends
// refused with the same token make one fetch, not one each.
func (ts *tokenSource) invalidate(ctx context.Context, tok string) {
	select {
	case ts.lock <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-ts.lock }()
	if ts.token == tok {
		ts.token = ""
	}
}

// fetch trades a fresh assertion for an access token.
func (ts *tokenSource) fetch(ctx context.Context, now time.Time) (string, time.Duration, error) {
	assertion, err := signAssertion(ts.sa, ts.url, now)
	if err != nil {
		return "", 0, err
	}
	form := url.Values{"grant_type": {GrantType}, "assertion": {assertion}}.Encode()
	status, _, body, err := do(ctx, ts.client, ts.timeout, http.MethodPost, ts.url, "application/x-www-form-urlencoded", "", []byte(form))
	if err != nil {
		return "", 0, fmt.Errorf("token endpoint: %w", err)
	}
	return ParseTokenResponse(status, body)
}

var b64 = base64.RawURLEncoding

// assertionHeader and assertionClaims are the JWT's parts, in the order
// Google's documentation shows them.
type assertionHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

type assertionClaims struct {
	Iss   string `json:"iss"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Exp   int64  `json:"exp"`
	Iat   int64  `json:"iat"`
}

// signAssertion makes the RS256 JWT the token endpoint takes: the service
// account as issuer, the FCM scope, the token URL as audience, valid for
// AssertionLifetime from now.
func signAssertion(sa *serviceAccount, aud string, now time.Time) (string, error) {
	h, err := json.Marshal(assertionHeader{Alg: "RS256", Typ: "JWT", Kid: sa.keyID})
	if err != nil {
		return "", fmt.Errorf("assertion header: %w", err)
	}
	c, err := json.Marshal(assertionClaims{
		Iss:   sa.clientEmail,
		Scope: Scope,
		Aud:   aud,
		Exp:   now.Add(AssertionLifetime).Unix(),
		Iat:   now.Unix(),
	})
	if err != nil {
		return "", fmt.Errorf("assertion claims: %w", err)
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(nil, sa.key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign assertion: %w", err)
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// TokenError is a refusal from the OAuth 2.0 token endpoint.
type TokenError struct {
	// Status is the HTTP status the endpoint answered.
	Status int
	// Code is the OAuth error code, e.g. "invalid_grant"; empty if the
	// answer had none.
	Code string
	// Description is the endpoint's error_description, cut to printable
	// ASCII.
	Description string
}

// Error says the status, code and description; it never holds the
// assertion or a token.
func (e *TokenError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "token endpoint answered %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, " (%s)", e.Description)
	}
	switch e.Unwrap() {
	case push.ErrAuth:
		b.WriteString(": the service account was refused")
	case push.ErrThrottled:
		b.WriteString(": too many requests, try again later")
	case push.ErrUnavailable:
		b.WriteString(": the token endpoint is unavailable, try again later")
	}
	return b.String()
}

// Unwrap gives push.ErrThrottled for 429, push.ErrUnavailable for 5xx,
// push.ErrAuth for an answer that says no, and push.ErrRejected for a
// success the sender cannot use.
func (e *TokenError) Unwrap() error {
	switch {
	case e.Status == http.StatusOK:
		return push.ErrRejected
	case e.Status == http.StatusTooManyRequests:
		return push.ErrThrottled
	case e.Status >= 500:
		return push.ErrUnavailable
	}
	return push.ErrAuth
}

// ParseTokenResponse reads the token endpoint's answer: on 200,
// {"access_token":…,"expires_in":seconds,"token_type":"Bearer"}; otherwise
// {"error":…,"error_description":…}. It returns the token and how long it
// lasts, or a *TokenError. It never panics; an access token that could not
// be sent as a bearer token (RFC 6750) is refused.
func ParseTokenResponse(status int, body []byte) (string, time.Duration, error) {
	if status != http.StatusOK {
		e := &TokenError{Status: status}
		var b struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &b) == nil {
			if oauthCode(b.Error) {
				e.Code = b.Error
			}
			e.Description = printable(b.Description, 200)
		}
		return "", 0, e
	}
	var b struct {
		AccessToken string  `json:"access_token"`
		ExpiresIn   float64 `json:"expires_in"`
		TokenType   string  `json:"token_type"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return "", 0, &TokenError{Status: status, Description: "answer is not a JSON token response"}
	}
	if !strings.EqualFold(b.TokenType, "Bearer") {
		return "", 0, &TokenError{Status: status, Description: "token_type is not Bearer"}
	}
	if !bearerToken(b.AccessToken) {
		return "", 0, &TokenError{Status: status, Description: "access_token is missing or malformed"}
	}
	if !(b.ExpiresIn >= 1) {
		return "", 0, &TokenError{Status: status, Description: "expires_in is missing or not positive"}
	}
	lifetime := maxTokenLifetime
	if b.ExpiresIn < maxTokenLifetime.Seconds() {
		lifetime = time.Duration(b.ExpiresIn) * time.Second
	}
	return b.AccessToken, lifetime, nil
}

// oauthCode reports whether s has the shape of an OAuth error code.
func oauthCode(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

// bearerToken reports whether s is a b64token of RFC 6750, at most 4096
// characters.
func bearerToken(s string) bool {
	if len(s) == 0 || len(s) > 4096 {
		return false
	}
	t := strings.TrimRight(s, "=")
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}
