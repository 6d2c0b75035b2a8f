// Package fcm sends keystep's wake-up pushes through Firebase Cloud
// Messaging's HTTP v1 API, authenticated as a Google service account.
//
// A route is "fcm:<registration token>". The message is a notification
// with the sign-in id in its data ("signin_id"), high priority on Android
// and APNs priority 10 on iOS; it carries no secret. The app fetches the
// request itself over the signed device API.
//
// The access token comes from Google's OAuth 2.0 token endpoint by the
// JWT bearer grant (RFC 7523): an RS256 assertion signed with the service
// account's key. It is kept until a minute before it expires.
//
// Errors wrap the sentinels of package push: an UNREGISTERED token, or an
// INVALID_ARGUMENT that names the registration token, gives ErrRouteGone;
// a 401 is answered by fetching a fresh access token and sending once
// more, and gives push.ErrAuth if that is refused too; 429 gives
// push.ErrThrottled and 5xx push.ErrUnavailable. Nothing is retried
// otherwise: the caller decides.
package fcm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/notify/push"
)

// Google's servers and FCM's limits.
const (
	// DefaultEndpoint is FCM's API root.
	DefaultEndpoint = "https://fcm.googleapis.com"
	// DefaultTokenURL is Google's OAuth 2.0 token endpoint, used when
	// neither Config.TokenURL nor the service account's token_uri is set.
	DefaultTokenURL = "https://oauth2.googleapis.com/token"
	// Scope is the OAuth scope that may send FCM messages.
	Scope = "https://www.googleapis.com/auth/firebase.messaging"
	// DefaultTimeout bounds each request when Config.Timeout is zero.
	DefaultTimeout = 10 * time.Second
	// TTL is how long FCM keeps trying to deliver a push to an Android
	// device that is offline. The sign-in's own expiry is not known here,
	// and a wake-up for a sign-in that is over is useless.
	TTL = 120 * time.Second
	// MaxMessage is the most bytes of notification and data FCM takes.
	MaxMessage = 4096
	// MaxRouteToken is the longest registration token accepted.
	MaxRouteToken = 4096
)

// ErrRouteGone is push.ErrRouteGone: FCM says the registration token is
// unregistered or not a valid token, and keystep may mark the route dead.
var ErrRouteGone = push.ErrRouteGone

// maxAnswer is how much of a response body is read.
const maxAnswer = 64 << 10

// Config says how to reach FCM.
type Config struct {
	// Endpoint is FCM's API root; empty means DefaultEndpoint. It must
	// be https, or http to a loopback address (for tests).
	Endpoint string
	// TokenURL is the OAuth 2.0 token endpoint; empty means the service
	// account's token_uri, or DefaultTokenURL if it has none. Same rule
	// as Endpoint.
	TokenURL string
	// ServiceAccountJSON is the service account's key file as Google
	// gives it: type "service_account", project_id, private_key_id,
	// private_key (PEM RSA), client_email and token_uri.
	ServiceAccountJSON []byte
	// HTTPClient makes the requests; nil means a client with its own
	// transport. Either way redirects are not followed.
	HTTPClient *http.Client
	// Clock gives the time for the assertion and the token's expiry; nil
	// means time.Now.
	Clock func() time.Time
	// Timeout bounds each request; zero means DefaultTimeout.
	Timeout time.Duration
}

// Sender sends pushes through FCM. It is safe for concurrent use.
type Sender struct {
	sendURL string
	client  *http.Client
	clock   func() time.Time
	timeout time.Duration
	tokens  *tokenSource
}

var _ flows.PushSender = (*Sender)(nil)

// New checks cfg and returns a Sender. It makes no request.
func New(cfg Config) (*Sender, error) {
	s, err := newSender(cfg)
	if err != nil {
		return nil, fmt.Errorf("fcm: config: %w", err)
	}
	return s, nil
}

func newSender(cfg Config) (*Sender, error) {
	sa, err := parseServiceAccount(cfg.ServiceAccountJSON)
	if err != nil {
		return nil, err
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	endpoint, err := checkURL("endpoint", cfg.Endpoint, false)
	if err != nil {
		return nil, err
	}
	tokenURL := cfg.TokenURL
	if tokenURL == "" {
		tokenURL = sa.tokenURI
	}
	if tokenURL == "" {
		tokenURL = DefaultTokenURL
	}
	tokenURL, err = checkURL("token URL", tokenURL, true)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("timeout must not be negative")
	}
	s := &Sender{
		sendURL: endpoint + "/v1/projects/" + url.PathEscape(sa.projectID) + "/messages:send",
		client:  noRedirects(cfg.HTTPClient),
		clock:   cfg.Clock,
		timeout: cfg.Timeout,
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	s.tokens = newTokenSource(sa, tokenURL, s.client, s.clock, s.timeout)
	return s, nil
}

// checkURL accepts an https URL, or http to a loopback address, with no
// user, query or fragment; a path only if withPath. It returns the URL
// without a trailing slash.
func checkURL(what, raw string, withPath bool) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%s must be an absolute https URL", what)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback(u.Hostname()):
	default:
		return "", fmt.Errorf("%s must be https (http only to a loopback address)", what)
	}
	if !withPath && u.Path != "" && u.Path != "/" {
		return "", fmt.Errorf("%s must have no path, e.g. %s", what, DefaultEndpoint)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// noRedirects returns a copy of c (or a new client) that does not follow
// redirects: neither FCM nor the token endpoint sends one, and a bearer
// token or an assertion should not travel on.
func noRedirects(c *http.Client) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	} else {
		out.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	out.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &out
}

// SendPush sends p as a notification to the device in p.Route.
func (s *Sender) SendPush(ctx context.Context, p flows.Push) error {
	_, err := s.Send(ctx, p)
	return err
}

