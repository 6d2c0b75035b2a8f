package sms_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/notify/sms"
)

const (
	sid        = "AC0123456789abcdef0123456789abcdef"
	token      = "tok-5e3a1c0ffee0ddba11deadbeef4242"
	serviceSID = "MG0123456789abcdef0123456789abcdef"
	from       = "+15005550006"
	to         = "+447700900123"
)

var (
	now    = time.Unix(1767225600, 0)
	secret = []byte("whsec-0123456789abcdef-0123456789")
)

// waiter is an injected WaitFunc: it records each wait and returns at once,
// moving the fake clock on by the wait.
type waiter struct {
	mu    sync.Mutex
	clock *clocktest.Clock
	waits []time.Duration
}

func (w *waiter) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waits = append(w.waits, d)
	w.clock.Advance(d)
	return ctx.Err()
}

func (w *waiter) got() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.waits...)
}

// zeros is a Rand that makes the jitter zero: each backoff is then exactly
// half of BaseBackoff doubled.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// recorded is one request the fake server got.
type recorded struct {
	method, path, query string
	header              http.Header
	body                []byte
}

// server is a fake Twilio or gateway: it records requests and answers each
// with the next of its replies (the last one repeats).
type server struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []recorded
	replies []func(w http.ResponseWriter, r *http.Request)
}

