// Package apns sends keystep's wake-up pushes through Apple Push
// Notification service (APNs) with token-based authentication: an ES256
// JWT made from the team's .p8 signing key, sent over HTTP/2.
//
// A route is "apns:<device token in hex>". The push is a plain alert with
// the sign-in id in a custom key ("signin_id"); it carries no secret. The
// app fetches the request itself over the signed device API.
//
// Errors wrap the sentinels of package push: a dead device token
// (410, or 400 BadDeviceToken) gives ErrRouteGone; an expired or refused
// provider token is answered by making a fresh JWT and sending once more,
// and gives push.ErrAuth if that is refused too; 429 gives
// push.ErrThrottled and 5xx push.ErrUnavailable. Nothing is retried
// otherwise: the caller decides.
package apns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/notify/push"
)

// APNs servers and limits, as Apple documents them.
const (
	// ProductionEndpoint is APNs for apps from the App Store, TestFlight
	// and ad-hoc builds; it is the default.
	ProductionEndpoint = "https://api.push.apple.com"
	// SandboxEndpoint is APNs for development builds of the app.
	SandboxEndpoint = "https://api.sandbox.push.apple.com"
	// MaxPayload is the largest alert payload APNs takes, in bytes.
	MaxPayload = 4096
	// DefaultTimeout bounds each request when Config.Timeout is zero.
	DefaultTimeout = 10 * time.Second
	// Expiration is how long APNs keeps trying to deliver a push that
	// cannot be delivered at once. The sign-in's own expiry is not known
	// here, and a wake-up for a sign-in that is over is useless.
	Expiration = 120 * time.Second
	// TokenRefresh is the age at which the provider token (JWT) is
	// replaced. APNs refuses tokens older than an hour and throttles
	// providers that make new ones more often than every 20 minutes.
	TokenRefresh = 50 * time.Minute
)

// ErrRouteGone is push.ErrRouteGone: APNs says the device token is no longer
// valid for the topic, and keystep may mark the route dead.
var ErrRouteGone = push.ErrRouteGone

// maxAnswer is how much of a response body is read.
const maxAnswer = 16 << 10

// Config says how to reach APNs.
type Config struct {
	// Endpoint is APNs' base URL; empty means ProductionEndpoint. Use
	// SandboxEndpoint for development builds. It must be https.
	Endpoint string
	// KeyPEM is the content of the AuthKey_<KeyID>.p8 file from Apple:
	// a PEM "PRIVATE KEY" holding a PKCS#8 EC P-256 key.
	KeyPEM []byte
	// KeyID is the key's 10-character identifier; TeamID is the team's.
	KeyID  string
	TeamID string
	// Topic is the app's bundle id, e.g. "com.example.keystep".
	Topic string
	// HTTPClient makes the requests; it must speak HTTP/2 (APNs speaks
	// nothing else). nil means a client that speaks only HTTP/2. Either
	// way redirects are not followed.
	HTTPClient *http.Client
	// Clock gives the time for the JWT and the expiration; nil means
	// time.Now.
	Clock func() time.Time
	// Timeout bounds each request; zero means DefaultTimeout.
	Timeout time.Duration
}

// Sender sends pushes through APNs. It is safe for concurrent use.
type Sender struct {
	endpoint string
	topic    string
	client   *http.Client
	clock    func() time.Time
	timeout  time.Duration
	jwt      *tokenCache
}

var _ flows.PushSender = (*Sender)(nil)

