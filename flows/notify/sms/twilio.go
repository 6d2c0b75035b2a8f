package sms

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/flows"
)

// DefaultTwilioURL is Twilio's API, used when TwilioConfig.BaseURL is empty.
const DefaultTwilioURL = "https://api.twilio.com"

// TwilioConfig says how to send through Twilio's Messages API.
type TwilioConfig struct {
	// BaseURL is the API's root; empty means DefaultTwilioURL. Tests point
	// it at a local server (http is allowed only to a loopback host).
	BaseURL string
	// AccountSID ("AC" and 32 hex digits) and AuthToken authenticate
	// every request with HTTP basic auth.
	AccountSID string
	AuthToken  string
	// From is the sending number, in E.164 form. Set it or
	// MessagingServiceSID ("MG" and 32 hex digits), not both.
	From                string
	MessagingServiceSID string
	// HTTPClient makes the requests; nil means a client that does not
	// follow redirects.
	HTTPClient *http.Client
	// Timeout bounds each attempt; zero means DefaultTimeout.
	Timeout time.Duration
	// Retries is how many times a failed attempt is retried (see the
	// package doc); zero means DefaultRetries and a negative number none.
	Retries int

	// Wait waits between attempts; nil means a real timer.
	Wait WaitFunc
	// Clock reads Retry-After dates; nil means the system clock.
	Clock flows.Clock
	// Rand gives the backoff jitter; nil means crypto/rand.
	Rand io.Reader
}

// Twilio sends text messages through Twilio. It is safe for concurrent use.
type Twilio struct {
	endpoint string
	sid      string
	token    string
	from     string
	service  string
	post     *poster
}

var _ flows.SMSSender = (*Twilio)(nil)

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
)

// NewTwilio checks cfg and returns a Twilio sender. It makes no request.
func NewTwilio(cfg TwilioConfig) (*Twilio, error) {
	t, err := newTwilio(cfg)
	if err != nil {
		return nil, fmt.Errorf("sms: twilio config: %w", err)
	}
	return t, nil
}

func newTwilio(cfg TwilioConfig) (*Twilio, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultTwilioURL
	}
	base, err := checkURL("base URL", cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if !accountSIDPattern.MatchString(cfg.AccountSID) {
		return nil, invalidf("account SID %q must be \"AC\" and 32 hex digits", cfg.AccountSID)
	}
	if cfg.AuthToken == "" {
		return nil, invalidf("auth token is required")
	}
	if strings.ContainsAny(cfg.AuthToken, "\x00\r\n") {
		return nil, invalidf("auth token must not hold NUL or line breaks")
	}
	switch {
	case cfg.From != "" && cfg.MessagingServiceSID != "":
		return nil, invalidf("set from or messaging service SID, not both")
	case cfg.From != "":
		if err := flows.CheckPhone(cfg.From); err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
	case cfg.MessagingServiceSID != "":
		if !serviceSIDPattern.MatchString(cfg.MessagingServiceSID) {
			return nil, invalidf("messaging service SID %q must be \"MG\" and 32 hex digits", cfg.MessagingServiceSID)
		}
	default:
		return nil, invalidf("from number or messaging service SID is required")
	}
	p, err := newPoster(cfg.HTTPClient, cfg.Timeout, cfg.Retries, cfg.Wait, cfg.Clock, cfg.Rand)
	if err != nil {
		return nil, err
	}
	return &Twilio{
		endpoint: strings.TrimSuffix(base.String(), "/") + "/2010-04-01/Accounts/" + cfg.AccountSID + "/Messages.json",
		sid:      cfg.AccountSID,
		token:    cfg.AuthToken,
		from:     cfg.From,
		service:  cfg.MessagingServiceSID,
		post:     p,
	}, nil
}

// SendSMS sends m. It succeeds when Twilio answers 201 with the new
// message's sid; a Twilio error answer becomes a *TwilioError.
func (t *Twilio) SendSMS(ctx context.Context, m flows.SMS) error {
	if err := t.send(ctx, m); err != nil {
		return &sendError{prefix: "sms: twilio: send", to: m.To, err: err}
	}
	return nil
}

func (t *Twilio) send(ctx context.Context, m flows.SMS) error {
	if err := checkSMS(m); err != nil {
		return err
	}
	form := url.Values{"To": {m.To}, "Body": {m.Text}}
	if t.from != "" {
		form.Set("From", t.from)
	} else {
		form.Set("MessagingServiceSid", t.service)
	}
	body := form.Encode()
	a, attempts, err := t.post.do(ctx, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(t.sid, t.token)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "keystep")
		return req, nil
	})
	if err != nil {
		return fmt.Errorf("%w%s", err, attemptsNote(attempts))
	}
	if a.status != http.StatusCreated {
		te := parseTwilioError(a.status, a.body)
		te.Message = redactNumber(te.Message, m.To) // Twilio's messages quote the number
		return fmt.Errorf("%w%s", te, attemptsNote(attempts))
	}
	var ok struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(a.body, &ok); err != nil || ok.SID == "" {
		return fmt.Errorf("twilio answered 201 without a message sid: %q", redactNumber(clean(string(a.body), 200), m.To))
	}
	return nil
}

// TwilioError is an error answer from Twilio. Code is Twilio's error code
// (see MoreInfo), zero when the answer was not Twilio's JSON error body.
type TwilioError struct {
	Status   int    // the HTTP status of the answer
	Code     int    // Twilio's error code, like 21211
	Message  string // Twilio's message, or the start of the body when it was not JSON
	MoreInfo string // a link to Twilio's page on the code
}

// Error says what Twilio said, on one line.
func (e *TwilioError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "twilio answered %d %s", e.Status, http.StatusText(e.Status))
	if e.Code != 0 {
		fmt.Fprintf(&b, ": error %d", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.MoreInfo != "" {
		fmt.Fprintf(&b, " (see %s)", e.MoreInfo)
	}
	return b.String()
}

// parseTwilioError turns an error answer into a *TwilioError. It reads
// Twilio's JSON error body ({"code", "message", "more_info", "status"}; the
// HTTP status is the one kept) when
// it can, and otherwise keeps the start of the body as the message. Text
// from the server is cleaned to one line of bounded length.
func parseTwilioError(status int, body []byte) *TwilioError {
	e := &TwilioError{Status: status}
	var j struct {
		Code     json.RawMessage `json:"code"`
		Message  string          `json:"message"`
		MoreInfo string          `json:"more_info"`
	}
	if err := json.Unmarshal(body, &j); err != nil {
		e.Message = clean(string(body), 200)
		return e
	}
	if c, err := strconv.Atoi(string(j.Code)); err == nil && c > 0 {
		e.Code = c
	}
	e.Message = clean(j.Message, 500)
	if e.Code == 0 && e.Message == "" {
		e.Message = clean(string(body), 200)
	}
	if u, err := url.Parse(j.MoreInfo); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		e.MoreInfo = clean(u.String(), 300)
	}
	return e
}