func newServer(t *testing.T, replies ...func(w http.ResponseWriter, r *http.Request)) *server {
	s := &server{replies: replies}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		reply := s.replies[min(len(s.reqs), len(s.replies))-1]
		s.mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

func reply(status int, body string, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// hangUp drops the connection without an answer: a network error.
func hangUp(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

const created = `{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","to":"+447700900123"}`

func twilioErr(status, code int, msg string) string {
	return fmt.Sprintf(`{"code": %d, "message": %q, "more_info": "https://www.twilio.com/docs/errors/%d", "status": %d}`, code, msg, code, status)
}

func newTwilio(t *testing.T, s *server, edit ...func(*sms.TwilioConfig)) (*sms.Twilio, *waiter) {
	t.Helper()
	clock := clocktest.New(now)
	w := &waiter{clock: clock}
	cfg := sms.TwilioConfig{
		BaseURL: s.URL, AccountSID: sid, AuthToken: token, From: from,
		Wait: w.wait, Clock: clock, Rand: zeros{},
	}
	for _, e := range edit {
		e(&cfg)
	}
	tw, err := sms.NewTwilio(cfg)
	if err != nil {
		t.Fatalf("NewTwilio: %v", err)
	}
	return tw, w
}

func checkTwilioRequest(t *testing.T, r recorded, wantForm url.Values) {
	t.Helper()
	if r.method != http.MethodPost {
		t.Errorf("method %s", r.method)
	}
	if want := "/2010-04-01/Accounts/" + sid + "/Messages.json"; r.path != want || r.query != "" {
		t.Errorf("path %q?%q, want %q", r.path, r.query, want)
	}
	req := &http.Request{Header: r.header}
	if user, pass, ok := req.BasicAuth(); !ok || user != sid || pass != token {
		t.Errorf("basic auth %q:%q (%v)", user, pass, ok)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q", ct)
	}
	if a := r.header.Get("Accept"); a != "application/json" {
		t.Errorf("Accept %q", a)
	}
	form, err := url.ParseQuery(string(r.body))
	if err != nil {
		t.Fatalf("form %q: %v", r.body, err)
	}
	if fmt.Sprint(form) != fmt.Sprint(wantForm) {
		t.Errorf("form %v, want %v", form, wantForm)
	}
}

func TestTwilioWireFormat(t *testing.T) {
	text := "Your keystep code is 428913. Ça expire dans 5 min & c'est tout = fin\n2nd line"
	t.Run("from", func(t *testing.T) {
		s := newServer(t, reply(201, created))
		tw, w := newTwilio(t, s)
		if err := tw.SendSMS(context.Background(), flows.SMS{To: to, Text: text}); err != nil {
			t.Fatalf("SendSMS: %v", err)
		}
		reqs := s.requests()
		if len(reqs) != 1 {
			t.Fatalf("%d requests", len(reqs))
		}
		checkTwilioRequest(t, reqs[0], url.Values{"To": {to}, "From": {from}, "Body": {text}})
		if len(w.got()) != 0 {
			t.Errorf("waited %v", w.got())
		}
	})
	t.Run("messaging service", func(t *testing.T) {
		s := newServer(t, reply(201, created))
		tw, _ := newTwilio(t, s, func(c *sms.TwilioConfig) { c.From, c.MessagingServiceSID = "", serviceSID })
		if err := tw.SendSMS(context.Background(), flows.SMS{To: to, Text: text}); err != nil {
			t.Fatalf("SendSMS: %v", err)
		}
		checkTwilioRequest(t, s.requests()[0], url.Values{"To": {to}, "MessagingServiceSid": {serviceSID}, "Body": {text}})
	})
	t.Run("base URL with a path", func(t *testing.T) {
		s := newServer(t, reply(201, created))
		tw, _ := newTwilio(t, s, func(c *sms.TwilioConfig) { c.BaseURL = s.URL + "/" })
		if err := tw.SendSMS(context.Background(), flows.SMS{To: to, Text: "x"}); err != nil {
			t.Fatalf("SendSMS: %v", err)
		}
		checkTwilioRequest(t, s.requests()[0], url.Values{"To": {to}, "From": {from}, "Body": {"x"}})
	})
}

func TestTwilioErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replies  []func(http.ResponseWriter, *http.Request)
		requests int
		status   int
		code     int
		want     []string
	}{
		{
			name:     "invalid number, no retry",
			replies:  []func(http.ResponseWriter, *http.Request){reply(400, twilioErr(400, 21211, "The 'To' number +447700900123 is not a valid phone number."))},
			requests: 1, status: 400, code: 21211,
			want: []string{`sms: twilio: send: twilio answered 400 Bad Request: error 21211: The 'To' number [recipient] is not a valid phone number. (see https://www.twilio.com/docs/errors/21211)`},
		},
		{
			name:     "bad credentials, no retry",
			replies:  []func(http.ResponseWriter, *http.Request){reply(401, twilioErr(401, 20003, "Authenticate"))},
			requests: 1, status: 401, code: 20003,
			want: []string{"401 Unauthorized", "error 20003: Authenticate"},
		},
		{
			name:     "not JSON, after all retries",
			replies:  []func(http.ResponseWriter, *http.Request){reply(502, "<html>\r\n<b>Bad gateway</b>\r\n</html>")},
			requests: 3, status: 502,
			want: []string{"twilio answered 502 Bad Gateway: <html> <b>Bad gateway</b> </html> (after 3 attempts)"},
		},
		{
			name:     "201 without a sid",
			replies:  []func(http.ResponseWriter, *http.Request){reply(201, `{}`)},
			requests: 1,
			want:     []string{"201 without a message sid"},
		},
		{
			name:     "200 is not Twilio's success",
			replies:  []func(http.ResponseWriter, *http.Request){reply(200, created)},
			requests: 1, status: 200,
			want: []string{"twilio answered 200 OK"},
		},
		{
			name:     "network error every time",
			replies:  []func(http.ResponseWriter, *http.Request){hangUp},
			requests: 3,
			want:     []string{"EOF", "(after 3 attempts)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.replies...)
			tw, w := newTwilio(t, s)
			err := tw.SendSMS(context.Background(), flows.SMS{To: to, Text: "code 1"})
			if err == nil {
				t.Fatal("SendSMS succeeded")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error %q shows the auth token", err)
			}
			checkNoNumber(t, err, to)
			var te *sms.TwilioError
			if tc.status != 0 && (!errors.As(err, &te) || te.Status != tc.status || te.Code != tc.code) {
				t.Errorf("error %#v, want a TwilioError with status %d and code %d", te, tc.status, tc.code)
			}
			if n := len(s.requests()); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
			if n := len(w.got()); n != tc.requests-1 {
				t.Errorf("waited %d times, want %d", n, tc.requests-1)
			}
		})
	}
}

func TestTwilioRetries(t *testing.T) {
	t.Run("503 then success, with backoff", func(t *testing.T) {
		s := newServer(t, reply(503, `{"code":20503,"message":"Service unavailable"}`), reply(503, ``), reply(201, created))
		tw, w := newTwilio(t, s)
		if err := tw.SendSMS(context.Background(), flows.SMS{To: to, Text: "code 1"}); err != nil {
			t.Fatalf("SendSMS: %v", err)
		}
		reqs := s.requests()
		if len(reqs) != 3 {
			t.Fatalf("%d requests, want 3", len(reqs))
		}
		for _, r := range reqs {
			checkTwilioRequest(t, r, url.Values{"To": {to}, "From": {from}, "Body": {"code 1"}})
		}
		// Zero jitter: half of 500ms, then half of 1s.
		if got, want := w.got(), []time.Duration{250 * time.Millisecond, 500 * time.Millisecond}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("waits %v, want %v", got, want)
		}
	})
	t.Run("network error then success", func(t *testing.T) {
		s := newServer(t, hangUp, reply(201, created))
		tw, _ := newTwilio(t, s)
		if err := tw.SendSMS(context.Background(), flows.SMS{To: to, Text: "code 1"}); err != nil {
			t.Fatalf("SendSMS: %v", err)
		}
		if n := len(s.requests()); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})
	t.Run("attempt timeout then success", func(t *testing.T) {
		stall := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
		s := newServer(t, stall, reply(201, created))
		tw, _ := newTwilio(t, s, func(c *sms.TwilioConfig) { c.Timeout = 50 * time.Millisecond })
		if err := tw.SendSMS(context.Background(), flows.SMS{To: to, Text: "code 1"}); err != nil {
			t.Fatalf("SendSMS: %v", err)
		}
		if n := len(s.requests()); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})
	t.Run("no retries", func(t *testing.T) {
		s := newServer(t, reply(503, ``))
		tw, w := newTwilio(t, s, func(c *sms.TwilioConfig) { c.Retries = -1 })
		if err := tw.SendSMS(context.Background(), flows.SMS{To: to, Text: "code 1"}); err == nil {
			t.Fatal("SendSMS succeeded")
		}
		if n := len(s.requests()); n != 1 || len(w.got()) != 0 {
			t.Errorf("%d requests, %d waits; want 1 and none", n, len(w.got()))
		}
	})
	for _, tc := range []struct {
		name, retryAfter string
		want             time.Duration
	}{
		{"Retry-After seconds", "7", 7 * time.Second},
		{"Retry-After zero", "0", 0},
		{"Retry-After capped", "3600", sms.MaxRetryAfter},
		{"Retry-After date", now.Add(12 * time.Second).UTC().Format(http.TimeFormat), 12 * time.Second},
		{"Retry-After date past", now.Add(-time.Hour).UTC().Format(http.TimeFormat), 0},
		{"Retry-After garbage", "soon", 250 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, reply(429, twilioErr(429, 20429, "Too Many Requests"), "Retry-After", tc.retryAfter), reply(201, created))
			tw, w := newTwilio(t, s)
			if err := tw.SendSMS(context.Background(), flows.SMS{To: to, Text: "code 1"}); err != nil {
				t.Fatalf("SendSMS: %v", err)
			}
			if got := w.got(); len(got) != 1 || got[0] != tc.want {
				t.Errorf("waits %v, want [%v]", got, tc.want)
			}
		})
	}
	t.Run("cancelled while waiting", func(t *testing.T) {
		s := newServer(t, reply(503, ``))
		ctx, cancel := context.WithCancel(context.Background())
		tw, err := sms.NewTwilio(sms.TwilioConfig{
			BaseURL: s.URL, AccountSID: sid, AuthToken: token, From: from,
			Wait: func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() },
		})
		if err != nil {
			t.Fatal(err)
		}
		err = tw.SendSMS(ctx, flows.SMS{To: to, Text: "code 1"})
		if !errors.Is(err, context.Canceled) || len(s.requests()) != 1 {
			t.Errorf("SendSMS: %v after %d requests; want Canceled after 1", err, len(s.requests()))
		}
	})
}