var (
	idPattern    = regexp.MustCompile(`^[A-Z0-9]{10}$`)
	topicPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.\-_]{0,254}$`)
)

// New checks cfg and returns a Sender. It makes no request.
func New(cfg Config) (*Sender, error) {
	s, err := newSender(cfg)
	if err != nil {
		return nil, fmt.Errorf("apns: config: %w", err)
	}
	return s, nil
}

func newSender(cfg Config) (*Sender, error) {
	endpoint, err := checkEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if !idPattern.MatchString(cfg.KeyID) {
		return nil, errors.New("key id (KeyID) must be the key's 10-character identifier (A-Z, 0-9)")
	}
	if !idPattern.MatchString(cfg.TeamID) {
		return nil, errors.New("team id (TeamID) must be the team's 10-character identifier (A-Z, 0-9)")
	}
	if !topicPattern.MatchString(cfg.Topic) {
		return nil, errors.New("topic must be the app's bundle id")
	}
	key, err := parseKey(cfg.KeyPEM)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("timeout must not be negative")
	}
	s := &Sender{
		endpoint: endpoint,
		topic:    cfg.Topic,
		client:   noRedirects(cfg.HTTPClient),
		clock:    cfg.Clock,
		timeout:  cfg.Timeout,
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	s.jwt = &tokenCache{key: key, keyID: cfg.KeyID, teamID: cfg.TeamID}
	return s, nil
}

// checkEndpoint accepts an https URL with a host and nothing after it.
func checkEndpoint(raw string) (string, error) {
	if raw == "" {
		return ProductionEndpoint, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("endpoint is not a URL")
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		(u.Path != "" && u.Path != "/") {
		return "", errors.New("endpoint must be an https URL with no path, e.g. " + ProductionEndpoint)
	}
	return "https://" + u.Host, nil
}

// noRedirects returns a copy of c (or a new HTTP/2-only client) that does
// not follow redirects: APNs never sends one.
func noRedirects(c *http.Client) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP2(true)
		out.Transport = tr
	}
	out.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &out
}

// SendPush sends p as an alert to the device in p.Route.
func (s *Sender) SendPush(ctx context.Context, p flows.Push) error {
	_, err := s.Send(ctx, p)
	return err
}

// Send sends p as an alert to the device in p.Route and returns the
// apns-id APNs gave the notification, for the log.
func (s *Sender) Send(ctx context.Context, p flows.Push) (apnsID string, err error) {
	token, err := ParseRoute(p.Route)
	if err != nil {
		return "", fmt.Errorf("apns: %w", err)
	}
	payload, err := Payload(p)
	if err != nil {
		return "", fmt.Errorf("apns: %w", err)
	}
	for attempt := 0; ; attempt++ {
		jwt, err := s.jwt.get(s.clock())
		if err != nil {
			return "", fmt.Errorf("apns: provider token: %w", err)
		}
		id, err := s.post(ctx, token, p.SignInID, jwt, payload)
		var ae *Error
		if attempt == 0 && errors.As(err, &ae) && ae.providerToken() {
			// The JWT expired or was refused: make a fresh one, once.
			s.jwt.invalidate(jwt)
			continue
		}
		if err != nil {
			return id, fmt.Errorf("apns: send: %w", err)
		}
		return id, nil
	}
}

// post makes one request to APNs.
func (s *Sender) post(ctx context.Context, token, signInID, jwt string, payload []byte) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, s.endpoint+"/3/device/"+token, bytes.NewReader(payload))
	if err != nil {
		return "", fmt.Errorf("build request: %w", err)
	}
	h := req.Header
	h.Set("authorization", "bearer "+jwt)
	h.Set("apns-topic", s.topic)
	h.Set("apns-push-type", "alert")
	h.Set("apns-priority", "10")
	h.Set("apns-expiration", strconv.FormatInt(s.clock().Add(Expiration).Unix(), 10))
	h.Set("apns-collapse-id", signInID)
	resp, err := s.client.Do(req)
	if err != nil {
		// The URL holds the device token: say only what failed.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil {
			// The caller gave up; APNs did nothing wrong.
			return "", err
		}
		return "", fmt.Errorf("%w: %w", push.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return "", fmt.Errorf("%w: read answer: %w", push.ErrUnavailable, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	id := cleanID(resp.Header.Get("apns-id"))
	if resp.StatusCode == http.StatusOK {
		return id, nil
	}
	e := ParseError(resp.StatusCode, body)
	e.APNsID = id
	return id, e
}

// cleanID keeps an apns-id only if it looks like one (a UUID), since it
// goes into logs.
func cleanID(s string) string {
	if len(s) != 36 {
		return ""
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '-') {
			return ""
		}
	}
	return s
}

// ParseRoute returns the device token of an "apns:" route: 64 to 200 hex
// digits, an even number of them (the token is bytes).
func ParseRoute(route string) (string, error) {
	token, ok := strings.CutPrefix(route, push.KindAPNs+":")
	if !ok {
		return "", fmt.Errorf("%w: not an apns: route", push.ErrBadRoute)
	}
	if len(token) < 64 || len(token) > 200 || len(token)%2 != 0 {
		return "", fmt.Errorf("%w: an APNs device token is 64 to 200 hex digits", push.ErrBadRoute)
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", fmt.Errorf("%w: an APNs device token is hex digits only", push.ErrBadRoute)
		}
	}
	return token, nil
}

// payload is the JSON body of an alert push.
type payload struct {
	APS      aps    `json:"aps"`
	SignInID string `json:"signin_id"`
}

type aps struct {
	Alert alert  `json:"alert"`
	Sound string `json:"sound"`
}

type alert struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

// Payload returns the JSON body APNs gets for p:
// {"aps":{"alert":{"title":…,"body":…},"sound":"default"},"signin_id":…}.
// It checks the sign-in id (1 to 64 characters of letters, digits, '-',
// '_' or '.', since it is also the collapse id), the text (UTF-8, not all
// empty) and the size (at most MaxPayload bytes).
func Payload(p flows.Push) ([]byte, error) {
	if err := checkPush(p); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<" is one byte, not six, of the 4 KiB
	err := enc.Encode(payload{
		APS:      aps{Alert: alert{Title: p.Title, Body: p.Body}, Sound: "default"},
		SignInID: p.SignInID,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", push.ErrBadPush, err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxPayload {
		return nil, fmt.Errorf("%w: payload is %d bytes, APNs takes at most %d", push.ErrBadPush, len(b), MaxPayload)
	}
	return b, nil
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
