package alert_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/alert"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/store/sqlite"
)

var (
	secret  = []byte("webhook-secret-for-tests")
	t0      = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	example = flows.AdminAlert{Kind: flows.AlertFraudReport, Account: "alice", AccountID: "acc-1", SignIn: "si-1",
		Detail: `the user reported a sign-in they did not start: client "<Payroll>"`, Time: t0}
)

// received is what a webhook receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a real HTTP server that keeps each request and answers status.
func receiver(t *testing.T, status int) (*httptest.Server, <-chan received) {
	t.Helper()
	got := make(chan received, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- received{r.Header.Clone(), b}
		w.WriteHeader(status)
		io.WriteString(w, http.StatusText(status))
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestWebhookSignsItsBody(t *testing.T) {
	srv, got := receiver(t, http.StatusNoContent)
	w := alert.Webhook{URL: srv.URL + "/hooks/keystep", Secret: secret, Now: func() time.Time { return t0 }}
	if err := w.Alert(context.Background(), example); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	sig := r.header.Get(alert.HeaderSignature)
	if !strings.HasPrefix(sig, "t=1795770000,v1=") {
		t.Fatalf("signature header %q", sig)
	}
	if err := alert.Verify(secret, r.body, sig, t0.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("verify: %v", err)
	}
	var a flows.AdminAlert
	if err := json.Unmarshal(r.body, &a); err != nil || a != example {
		t.Fatalf("body %s decodes to %+v, %v", r.body, a, err)
	}
	// What Verify refuses.
	for name, c := range map[string]struct {
		secret, body []byte
		header       string
		now          time.Time
	}{
		"tampered body":  {secret, []byte(strings.Replace(string(r.body), "alice", "mallory", 1)), sig, t0},
		"wrong secret":   {[]byte("another-secret-entirely"), r.body, sig, t0},
		"stale":          {secret, r.body, sig, t0.Add(6 * time.Minute)},
		"no signature":   {secret, r.body, "t=1795770000", t0},
		"not hex":        {secret, r.body, "t=1795770000,v1=zz", t0},
		"no time":        {secret, r.body, "v1=" + strings.SplitN(sig, "v1=", 2)[1], t0},
		"time moved":     {secret, r.body, strings.Replace(sig, "t=1795770000", "t=1795770001", 1), t0},
		"empty header":   {secret, r.body, "", t0},
		"garbage header": {secret, r.body, "t=,v1=,,,", t0},
	} {
		if err := alert.Verify(c.secret, c.body, c.header, c.now, 5*time.Minute); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestWebhookFailures(t *testing.T) {
	srv, got := receiver(t, http.StatusServiceUnavailable)
	err := alert.Webhook{URL: srv.URL, Secret: secret}.Alert(context.Background(), example)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503 answer: %v", err)
	}
	<-got
	for name, w := range map[string]alert.Webhook{
		"short secret": {URL: srv.URL, Secret: []byte("short")},
		"bad URL":      {URL: "ftp://example.com/x", Secret: secret},
		"no URL":       {Secret: secret},
	} {
		if err := w.Alert(context.Background(), example); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	select {
	case r := <-got:
		t.Fatalf("a misconfigured webhook sent %s", r.body)
	default:
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	if err := (alert.Webhook{URL: closed.URL, Secret: secret}).Alert(context.Background(), example); err == nil {
		t.Fatal("a closed server took the alert")
	}
}

// outbox is a flows.EmailSender that keeps what it sends and fails for the
// addresses in fail.
type outbox struct {
	mu   sync.Mutex
	sent []flows.Email
	fail map[string]bool
}

func (o *outbox) SendEmail(_ context.Context, m flows.Email) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail[m.To] {
		return errors.New("550 mailbox unavailable")
	}
	o.sent = append(o.sent, m)
	return nil
}

func TestEmailAlert(t *testing.T) {
	o := &outbox{fail: map[string]bool{"gone@example.com": true}}
	e := alert.Email{Sender: o, To: []string{"it@example.com", "gone@example.com", "soc@example.com"}}
	err := e.Alert(context.Background(), example)
	if err == nil || !strings.Contains(err.Error(), "gone@example.com") {
		t.Fatalf("one failing address: %v", err)
	}
	if len(o.sent) != 2 || o.sent[0].To != "it@example.com" || o.sent[1].To != "soc@example.com" {
		t.Fatalf("sent %+v", o.sent)
	}
	m := o.sent[0]
	if !strings.Contains(m.Subject, "alice") || !strings.Contains(m.Subject, "did not start") {
		t.Fatalf("subject %q", m.Subject)
	}
	for _, s := range []string{"alice", "acc-1", "si-1", "2026-11-27T09:00:00Z", `client "<Payroll>"`} {
		if !strings.Contains(m.Text, s) {
			t.Errorf("text lacks %q:\n%s", s, m.Text)
		}
	}
	if strings.Contains(m.HTML, "<Payroll>") || !strings.Contains(m.HTML, "&lt;Payroll&gt;") {
		t.Errorf("HTML does not escape the detail:\n%s", m.HTML)
	}
	if err := (alert.Email{Sender: o}).Alert(context.Background(), example); err == nil {
		t.Fatal("an email alert with no address succeeded")
	}
}

type failing struct{ err error }

func (f failing) Alert(context.Context, flows.AdminAlert) error { return f.err }

func TestMulti(t *testing.T) {
	srv, got := receiver(t, http.StatusOK)
	boom := errors.New("boom")
	m := alert.Multi{failing{boom}, alert.Webhook{URL: srv.URL, Secret: secret}}
	if err := m.Alert(context.Background(), example); !errors.Is(err, boom) {
		t.Fatalf("multi: %v", err)
	}
	if r := <-got; !strings.Contains(string(r.body), `"kind":"fraud_report"`) {
		t.Fatalf("the webhook after a failing alerter got %s", r.body)
	}
	if err := (alert.Multi{}).Alert(context.Background(), example); err != nil {
		t.Fatalf("empty multi: %v", err)
	}
}

// TestFraudReportReachesTheWebhook runs the whole path: a device reports a
// sign-in it did not start, and the admins' webhook receives the signed
// alert before Decide returns.
func TestFraudReportReachesTheWebhook(t *testing.T) {
	ctx := context.Background()
	srv, got := receiver(t, http.StatusOK)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clock := clocktest.New(t0)
	const origin = "https://keystep.test"
	svc, err := flows.New(st, flows.Config{Origin: origin, CodeConfig: flows.CodeConfig{CodeKey: []byte("alert-test-code-key-0123456789abcdef")}},
		flows.WithClock(clock), flows.WithAdminAlerter(alert.Webhook{URL: srv.URL, Secret: secret, Now: clock.Now}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddAccount(ctx, "admin", flows.NewAccount{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	_, link, err := svc.Invite(ctx, "admin", "alice")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	msg, _ := flows.EnrollPayload(origin, link.Token, der)
	sig, _ := flows.SignES256(key, msg)
	d, _, err := svc.Enroll(ctx, flows.EnrollRequest{Token: link.Token, PublicKey: der, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := svc.Begin(ctx, flows.BeginRequest{Username: "alice", Client: "Payroll", IP: "198.51.100.4"})
	if err != nil {
		t.Fatal(err)
	}
	msg, _ = flows.DecisionPayload(origin, ch.SignIn.ID, ch.SignIn.Nonce, flows.DecisionReport, flows.MethodPush, "", clock.Now())
	sig, _ = flows.SignES256(key, msg)
	if _, err := svc.Decide(ctx, flows.DecisionRequest{SignInID: ch.SignIn.ID, DeviceID: d.ID, Decision: flows.DecisionReport,
		Method: flows.MethodPush, Time: clock.Now(), Signature: sig}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if err := alert.Verify(secret, r.body, r.header.Get(alert.HeaderSignature), clock.Now(), time.Minute); err != nil {
			t.Fatal(err)
		}
		var a flows.AdminAlert
		if err := json.Unmarshal(r.body, &a); err != nil {
			t.Fatal(err)
		}
		if a.Kind != flows.AlertFraudReport || a.Account != "alice" || a.SignIn != ch.SignIn.ID || !strings.Contains(a.Detail, "198.51.100.4") {
			t.Fatalf("alert %+v", a)
		}
	default:
		t.Fatal("Decide returned before the webhook had the alert")
	}
}