func TestTwilioJitter(t *testing.T) {
	// With real randomness every wait lies in the upper half of its step.
	s := newServer(t, reply(500, ``))
	tw, w := newTwilio(t, s, func(c *sms.TwilioConfig) { c.Rand = nil; c.Retries = 6 })
	if err := tw.SendSMS(context.Background(), flows.SMS{To: to, Text: "x"}); err == nil {
		t.Fatal("SendSMS succeeded")
	}
	got := w.got()
	if len(got) != 6 {
		t.Fatalf("waits %v", got)
	}
	for i, d := range got {
		step := min(sms.BaseBackoff<<i, sms.MaxBackoff)
		if d < step/2 || d > step {
			t.Errorf("wait %d: %v, want within [%v, %v]", i, d, step/2, step)
		}
	}
}

func TestRefusesBadMessagesWithoutARequest(t *testing.T) {
	s := newServer(t, reply(201, created))
	tw, _ := newTwilio(t, s)
	wh, _ := newWebhook(t, s)
	for _, sender := range []flows.SMSSender{tw, wh} {
		for _, tc := range []struct {
			m    flows.SMS
			want string
		}{
			{flows.SMS{To: "", Text: "x"}, "recipient number is required"},
			{flows.SMS{To: "07700900123", Text: "x"}, "E.164"},
			{flows.SMS{To: "+44 7700 900123", Text: "x"}, "E.164"},
			{flows.SMS{To: "+447700900123\r\nX: y", Text: "x"}, "E.164"},
			{flows.SMS{To: to, Text: ""}, "text is required"},
			{flows.SMS{To: to, Text: " \n"}, "text is required"},
			{flows.SMS{To: to, Text: "\xff"}, "valid UTF-8"},
			{flows.SMS{To: to, Text: strings.Repeat("é", sms.MaxText+1)}, "more than 1600"},
		} {
			err := sender.SendSMS(context.Background(), tc.m)
			if !errors.Is(err, flows.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%T.SendSMS(%q): %v, want an ErrInvalid saying %q", sender, tc.m, err, tc.want)
			}
			if tc.m.To != "" && tc.m.To[0] == '+' {
				checkNoNumber(t, err, tc.m.To[:13])
			} else if tc.m.To != "" {
				checkNoNumber(t, err, tc.m.To)
			}
		}
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("%d requests for bad input", n)
	}
}

