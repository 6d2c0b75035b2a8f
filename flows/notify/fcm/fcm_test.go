package fcm_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/notify/fcm"
	"github.com/keystep/keystep/flows/notify/push"
)

const (
	projectID   = "keystep-test-4711"
	clientEmail = "keystep-push@keystep-test-4711.iam.gserviceaccount.com"
	keyID       = "0123456789abcdef0123456789abcdef01234567"
	regToken    = "dGVzdC10b2tlbg:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx_Xz-ZaQ0uJrw.tc"
)

var (
	keyOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testKey is one 2048-bit key for the whole run: making one is slow.
func testKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = k
	})
	return rsaKey
}

// serviceAccountJSON is a key file shaped as Google writes it.
func serviceAccountJSON(t testing.TB, tokenURI string) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  projectID,
		"private_key_id":              keyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                clientEmail,
		"client_id":                   "112233445566778899001",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   tokenURI,
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/keystep-push%40keystep-test-4711.iam.gserviceaccount.com",
		"universe_domain":             "googleapis.com",
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clock is the shared fake clock; the test moves it by hand.
type clock = clocktest.Clock

func newClock() *clock { return clocktest.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) }

// answer is what the fake says to one request.
type answer struct {
	status int
	body   string
	header map[string]string
}

// fakeGoogle is a local HTTP/2 server with Google's token endpoint at
// /token and FCM's messages:send, checking every request as Google
// documents it.
type fakeGoogle struct {
	t     *testing.T
	srv   *httptest.Server
	clock *clock

	mu         sync.Mutex
	expiresIn  int
	issued     map[string]bool // access tokens that are valid
	tokenCalls int
	sendCalls  int
	sendTokens []string // bearer token of each send
	// tokenAnswers, if any, are used (in order) instead of issuing a token.
	tokenAnswers []answer
	// sendAnswers, if any, are used in order before answering 200.
	sendAnswers []answer
	// revokeAfterUse makes each access token valid for one send only.
	revokeAfterUse bool
}

func newFakeGoogle(t *testing.T, c *clock) *fakeGoogle {
	g := &fakeGoogle{t: t, clock: c, expiresIn: 3599, issued: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", g.token)
	mux.HandleFunc("/v1/projects/{project}/{rest}", g.send)
	g.srv = httptest.NewUnstartedServer(mux)
	g.srv.EnableHTTP2 = true
	g.srv.StartTLS()
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGoogle) tokenURL() string { return g.srv.URL + "/token" }

func (g *fakeGoogle) counts() (tokenCalls, sendCalls int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tokenCalls, g.sendCalls
}

func (g *fakeGoogle) token(w http.ResponseWriter, r *http.Request) {
	t := g.t
	fail := func(format string, args ...any) {
		t.Errorf("fake token endpoint: "+format, args...)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_request","error_description":"test: request wrong"}`)
	}
	if r.ProtoMajor != 2 || r.Method != http.MethodPost {
		fail("%s %s", r.Proto, r.Method)
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		fail("content-type %q", r.Header.Get("Content-Type"))
		return
	}
	if r.Header.Get("Authorization") != "" {
		fail("authorization header on the token request")
		return
	}
	body, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(body))
	if err != nil || len(form) != 2 || len(form["grant_type"]) != 1 || len(form["assertion"]) != 1 {
		fail("form %q", body)
		return
	}
	if form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		fail("grant_type %q", form.Get("grant_type"))
		return
	}
	if err := g.checkAssertion(form.Get("assertion")); err != nil {
		fail("assertion: %v", err)
		return
	}
	g.mu.Lock()
	g.tokenCalls++
	n := g.tokenCalls
	var a *answer
	if len(g.tokenAnswers) > 0 {
		a, g.tokenAnswers = &g.tokenAnswers[0], g.tokenAnswers[1:]
	}
	tok := fmt.Sprintf("ya29.c.test-token-%d", n)
	if a == nil {
		g.issued[tok] = true
	}
	expires := g.expiresIn
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if a != nil {
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
		return
	}
	fmt.Fprintf(w, `{"access_token":%q,"expires_in":%d,"token_type":"Bearer"}`, tok, expires)
}

