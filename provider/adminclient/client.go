// Package adminclient is a Go client of keystep's admin API (the routes
// under api.AdminPrefix). Every call carries the admin bearer token; error
// answers come back as *Error holding the server's problem document, and
// errors.Is matches them against the flows errors they stand for.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// Timeouts of a Client.
const (
	// DefaultTimeout bounds one ordinary call.
	DefaultTimeout = 30 * time.Second
	// MaxWait is the longest long-poll the server grants (api.PathSignIn,
	// api.PathAudit); a longer wait is cut to it.
	MaxWait = 60 * time.Second
)

// maxBody bounds a successful answer's body.
const maxBody = 16 << 20

// Client calls one keystep server's admin API. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	token   string
	http    *http.Client
	timeout time.Duration
}

// Option changes how New builds a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests through hc. Its Timeout,
// if any, should leave room for MaxWait.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithTimeout sets how long an ordinary call may take (default
// DefaultTimeout); a long-poll gets its wait on top of it.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// New returns a client of the server at serverURL (its public URL, as in
// flows.Config.Origin) that authenticates with the admin token.
func New(serverURL, token string, opts ...Option) (*Client, error) {
	if err := flows.CheckServerURL(serverURL); err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, errors.New("admin client: the admin token is empty")
	}
	u, err := url.Parse(strings.TrimRight(serverURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	c := &Client{base: u, token: token, timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: c.timeout + MaxWait + 10*time.Second}
	}
	return c, nil
}

// Server returns the URL of the server the client calls.
func (c *Client) Server() string { return c.base.String() }

// AddUser creates an account.
func (c *Client) AddUser(ctx context.Context, u api.NewUser) (api.User, error) {
	var out api.User
	err := c.call(ctx, http.MethodPost, api.PathUsers, nil, u, &out, 0)
	return out, wrap(err, "add user %q", u.Username)
}

// ListUsers lists accounts in a state (empty: active and suspended); with
// includeRemoved and no state, removed accounts' tombstones too.
func (c *Client) ListUsers(ctx context.Context, state string, includeRemoved bool) ([]api.User, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if includeRemoved {
		q.Set("include_removed", "true")
	}
	var out api.UserList
	err := c.call(ctx, http.MethodGet, api.PathUsers, q, nil, &out, 0)
	return out.Users, wrap(err, "list users")
}

// GetUser returns an account by username or id.
func (c *Client) GetUser(ctx context.Context, user string) (api.User, error) {
	var out api.User
	err := c.call(ctx, http.MethodGet, userPath(api.PathUser, user), nil, nil, &out, 0)
	return out, wrap(err, "get user %q", user)
}

// Suspend suspends an account: its sign-ins are refused until Restore.
func (c *Client) Suspend(ctx context.Context, user, reason string) (api.User, error) {
	return c.stateChange(ctx, api.PathUserSuspend, "suspend", user, reason)
}

// Restore makes a suspended account active again.
func (c *Client) Restore(ctx context.Context, user, reason string) (api.User, error) {
	return c.stateChange(ctx, api.PathUserRestore, "restore", user, reason)
}

// Remove removes an account: its devices stop working at once.
func (c *Client) Remove(ctx context.Context, user, reason string) (api.User, error) {
	return c.stateChange(ctx, api.PathUserRemove, "remove", user, reason)
}

func (c *Client) stateChange(ctx context.Context, path, verb, user, reason string) (api.User, error) {
	var out api.User
	err := c.call(ctx, http.MethodPost, userPath(path, user), nil, api.StateChange{Reason: reason}, &out, 0)
	return out, wrap(err, "%s user %q", verb, user)
}

// Invite issues a new enrollment invitation for an account, revoking older
// ones. Its Link is shown once.
func (c *Client) Invite(ctx context.Context, user string) (api.Invitation, error) {
	var out api.Invitation
	err := c.call(ctx, http.MethodPost, userPath(api.PathUserInvite, user), nil, struct{}{}, &out, 0)
	return out, wrap(err, "invite %q", user)
}

// ListDevices lists an account's devices.
func (c *Client) ListDevices(ctx context.Context, user string) (api.DeviceList, error) {
	var out api.DeviceList
	err := c.call(ctx, http.MethodGet, userPath(api.PathUserDevices, user), nil, nil, &out, 0)
	return out, wrap(err, "list devices of %q", user)
}