func TestNewTwilioValidates(t *testing.T) {
	good := sms.TwilioConfig{AccountSID: sid, AuthToken: token, From: from}
	if _, err := sms.NewTwilio(good); err != nil {
		t.Fatalf("NewTwilio with the default URL: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*sms.TwilioConfig)
		want string
	}{
		{"http to a remote host", func(c *sms.TwilioConfig) { c.BaseURL = "http://api.twilio.com" }, "must use https"},
		{"credentials in the URL", func(c *sms.TwilioConfig) { c.BaseURL = "https://" + sid + ":" + token + "@api.twilio.com" }, "must not hold user info"},
		{"query in the URL", func(c *sms.TwilioConfig) { c.BaseURL = "https://api.twilio.com?x=1" }, "query"},
		{"relative URL", func(c *sms.TwilioConfig) { c.BaseURL = "api.twilio.com" }, "absolute URL"},
		{"bad SID", func(c *sms.TwilioConfig) { c.AccountSID = "AC123" }, "account SID"},
		{"no token", func(c *sms.TwilioConfig) { c.AuthToken = "" }, "auth token is required"},
		{"no sender", func(c *sms.TwilioConfig) { c.From = "" }, "from number or messaging service SID is required"},
		{"both senders", func(c *sms.TwilioConfig) { c.MessagingServiceSID = serviceSID }, "not both"},
		{"bad from", func(c *sms.TwilioConfig) { c.From = "Keystep" }, "E.164"},
		{"bad service SID", func(c *sms.TwilioConfig) { c.From, c.MessagingServiceSID = "", "MG1" }, "messaging service SID"},
		{"negative timeout", func(c *sms.TwilioConfig) { c.Timeout = -time.Second }, "must not be negative"},
		{"too many retries", func(c *sms.TwilioConfig) { c.Retries = sms.MaxRetries + 1 }, "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			_, err := sms.NewTwilio(cfg)
			if !errors.Is(err, flows.ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "sms: twilio config: ") {
				t.Fatalf("NewTwilio: %v, want an ErrInvalid saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error %q shows the auth token", err)
			}
		})
	}
}

