package sms

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/keystep/keystep/flows"
)

// SignatureHeader is the header that carries the webhook's signature.
const SignatureHeader = "Keystep-Signature"

// MinSecret is the shortest webhook secret accepted, in bytes.
const MinSecret = 16

// WebhookConfig says where to POST text messages and how to sign them.
type WebhookConfig struct {
	// URL is the gateway's endpoint: https, or http to a loopback host.
	URL string
	// Secret keys the HMAC-SHA256 signature; at least MinSecret bytes.
	Secret []byte
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
	// Clock gives the timestamp and reads Retry-After dates; nil means the
	// system clock.
	Clock flows.Clock
	// Rand gives message ids and the backoff jitter; nil means crypto/rand.
	Rand io.Reader
}

// Webhook sends text messages as signed JSON POSTs to a gateway; the package
// doc describes the request and how to verify it. It is safe for concurrent
// use.
type Webhook struct {
	url    string
	secret []byte
	post   *poster
}

var _ flows.SMSSender = (*Webhook)(nil)

// NewWebhook checks cfg and returns a Webhook sender. It makes no request.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := checkURL("URL", cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("sms: webhook config: %w", err)
	}
	if len(cfg.Secret) < MinSecret {
		return nil, fmt.Errorf("sms: webhook config: %w", invalidf("secret must be at least %d bytes", MinSecret))
	}
	p, err := newPoster(cfg.HTTPClient, cfg.Timeout, cfg.Retries, cfg.Wait, cfg.Clock, cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("sms: webhook config: %w", err)
	}
	return &Webhook{url: u.String(), secret: bytes.Clone(cfg.Secret), post: p}, nil
}

// webhookBody is the JSON the gateway gets.
type webhookBody struct {
	To        string `json:"to"`
	Text      string `json:"text"`
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
}

// SendSMS sends m; any 2xx answer is success.
func (w *Webhook) SendSMS(ctx context.Context, m flows.SMS) error {
	if err := w.send(ctx, m); err != nil {
		return &sendError{prefix: "sms: webhook: send", to: m.To, err: err}
	}
	return nil
}

func (w *Webhook) send(ctx context.Context, m flows.SMS) error {
	if err := checkSMS(m); err != nil {
		return err
	}
	id := make([]byte, 16)
	if _, err := io.ReadFull(w.post.rand, id); err != nil {
		return fmt.Errorf("message id: %w", err)
	}
	a, attempts, err := w.post.do(ctx, func(ctx context.Context) (*http.Request, error) {
		// Each attempt is signed afresh, with the same id.
		ts := w.post.clock.Now().Unix()
		body, err := json.Marshal(webhookBody{To: m.To, Text: m.Text, ID: hex.EncodeToString(id), Timestamp: ts})
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "keystep")
		req.Header.Set(SignatureHeader, sign(w.secret, ts, body))
		return req, nil
	})
	if err != nil {
		return fmt.Errorf("%w%s", err, attemptsNote(attempts))
	}
	if a.status < 200 || a.status > 299 {
		msg := fmt.Sprintf("gateway answered %d %s", a.status, http.StatusText(a.status))
		if b := redactNumber(clean(string(a.body), 200), m.To); b != "" {
			msg += ": " + b
		}
		return fmt.Errorf("%s%s", msg, attemptsNote(attempts))
	}
	return nil
}

// sign makes the Keystep-Signature value for body sent at ts.
func sign(secret []byte, ts int64, body []byte) string {
	t := strconv.FormatInt(ts, 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(t))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + t + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}