// checkAssertion checks the JWT as Google does: RS256 with the key id, the
// service account as issuer, the FCM scope, the token URL as audience, an
// hour's validity from now, signed by the service account's key.
func (g *fakeGoogle) checkAssertion(jwt string) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%d parts", len(parts))
	}
	dec := base64.RawURLEncoding
	h, err := dec.DecodeString(parts[0])
	if err != nil {
		return err
	}
	if string(h) != `{"alg":"RS256","typ":"JWT","kid":"`+keyID+`"}` {
		return fmt.Errorf("header %s", h)
	}
	c, err := dec.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var claims map[string]any
	if err := json.Unmarshal(c, &claims); err != nil {
		return err
	}
	now := g.clock.Now().Unix()
	want := map[string]any{
		"iss":   clientEmail,
		"scope": "https://www.googleapis.com/auth/firebase.messaging",
		"aud":   g.tokenURL(),
		"iat":   float64(now),
		"exp":   float64(now + 3600),
	}
	if len(claims) != len(want) {
		return fmt.Errorf("claims %s", c)
	}
	for k, v := range want {
		if claims[k] != v {
			return fmt.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	sig, err := dec.DecodeString(parts[2])
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&testKey(g.t).PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("signature: %v", err)
	}
	return nil
}

// sentMessage is the messages:send body, every field Google documents
// that keystep sets.
type sentMessage struct {
	Message struct {
		Token        string `json:"token"`
		Notification struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"notification"`
		Data    map[string]string `json:"data"`
		Android struct {
			Priority    string `json:"priority"`
			TTL         string `json:"ttl"`
			CollapseKey string `json:"collapse_key"`
		} `json:"android"`
		APNs struct {
			Headers map[string]string `json:"headers"`
		} `json:"apns"`
	} `json:"message"`
}

func (g *fakeGoogle) send(w http.ResponseWriter, r *http.Request) {
	t := g.t
	fail := func(format string, args ...any) {
		t.Errorf("fake FCM: "+format, args...)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"code":400,"message":"test: request wrong","status":"FAILED_PRECONDITION"}}`)
	}
	if r.ProtoMajor != 2 || r.Method != http.MethodPost {
		fail("%s %s", r.Proto, r.Method)
		return
	}
	if r.URL.EscapedPath() != "/v1/projects/"+projectID+"/messages:send" || r.URL.RawQuery != "" {
		fail("path %q", r.URL.RequestURI())
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		fail("content-type %q", r.Header.Get("Content-Type"))
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		fail("authorization %q", r.Header.Get("Authorization"))
		return
	}
	body, _ := io.ReadAll(r.Body)
	var m sentMessage
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		fail("body %s: %v", body, err)
		return
	}
	var canon bytes.Buffer
	enc := json.NewEncoder(&canon)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m)
	if string(body)+"\n" != canon.String() {
		fail("body\n%s\nnot in the documented shape\n%s", body, canon.String())
		return
	}
	msg := m.Message
	p := testPush()
	sid := msg.Data["signin_id"]
	if msg.Token != regToken || msg.Notification.Title != p.Title || msg.Notification.Body != p.Body ||
		len(msg.Data) != 1 || sid != p.SignInID ||
		msg.Android.Priority != "HIGH" || msg.Android.TTL != "120s" || msg.Android.CollapseKey != sid ||
		len(msg.APNs.Headers) != 1 || msg.APNs.Headers["apns-priority"] != "10" {
		fail("message %+v", msg)
		return
	}

	g.mu.Lock()
	g.sendCalls++
	g.sendTokens = append(g.sendTokens, tok)
	valid := g.issued[tok]
	if g.revokeAfterUse {
		delete(g.issued, tok)
	}
	var a *answer
	if valid && len(g.sendAnswers) > 0 {
		a, g.sendAnswers = &g.sendAnswers[0], g.sendAnswers[1:]
	}
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	switch {
	case !valid:
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"code":401,"message":"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.","status":"UNAUTHENTICATED"}}`)
	case a != nil:
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	default:
		fmt.Fprintf(w, `{"name":"projects/%s/messages/0:1700000000000000%%abcdef"}`, projectID)
	}
}

func testPush() flows.Push {
	return flows.Push{
		Route:    "fcm:" + regToken,
		SignInID: "abcdefghijklmnopqrstuvwxyz",
		Title:    "Sign-in request",
		Body:     `Payroll wants you to sign in <"&">`,
	}
}

// setup makes a fake Google and a Sender pointed at it.
func setup(t *testing.T) (*fcm.Sender, *fakeGoogle, *clock) {
	t.Helper()
	c := newClock()
	g := newFakeGoogle(t, c)
	s, err := fcm.New(fcm.Config{
		Endpoint:           g.srv.URL,
		TokenURL:           g.tokenURL(),
		ServiceAccountJSON: serviceAccountJSON(t, "https://oauth2.googleapis.com/token"),
		HTTPClient:         g.srv.Client(),
		Clock:              c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, g, c
}

func TestSendIsWhatGoogleDocuments(t *testing.T) {
	s, g, _ := setup(t)
	name, err := s.Send(context.Background(), testPush())
	if err != nil {
		t.Fatal(err)
	}
	if want := "projects/" + projectID + "/messages/0:1700000000000000%abcdef"; name != want {
		t.Errorf("name %q, want %q", name, want)
	}
	if tc, sc := g.counts(); tc != 1 || sc != 1 {
		t.Errorf("%d token requests and %d sends, want 1 and 1", tc, sc)
	}
}

func TestAccessTokenIsCachedUntilShortlyBeforeExpiry(t *testing.T) {
	s, g, c := setup(t)
	send := func() {
		t.Helper()
		if err := s.SendPush(context.Background(), testPush()); err != nil {
			t.Fatal(err)
		}
	}
	send()
	send()
	if tc, sc := g.counts(); tc != 1 || sc != 2 {
		t.Fatalf("%d token requests and %d sends, want 1 and 2", tc, sc)
	}
	// expires_in is 3599 s; the token is replaced a minute before that.
	c.Advance(3599*time.Second - time.Minute - time.Second)
	send()
	if tc, _ := g.counts(); tc != 1 {
		t.Fatalf("%d token requests before expiry, want 1", tc)
	}
	c.Advance(time.Second)
	send() // the fake checks the new assertion's iat against the clock
	if tc, _ := g.counts(); tc != 2 {
		t.Fatalf("%d token requests at expiry-60s, want 2", tc)
	}
	send()
	if tc, _ := g.counts(); tc != 2 {
		t.Fatalf("%d token requests after the refresh, want 2", tc)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sendTokens[3] == g.sendTokens[2] || g.sendTokens[4] != g.sendTokens[3] {
		t.Errorf("bearer tokens %v", g.sendTokens)
	}
}

func TestShortLivedTokenIsNotKept(t *testing.T) {
	s, g, _ := setup(t)
	g.expiresIn = 30
	for range 2 {
		if err := s.SendPush(context.Background(), testPush()); err != nil {
			t.Fatal(err)
		}
	}
	if tc, _ := g.counts(); tc != 2 {
		t.Errorf("%d token requests, want 2", tc)
	}
}

func TestConcurrentSendsFetchOneToken(t *testing.T) {
	s, g, _ := setup(t)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if err := s.SendPush(context.Background(), testPush()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if tc, sc := g.counts(); tc != 1 || sc != 16 {
		t.Errorf("%d token requests and %d sends, want 1 and 16", tc, sc)
	}
}

func TestUnauthorizedRefreshesTokenOnce(t *testing.T) {
	s, g, _ := setup(t)
	g.revokeAfterUse = true
	if err := s.SendPush(context.Background(), testPush()); err != nil {
		t.Fatal(err)
	}
	// The cached token is now revoked: 401, a new token, a retry.
	if err := s.SendPush(context.Background(), testPush()); err != nil {
		t.Fatal(err)
	}
	if tc, sc := g.counts(); tc != 2 || sc != 3 {
		t.Errorf("%d token requests and %d sends, want 2 and 3", tc, sc)
	}
}

func TestUnauthorizedTwiceIsAuthError(t *testing.T) {
	s, g, _ := setup(t)
	g.sendAnswers = []answer{
		{401, `{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`, nil},
		{401, `{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`, nil},
	}
	err := s.SendPush(context.Background(), testPush())
	if !errors.Is(err, push.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if tc, sc := g.counts(); tc != 2 || sc != 2 {
		t.Errorf("%d token requests and %d sends, want 2 and 2", tc, sc)
	}
	if strings.Contains(err.Error(), "ya29") || strings.Contains(err.Error(), regToken) {
		t.Errorf("error %q holds a token", err)
	}
}

func TestThirdPartyAuthErrorIsNotRetried(t *testing.T) {
	s, g, _ := setup(t)
	g.sendAnswers = []answer{{401, `{"error":{"code":401,"message":"Auth error from APNS or Web Push Service","status":"UNAUTHENTICATED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"THIRD_PARTY_AUTH_ERROR"}]}}`, nil}}
	err := s.SendPush(context.Background(), testPush())
	if !errors.Is(err, push.ErrAuth) || !strings.Contains(err.Error(), "THIRD_PARTY_AUTH_ERROR") {
		t.Fatalf("err = %v", err)
	}
	if tc, sc := g.counts(); tc != 1 || sc != 1 {
		t.Errorf("%d token requests and %d sends, want 1 and 1", tc, sc)
	}
}

func TestErrorMapping(t *testing.T) {
	const fcmErr = `{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":%q}`
	status := func(code int, st, msg string, details ...string) string {
		return fmt.Sprintf(`{"error":{"code":%d,"message":%q,"status":%q,"details":[%s]}}`, code, msg, st, strings.Join(details, ","))
	}
	cases := []struct {
		name  string
		a     answer
		want  error
		code  string
		fcm   string
		retry time.Duration
	}{
		{"unregistered", answer{404, status(404, "NOT_FOUND", "Requested entity was not found.", fmt.Sprintf(fcmErr, "UNREGISTERED")), nil},
			fcm.ErrRouteGone, "NOT_FOUND", "UNREGISTERED", 0},
		{"invalid token", answer{400, status(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", fmt.Sprintf(fcmErr, "INVALID_ARGUMENT")), nil},
			fcm.ErrRouteGone, "INVALID_ARGUMENT", "INVALID_ARGUMENT", 0},
		{"token field violation", answer{400, status(400, "INVALID_ARGUMENT", "Request contains an invalid argument.", fmt.Sprintf(fcmErr, "INVALID_ARGUMENT"),
			`{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}`), nil},
			fcm.ErrRouteGone, "INVALID_ARGUMENT", "INVALID_ARGUMENT", 0},
		{"other invalid argument", answer{400, status(400, "INVALID_ARGUMENT", "Request contains an invalid argument.", fmt.Sprintf(fcmErr, "INVALID_ARGUMENT"),
			`{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.android.ttl","description":"Invalid value"}]}`), nil},
			push.ErrRejected, "INVALID_ARGUMENT", "INVALID_ARGUMENT", 0},
		{"not found without detail", answer{404, status(404, "NOT_FOUND", "Requested entity was not found."), nil},
			push.ErrRejected, "NOT_FOUND", "", 0},
		{"sender id mismatch", answer{403, status(403, "PERMISSION_DENIED", "SenderId mismatch", fmt.Sprintf(fcmErr, "SENDER_ID_MISMATCH")), nil},
			push.ErrAuth, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", 0},
		{"quota", answer{429, status(429, "RESOURCE_EXHAUSTED", "Quota exceeded", fmt.Sprintf(fcmErr, "QUOTA_EXCEEDED")), map[string]string{"Retry-After": "30"}},
			push.ErrThrottled, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", 30 * time.Second},
		{"unavailable", answer{503, status(503, "UNAVAILABLE", "The service is currently unavailable.", fmt.Sprintf(fcmErr, "UNAVAILABLE")), map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}},
			push.ErrUnavailable, "UNAVAILABLE", "UNAVAILABLE", 0},
		{"internal", answer{500, status(500, "INTERNAL", "Internal error encountered.", fmt.Sprintf(fcmErr, "INTERNAL")), nil},
			push.ErrUnavailable, "INTERNAL", "INTERNAL", 0},
		{"html 502", answer{502, `<html><title>502 Bad Gateway</title></html>`, nil}, push.ErrUnavailable, "", "", 0},
		{"forged code", answer{400, `{"error":{"status":"INVALID_ARGUMENT\nfake log line","message":"registration token"}}`, nil},
			push.ErrRejected, "", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, g, _ := setup(t)
			g.sendAnswers = []answer{tc.a}
			err := s.SendPush(context.Background(), testPush())
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, other := range []error{push.ErrRouteGone, push.ErrAuth, push.ErrThrottled, push.ErrUnavailable, push.ErrRejected} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("err = %v is also %v", err, other)
				}
			}
			var fe *fcm.Error
			if !errors.As(err, &fe) || fe.Status != tc.a.status || fe.Code != tc.code || fe.FCMCode != tc.fcm || fe.RetryAfter != tc.retry {
				t.Fatalf("err = %#v", err)
			}
			msg := err.Error()
			if strings.Contains(msg, regToken) || strings.Contains(msg, "ya29") || strings.ContainsAny(msg, "\n") {
				t.Errorf("error %q", msg)
			}
			if tc, sc := g.counts(); tc != 1 || sc != 1 {
				t.Errorf("%d token requests and %d sends, want 1 and 1 (no retry)", tc, sc)
			}
		})
	}
}

func TestTokenEndpointRefusals(t *testing.T) {
	cases := []struct {
		name string
		a    answer
		want error
		says string
	}{
		{"invalid grant", answer{400, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`, nil}, push.ErrAuth, "invalid_grant (Invalid JWT Signature.)"},
		{"unauthorized client", answer{401, `{"error":"unauthorized_client","error_description":"Client is unauthorized to retrieve access tokens using this method."}`, nil}, push.ErrAuth, "unauthorized_client"},
		{"unavailable", answer{503, `Service Unavailable`, nil}, push.ErrUnavailable, "503"},
		{"throttled", answer{429, `{"error":"rate_limit_exceeded"}`, nil}, push.ErrThrottled, "429"},
		{"not json", answer{200, `<html>`, nil}, push.ErrRejected, "not a JSON token response"},
		{"not bearer", answer{200, `{"access_token":"abc","expires_in":3599,"token_type":"mac"}`, nil}, push.ErrRejected, "not Bearer"},
		{"no expiry", answer{200, `{"access_token":"abc","token_type":"Bearer"}`, nil}, push.ErrRejected, "expires_in"},
		{"header injection", answer{200, `{"access_token":"abc\r\nX-Evil: 1","expires_in":3599,"token_type":"Bearer"}`, nil}, push.ErrRejected, "access_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, g, _ := setup(t)
			g.tokenAnswers = []answer{tc.a}
			err := s.SendPush(context.Background(), testPush())
			var te *fcm.TokenError
			if !errors.Is(err, tc.want) || !errors.As(err, &te) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v, want %v saying %q", err, tc.want, tc.says)
			}
			if strings.Contains(err.Error(), "eyJ") {
				t.Errorf("error %q holds the assertion", err)
			}
			if _, sc := g.counts(); sc != 0 {
				t.Errorf("%d sends without a token", sc)
			}
			// The next send tries again.
			if err := s.SendPush(context.Background(), testPush()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTokenURLComesFromTheServiceAccount(t *testing.T) {
	c := newClock()
	g := newFakeGoogle(t, c)
	s, err := fcm.New(fcm.Config{
		Endpoint:           g.srv.URL + "/",
		ServiceAccountJSON: serviceAccountJSON(t, g.tokenURL()),
		HTTPClient:         g.srv.Client(),
		Clock:              c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendPush(context.Background(), testPush()); err != nil {
		t.Fatal(err)
	}
	if tc, sc := g.counts(); tc != 1 || sc != 1 {
		t.Errorf("%d token requests and %d sends", tc, sc)
	}
}

func TestBadRouteOrPushSendsNothing(t *testing.T) {
	s, g, _ := setup(t)
	for _, r := range []string{"apns:" + regToken, regToken, "fcm:", "fcm:a b", "fcm:a/b", "fcm:" + strings.Repeat("a", 4097), "fcm:\xff"} {
		p := testPush()
		p.Route = r
		if err := s.SendPush(context.Background(), p); !errors.Is(err, push.ErrBadRoute) {
			t.Errorf("%.20q: err = %v, want ErrBadRoute", r, err)
		}
	}
	pushes := map[string]func(*flows.Push){
		"no signin id":   func(p *flows.Push) { p.SignInID = "" },
		"long signin id": func(p *flows.Push) { p.SignInID = strings.Repeat("a", 65) },
		"odd signin id":  func(p *flows.Push) { p.SignInID = "a/b" },
		"no text":        func(p *flows.Push) { p.Title, p.Body = "", "" },
		"not utf-8":      func(p *flows.Push) { p.Title = "\xc3" },
		"too big":        func(p *flows.Push) { p.Body = strings.Repeat("x", 4096) },
	}
	for name, change := range pushes {
		p := testPush()
		change(&p)
		if err := s.SendPush(context.Background(), p); !errors.Is(err, push.ErrBadPush) {
			t.Errorf("%s: err = %v, want ErrBadPush", name, err)
		}
	}
	if tc, sc := g.counts(); tc != 0 || sc != 0 {
		t.Errorf("%d token requests and %d sends", tc, sc)
	}
}

func TestCancelledWhileWaitingForToken(t *testing.T) {
	c := newClock()
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	defer close(release)
	s, err := fcm.New(fcm.Config{Endpoint: srv.URL, TokenURL: srv.URL + "/token", ServiceAccountJSON: serviceAccountJSON(t, ""),
		HTTPClient: srv.Client(), Clock: c.Now, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = s.SendPush(context.Background(), testPush())
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, push.ErrUnavailable) {
		t.Errorf("timeout: err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.SendPush(ctx, testPush()); !errors.Is(err, context.Canceled) || errors.Is(err, push.ErrUnavailable) {
		t.Errorf("cancelled: err = %v", err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	good := serviceAccountJSON(t, "")
	var sa map[string]string
	if err := json.Unmarshal(good, &sa); err != nil {
		t.Fatal(err)
	}
	with := func(k, v string) []byte {
		m := map[string]string{}
		for kk, vv := range sa {
			m[kk] = vv
		}
		if v == "\x00delete" {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallDER, _ := x509.MarshalPKCS8PrivateKey(small)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testKey(t))})

	base := fcm.Config{ServiceAccountJSON: good}
	ok := map[string]func(*fcm.Config){
		"defaults":      func(*fcm.Config) {},
		"pkcs1 key":     func(c *fcm.Config) { c.ServiceAccountJSON = with("private_key", string(pkcs1)) },
		"loopback http": func(c *fcm.Config) { c.Endpoint, c.TokenURL = "http://127.0.0.1:8080", "http://localhost:8081/token" },
		"domain scoped": func(c *fcm.Config) { c.ServiceAccountJSON = with("project_id", "example.com:keystep") },
	}
	for name, change := range ok {
		cfg := base
		change(&cfg)
		if _, err := fcm.New(cfg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := map[string]func(*fcm.Config){
		"empty":          func(c *fcm.Config) { c.ServiceAccountJSON = nil },
		"not json":       func(c *fcm.Config) { c.ServiceAccountJSON = []byte("-----BEGIN PRIVATE KEY-----") },
		"wrong type":     func(c *fcm.Config) { c.ServiceAccountJSON = with("type", "authorized_user") },
		"no project":     func(c *fcm.Config) { c.ServiceAccountJSON = with("project_id", "\x00delete") },
		"project with /": func(c *fcm.Config) { c.ServiceAccountJSON = with("project_id", "a/../b") },
		"no email":       func(c *fcm.Config) { c.ServiceAccountJSON = with("client_email", "") },
		"no key id":      func(c *fcm.Config) { c.ServiceAccountJSON = with("private_key_id", "") },
		"no key":         func(c *fcm.Config) { c.ServiceAccountJSON = with("private_key", "") },
		"short key": func(c *fcm.Config) {
			c.ServiceAccountJSON = with("private_key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: smallDER})))
		},
		"garbage key": func(c *fcm.Config) {
			c.ServiceAccountJSON = with("private_key", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
		},
		"http endpoint":     func(c *fcm.Config) { c.Endpoint = "http://fcm.googleapis.com" },
		"endpoint path":     func(c *fcm.Config) { c.Endpoint = "https://fcm.googleapis.com/v1" },
		"http token url":    func(c *fcm.Config) { c.TokenURL = "http://oauth2.googleapis.com/token" },
		"token url query":   func(c *fcm.Config) { c.TokenURL = "https://oauth2.googleapis.com/token?x=1" },
		"bad token_uri":     func(c *fcm.Config) { c.ServiceAccountJSON = with("token_uri", "ftp://example.com/token") },
		"relative endpoint": func(c *fcm.Config) { c.Endpoint = "/v1" },
		"negative timeout":  func(c *fcm.Config) { c.Timeout = -1 },
	}
	for name, change := range bad {
		cfg := base
		change(&cfg)
		_, err := fcm.New(cfg)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "MII") || !strings.HasPrefix(err.Error(), "fcm: config: ") {
			t.Errorf("%s: error %q", name, err)
		}
	}
}

func TestMessage(t *testing.T) {
	b, err := fcm.Message("tok", flows.Push{SignInID: "id1", Title: "T", Body: "<B>"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"message":{"token":"tok","notification":{"title":"T","body":"<B>"},"data":{"signin_id":"id1"},` +
		`"android":{"priority":"HIGH","ttl":"120s","collapse_key":"id1"},"apns":{"headers":{"apns-priority":"10"}}}}`
	if string(b) != want {
		t.Errorf("message\n%s\nwant\n%s", b, want)
	}
}