// UnregisterDevice unregisters one device of an account; reason is required.
func (c *Client) UnregisterDevice(ctx context.Context, user, deviceID, reason string) (api.Device, error) {
	var out api.Device
	p := strings.Replace(userPath(api.PathDeviceUnreg, user), "{device}", url.PathEscape(deviceID), 1)
	err := c.call(ctx, http.MethodPost, p, nil, api.Unregister{Reason: reason}, &out, 0)
	return out, wrap(err, "unregister device %q of %q", deviceID, user)
}

// UnregisterAll unregisters every device of an account and returns how
// many it unregistered; reason is required.
func (c *Client) UnregisterAll(ctx context.Context, user, reason string) (int, error) {
	var out api.UnregisterAllResult
	err := c.call(ctx, http.MethodPost, userPath(api.PathDevicesUnregAll, user), nil, api.Unregister{Reason: reason}, &out, 0)
	return out.Unregistered, wrap(err, "unregister devices of %q", user)
}

// TestSignIn starts a sign-in for an account, as a sign-in page would, with
// the given methods (none: push and QR).
func (c *Client) TestSignIn(ctx context.Context, user string, methods ...string) (api.Challenge, error) {
	var out api.Challenge
	err := c.call(ctx, http.MethodPost, userPath(api.PathTestSignIn, user), nil, api.TestSignIn{Methods: methods}, &out, 0)
	return out, wrap(err, "test sign-in for %q", user)
}

// GetSignIn returns a sign-in's state. With wait > 0 the server holds the
// call until the sign-in is final or wait (at most MaxWait) has passed.
func (c *Client) GetSignIn(ctx context.Context, id string, wait time.Duration) (api.SignIn, error) {
	wait = min(max(wait, 0), MaxWait)
	q := url.Values{}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var out api.SignIn
	err := c.call(ctx, http.MethodGet, strings.Replace(api.PathSignIn, "{id}", url.PathEscape(id), 1), q, nil, &out, wait)
	return out, wrap(err, "sign-in %s", id)
}

// WaitSignIn long-polls a sign-in, wait (at most MaxWait) per call, until it
// is no longer pending or ctx ends. On ctx's end it returns the last state
// seen with ctx's error.
func (c *Client) WaitSignIn(ctx context.Context, id string, wait time.Duration) (api.SignIn, error) {
	if wait <= 0 {
		wait = MaxWait
	}
	var last api.SignIn
	for {
		s, err := c.GetSignIn(ctx, id, wait)
		if ctx.Err() != nil {
			return last, fmt.Errorf("wait for sign-in %s: %w", id, ctx.Err())
		}
		if err != nil {
			return last, err
		}
		last = s
		if flows.SignInStatus(s.Status).Final() {
			return s, nil
		}
	}
}

// Audit returns audit events after sequence number after (at most limit of
// them when limit > 0, of one account when account is set). With wait > 0
// and nothing to return yet, the server holds the call until an event
// comes or wait (at most MaxWait) has passed.
func (c *Client) Audit(ctx context.Context, after int64, limit int, account string, wait time.Duration) ([]api.AuditEvent, error) {
	wait = min(max(wait, 0), MaxWait)
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if account != "" {
		q.Set("account", account)
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var out api.AuditList
	err := c.call(ctx, http.MethodGet, api.PathAudit, q, nil, &out, wait)
	return out.Events, wrap(err, "read audit log")
}

// VerifyAudit asks the server to check the whole audit chain.
func (c *Client) VerifyAudit(ctx context.Context) (api.AuditVerification, error) {
	var out api.AuditVerification
	err := c.call(ctx, http.MethodGet, api.PathAuditVerify, nil, nil, &out, 0)
	return out, wrap(err, "verify audit log")
}

// userPath fills {user} in an admin path.
func userPath(path, user string) string {
	return strings.Replace(path, "{user}", url.PathEscape(user), 1)
}

// call sends one request and decodes a 2xx answer's JSON body into out. The
// call may take the client's timeout plus wait.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, in, out any, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout+wait)
	defer cancel()
	target := c.base.String() + path // path is escaped already
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return ReadAnswer(resp, out)
}

// ReadAnswer decodes a 2xx answer's JSON body into out and turns any other
// answer into an *Error (see ReadError). It does not close the body.
func ReadAnswer(resp *http.Response, out any) error {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return ReadError(resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("the server's answer is empty (is it shutting down?): %w", err)
		}
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// wrap adds what was being done to err, keeping it visible to errors.As.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}