// Send sends p as a notification to the device in p.Route and returns the
// message name FCM gave it ("projects/…/messages/…"), for the log.
func (s *Sender) Send(ctx context.Context, p flows.Push) (name string, err error) {
	token, err := ParseRoute(p.Route)
	if err != nil {
		return "", fmt.Errorf("fcm: %w", err)
	}
	body, err := Message(token, p)
	if err != nil {
		return "", fmt.Errorf("fcm: %w", err)
	}
	for attempt := 0; ; attempt++ {
		access, err := s.tokens.get(ctx)
		if err != nil {
			return "", fmt.Errorf("fcm: access token: %w", err)
		}
		name, err := s.post(ctx, access, body)
		var fe *Error
		if attempt == 0 && errors.As(err, &fe) && fe.accessTokenRefused() {
			// The access token was refused: fetch a fresh one, once.
			s.tokens.invalidate(ctx, access)
			continue
		}
		if err != nil {
			return "", fmt.Errorf("fcm: send: %w", err)
		}
		return name, nil
	}
}

// post makes one messages:send request.
func (s *Sender) post(ctx context.Context, access string, body []byte) (string, error) {
	status, header, answer, err := do(ctx, s.client, s.timeout, http.MethodPost, s.sendURL, "application/json; charset=utf-8", "Bearer "+access, body)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		e := ParseError(status, answer)
		e.RetryAfter = retryAfter(header.Get("Retry-After"))
		return "", e
	}
	var ok struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(answer, &ok); err != nil || ok.Name == "" {
		// FCM took the message; only its name is missing.
		return "", nil
	}
	return printable(ok.Name, 200), nil
}

// do makes one request with the timeout and reads at most maxAnswer of
// the answer. A failure to reach the server wraps push.ErrUnavailable
// unless ctx itself is done; errors never hold the URL.
func do(ctx context.Context, c *http.Client, timeout time.Duration, method, u, contentType, auth string, body []byte) (int, http.Header, []byte, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil {
			return 0, nil, nil, err
		}
		return 0, nil, nil, fmt.Errorf("%w: %w", push.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: read answer: %w", push.ErrUnavailable, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	return resp.StatusCode, resp.Header, answer, nil
}

// ParseRoute returns the registration token of an "fcm:" route: 1 to
// MaxRouteToken characters of letters, digits, '-', '_', ':' and '.'.
func ParseRoute(route string) (string, error) {
	token, ok := strings.CutPrefix(route, push.KindFCM+":")
	if !ok {
		return "", fmt.Errorf("%w: not an fcm: route", push.ErrBadRoute)
	}
	if len(token) == 0 || len(token) > MaxRouteToken {
		return "", fmt.Errorf("%w: an FCM registration token is 1 to %d characters", push.ErrBadRoute, MaxRouteToken)
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':' || c == '.') {
			return "", fmt.Errorf("%w: an FCM registration token has only letters, digits, '-', '_', ':' and '.'", push.ErrBadRoute)
		}
	}
	return token, nil
}

// message is the body of a messages:send request.
type message struct {
	Message struct {
		Token        string            `json:"token"`
		Notification notification      `json:"notification"`
		Data         map[string]string `json:"data"`
		Android      android           `json:"android"`
		APNs         apnsConfig        `json:"apns"`
	} `json:"message"`
}

type notification struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

type android struct {
	Priority    string `json:"priority"`
	TTL         string `json:"ttl"`
	CollapseKey string `json:"collapse_key"`
}

type apnsConfig struct {
	Headers map[string]string `json:"headers"`
}

// Message returns the messages:send body for p to token:
// {"message":{"token":…,"notification":{"title":…,"body":…},
// "data":{"signin_id":…},"android":{"priority":"HIGH","ttl":"120s",
// "collapse_key":…},"apns":{"headers":{"apns-priority":"10"}}}}. It checks
// the sign-in id (1 to 64 characters of letters, digits, '-', '_' or '.'),
// the text (UTF-8, not all empty) and the size of notification and data
// (at most MaxMessage bytes).
func Message(token string, p flows.Push) ([]byte, error) {
	if err := checkPush(p); err != nil {
		return nil, err
	}
	if n := len(p.Title) + len(p.Body) + len("signin_id") + len(p.SignInID); n > MaxMessage {
		return nil, fmt.Errorf("%w: notification and data are %d bytes, FCM takes at most %d", push.ErrBadPush, n, MaxMessage)
	}
	var m message
	m.Message.Token = token
	m.Message.Notification = notification{Title: p.Title, Body: p.Body}
	m.Message.Data = map[string]string{"signin_id": p.SignInID}
	m.Message.Android = android{Priority: "HIGH", TTL: fmt.Sprintf("%ds", int(TTL/time.Second)), CollapseKey: p.SignInID}
	m.Message.APNs = apnsConfig{Headers: map[string]string{"apns-priority": "10"}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("%w: %w", push.ErrBadPush, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func checkPush(p flows.Push) error {
	if len(p.SignInID) == 0 || len(p.SignInID) > 64 {
		return fmt.Errorf("%w: sign-in id must be 1 to 64 characters", push.ErrBadPush)
	}
	for _, c := range p.SignInID {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w: sign-in id has a character other than letters, digits, '-', '_' or '.'", push.ErrBadPush)
		}
	}
	if !utf8.ValidString(p.Title) || !utf8.ValidString(p.Body) {
		return fmt.Errorf("%w: title and body must be UTF-8", push.ErrBadPush)
	}
	if p.Title == "" && p.Body == "" {
		return fmt.Errorf("%w: title and body are both empty", push.ErrBadPush)
	}
	return nil
}

// printable cuts s to max bytes of printable ASCII, for text from a
// server that goes into errors and logs.
func printable(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