func newWebhook(t *testing.T, s *server, edit ...func(*sms.WebhookConfig)) (*sms.Webhook, *waiter) {
	t.Helper()
	clock := clocktest.New(now)
	w := &waiter{clock: clock}
	cfg := sms.WebhookConfig{URL: s.URL + "/sms/send", Secret: secret, Wait: w.wait, Clock: clock, Rand: zeros{}}
	for _, e := range edit {
		e(&cfg)
	}
	wh, err := sms.NewWebhook(cfg)
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	return wh, w
}

type webhookBody struct {
	To        string `json:"to"`
	Text      string `json:"text"`
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
}

// verify checks a webhook request the way a gateway would, computing the
// HMAC here rather than trusting the package's own code.
func verify(t *testing.T, r recorded) webhookBody {
	t.Helper()
	if r.method != http.MethodPost || r.path != "/sms/send" {
		t.Errorf("%s %s", r.method, r.path)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	m := regexp.MustCompile(`^t=([0-9]+),v1=([0-9a-f]{64})$`).FindStringSubmatch(r.header.Get("Keystep-Signature"))
	if m == nil {
		t.Fatalf("Keystep-Signature %q", r.header.Get("Keystep-Signature"))
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(m[1] + "." + string(r.body)))
	if want := hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(m[2]), []byte(want)) {
		t.Errorf("signature %s, want %s", m[2], want)
	}
	var b webhookBody
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	for _, key := range []string{`"to":`, `"text":`, `"id":`, `"timestamp":`} {
		if !bytes.Contains(r.body, []byte(key)) {
			t.Errorf("body %s lacks %s", r.body, key)
		}
	}
	if strconv.FormatInt(b.Timestamp, 10) != m[1] {
		t.Errorf("body timestamp %d, signature t=%s", b.Timestamp, m[1])
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(b.ID) {
		t.Errorf("id %q", b.ID)
	}
	return b
}

func TestWebhookWireFormat(t *testing.T) {
	for _, status := range []int{200, 202, 204} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			s := newServer(t, reply(status, ``))
			wh, _ := newWebhook(t, s, func(c *sms.WebhookConfig) { c.Rand = nil })
			text := "Your code is 428913 <b>&</b> \"quoted\"\nÇa marche"
			if err := wh.SendSMS(context.Background(), flows.SMS{To: to, Text: text}); err != nil {
				t.Fatalf("SendSMS: %v", err)
			}
			reqs := s.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			b := verify(t, reqs[0])
			if b.To != to || b.Text != text || b.Timestamp != now.Unix() {
				t.Errorf("body %+v", b)
			}
		})
	}
}

func TestWebhookRetriesWithTheSameID(t *testing.T) {
	s := newServer(t, reply(503, ``, "Retry-After", "2"), hangUp, reply(200, `ok`))
	wh, w := newWebhook(t, s, func(c *sms.WebhookConfig) { c.Rand = nil })
	if err := wh.SendSMS(context.Background(), flows.SMS{To: to, Text: "code 1"}); err != nil {
		t.Fatalf("SendSMS: %v", err)
	}
	reqs := s.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	first := verify(t, reqs[0])
	third := verify(t, reqs[2])
	if first.ID != third.ID {
		t.Errorf("ids %q and %q differ across retries", first.ID, third.ID)
	}
	waits := w.got()
	if len(waits) != 2 || waits[0] != 2*time.Second {
		t.Fatalf("waits %v", waits)
	}
	// Each attempt is signed when it is made.
	if want := now.Add(waits[0] + waits[1]).Unix(); third.Timestamp != want || first.Timestamp != now.Unix() {
		t.Errorf("timestamps %d, %d; want %d, %d", first.Timestamp, third.Timestamp, now.Unix(), want)
	}
}

