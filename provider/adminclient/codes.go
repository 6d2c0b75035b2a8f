package adminclient

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/keystep/keystep/provider/api"
)

// IssueOverride issues an administrative override code for an account,
// revoking its older ones. ttl is a duration such as "2h" or "7d" (empty:
// the server's default). The code is in the answer only.
func (c *Client) IssueOverride(ctx context.Context, user, ttl, reason string) (api.OverrideCode, error) {
	var out api.OverrideCode
	err := c.call(ctx, http.MethodPost, userPath(api.PathUserOverride, user), nil, api.OverrideRequest{TTL: ttl, Reason: reason}, &out, 0)
	return out, wrap(err, "issue override code for %q", user)
}

// UnlockCodes lifts an account's code lock (after too many wrong codes).
func (c *Client) UnlockCodes(ctx context.Context, user string) (api.User, error) {
	var out api.User
	err := c.call(ctx, http.MethodPost, userPath(api.PathUserUnlock, user), nil, struct{}{}, &out, 0)
	return out, wrap(err, "unlock codes of %q", user)
}

// SendCode asks the server to send a one-time code for a pending sign-in
// by channel (sms or email).
func (c *Client) SendCode(ctx context.Context, signInID, channel string) (api.SentCode, error) {
	var out api.SentCode
	err := c.call(ctx, http.MethodPost, signInPath(api.PathSendCode, signInID), nil, api.SendCodeRequest{Channel: channel}, &out, 0)
	return out, wrap(err, "send %s code for sign-in %s", channel, signInID)
}

// SubmitCode submits a code typed for a sign-in (an OTP or an override
// code) and returns the sign-in as it then stands. The server's per-address
// limit counts the client's own address; an identity provider submitting
// for its users calls SubmitCodeFrom.
func (c *Client) SubmitCode(ctx context.Context, signInID, code string) (api.SignIn, error) {
	return c.SubmitCodeFrom(ctx, signInID, code, "")
}

// SubmitCodeFrom is SubmitCode for an end user at address ip, which the
// server's per-address limit on code checks counts (empty: the client's).
func (c *Client) SubmitCodeFrom(ctx context.Context, signInID, code, ip string) (api.SignIn, error) {
	var out api.SignIn
	err := c.call(ctx, http.MethodPost, signInPath(api.PathSubmitCode, signInID), nil, api.SubmitCodeRequest{Code: code, IP: ip}, &out, 0)
	return out, wrap(err, "code for sign-in %s", signInID)
}

// signInPath fills {id} in an admin path.
func signInPath(path, id string) string {
	return strings.Replace(path, "{id}", url.PathEscape(id), 1)
}
