package flows_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/notify/apns"
	"github.com/keystep/keystep/flows/notify/push"
)

// apnsHit is one request the local APNs received, as it saw it.
type apnsHit struct {
	proto, method, token, collapseID, pushType, topic string
	bearer                                            bool
	signInID, title, body                             string
	raw                                               string
}

// localAPNs is an HTTP/2 TLS server at APNs' path that records each
// request and answers 410 Unregistered for the tokens in gone.
type localAPNs struct {
	srv  *httptest.Server
	gone map[string]bool
	mu   sync.Mutex
	hits []apnsHit
}

func newLocalAPNs(t *testing.T, gone ...string) *localAPNs {
	l := &localAPNs{gone: map[string]bool{}}
	for _, g := range gone {
		l.gone[g] = true
	}
	l.srv = httptest.NewUnstartedServer(http.HandlerFunc(l.serve))
	l.srv.EnableHTTP2 = true
	l.srv.StartTLS()
	t.Cleanup(l.srv.Close)
	return l
}

func (l *localAPNs) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var p struct {
		APS struct {
			Alert struct{ Title, Body string } `json:"alert"`
		} `json:"aps"`
		SignInID string `json:"signin_id"`
	}
	_ = json.Unmarshal(raw, &p)
	token, _ := strings.CutPrefix(r.URL.Path, "/3/device/")
	h := apnsHit{
		proto: r.Proto, method: r.Method, token: token, collapseID: r.Header.Get("apns-collapse-id"),
		pushType: r.Header.Get("apns-push-type"), topic: r.Header.Get("apns-topic"),
		bearer:   strings.HasPrefix(r.Header.Get("authorization"), "bearer ey"),
		signInID: p.SignInID, title: p.APS.Alert.Title, body: p.APS.Alert.Body, raw: string(raw),
	}
	l.mu.Lock()
	l.hits = append(l.hits, h)
	l.mu.Unlock()
	w.Header().Set("apns-id", "6F1C4F3B-2D6E-4C2B-9A51-0E6B3A6F2C11")
	if l.gone[token] {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGone)
		_, _ = io.WriteString(w, `{"reason":"Unregistered","timestamp":1767225600000}`)
	}
}

func (l *localAPNs) all() []apnsHit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.hits)
}

// TestBeginPushesThroughRealAPNsSender: Begin → push.Router → the real
// APNs sender → an HTTP/2 request at /3/device/<token> whose collapse id
// and signin_id are the sign-in's id; a 410 from APNs clears that route.
func TestBeginPushesThroughRealAPNsSender(t *testing.T) {
	liveToken, deadToken := strings.Repeat("0a1b2c3d", 8), strings.Repeat("ffee", 16)
	server := newLocalAPNs(t, deadToken)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sender, err := apns.New(apns.Config{
		Endpoint: server.srv.URL, KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		KeyID: "ABC123DEFG", TeamID: "DEF123GHIJ", Topic: "com.example.keystep", HTTPClient: server.srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, flows.Config{NumberDigits: 6}, flows.WithPushSender(push.Router{APNs: sender}),
		flows.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(e.svc.Close)
	e.addUser("alice")
	live := e.enrollWith("alice", "apns:"+liveToken)
	dead := e.enrollWith("alice", "apns:"+deadToken)

	ch := e.begin("alice")
	e.svc.WaitIdle()
	hits := server.all()
	if len(hits) != 2 {
		t.Fatalf("APNs got %d requests, want 2: %+v", len(hits), hits)
	}
	var tokens []string
	for _, h := range hits {
		tokens = append(tokens, h.token)
		if h.proto != "HTTP/2.0" || h.method != http.MethodPost || h.collapseID != ch.SignIn.ID || h.signInID != ch.SignIn.ID ||
			h.pushType != "alert" || h.topic != "com.example.keystep" || !h.bearer ||
			h.title != "Sign-in request" || h.body != "Payroll wants you to sign in" {
			t.Errorf("APNs request %+v", h)
		}
		if strings.Contains(h.raw, ch.Number) || strings.Contains(h.raw, ch.SignIn.Nonce) {
			t.Errorf("APNs payload %s holds the number or the nonce", h.raw)
		}
	}
	slices.Sort(tokens)
	if want := []string{liveToken, deadToken}; !slices.Equal(tokens, want) {
		t.Fatalf("APNs got tokens %q, want %q", tokens, want)
	}
	if d := e.device(dead.device.ID); d.PushRoute != "" {
		t.Fatalf("APNs said 410 Unregistered, yet the route is %q", d.PushRoute)
	}
	if d := e.device(live.device.ID); d.PushRoute != "apns:"+liveToken {
		t.Fatalf("the delivered route became %q", d.PushRoute)
	}
	failed := e.auditOf(flows.AuditPushFailed)
	if len(failed) != 1 || failed[0].DeviceID != dead.device.ID || !strings.Contains(failed[0].Detail, "410 Unregistered") ||
		strings.Contains(failed[0].Detail, deadToken) {
		t.Fatalf("push.failed events %+v", failed)
	}
	if cleared := e.auditOf(flows.AuditPushRouteCleared); len(cleared) != 1 || cleared[0].DeviceID != dead.device.ID {
		t.Fatalf("push.route_cleared events %+v", cleared)
	}
}