func TestWebhookErrors(t *testing.T) {
	s := newServer(t, reply(400, `{"error":"unknown number"}`))
	wh, w := newWebhook(t, s)
	err := wh.SendSMS(context.Background(), flows.SMS{To: to, Text: "code 1"})
	want := `sms: webhook: send: gateway answered 400 Bad Request: {"error":"unknown number"}`
	if err == nil || err.Error() != want {
		t.Fatalf("SendSMS: %v, want %s", err, want)
	}
	if len(s.requests()) != 1 || len(w.got()) != 0 {
		t.Errorf("a 400 was retried")
	}

	// A gateway that echoes the number does not get it into the error.
	s = newServer(t, reply(400, `{"error":"unknown number +447700900123 (447700900123)"}`))
	wh, _ = newWebhook(t, s)
	err = wh.SendSMS(context.Background(), flows.SMS{To: to, Text: "code 1"})
	if err == nil || !strings.Contains(err.Error(), "unknown number [recipient] ([recipient])") {
		t.Fatalf("SendSMS: %v, want the echoed number redacted", err)
	}
	checkNoNumber(t, err, to)

	s = newServer(t, reply(500, "boom"))
	wh, _ = newWebhook(t, s)
	err = wh.SendSMS(context.Background(), flows.SMS{To: to, Text: "code 1"})
	if err == nil || !strings.HasSuffix(err.Error(), "gateway answered 500 Internal Server Error: boom (after 3 attempts)") {
		t.Fatalf("SendSMS: %v", err)
	}
	checkNoNumber(t, err, to)
	for _, leak := range []string{string(secret), hex.EncodeToString(secret)} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q shows the secret", err)
		}
	}
}

func TestNewWebhookValidates(t *testing.T) {
	for _, tc := range []struct {
		cfg  sms.WebhookConfig
		want string
	}{
		{sms.WebhookConfig{Secret: secret}, "URL is required"},
		{sms.WebhookConfig{URL: "http://gateway.example/sms", Secret: secret}, "must use https"},
		{sms.WebhookConfig{URL: "ftp://gateway.example/sms", Secret: secret}, "must use https"},
		{sms.WebhookConfig{URL: "https://gateway.example/sms"}, "secret must be at least 16 bytes"},
		{sms.WebhookConfig{URL: "https://gateway.example/sms", Secret: secret[:15]}, "secret must be at least 16 bytes"},
		{sms.WebhookConfig{URL: "https://gateway.example/sms", Secret: secret, Retries: 11}, "at most 10"},
	} {
		_, err := sms.NewWebhook(tc.cfg)
		if !errors.Is(err, flows.ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "sms: webhook config: ") {
			t.Errorf("NewWebhook(%q): %v, want an ErrInvalid saying %q", tc.cfg.URL, err, tc.want)
		}
	}
	for _, u := range []string{"https://gateway.example/sms", "http://127.0.0.1:8080/sms", "http://[::1]/sms", "http://localhost/sms"} {
		if _, err := sms.NewWebhook(sms.WebhookConfig{URL: u, Secret: secret}); err != nil {
			t.Errorf("NewWebhook(%q): %v", u, err)
		}
	}
}

// checkNoNumber fails t if err's text holds the phone number, with or
// without its '+': sender errors reach the audit log and the admins' mail.
func checkNoNumber(t *testing.T, err error, number string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, leak := range []string{number, strings.TrimPrefix(number, "+")} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q shows the recipient's number", err)
		}
	}
}
