package apns_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/notify/apns"
	"github.com/keystep/keystep/flows/notify/push"
)

const (
	keyID  = "ABC123DEFG"
	teamID = "DEF123GHIJ"
	topic  = "com.example.keystep"
)

// clock is the shared fake clock; the test moves it by hand.
type clock = clocktest.Clock

func newClock() *clock { return clocktest.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) }

// p8 makes a P-256 key and its .p8 file (PEM PKCS#8), as Apple hands it out.
func p8(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func deviceToken(t testing.TB, seed byte) string {
	t.Helper()
	b := bytes.Repeat([]byte{seed}, 32)
	return hex.EncodeToString(b)
}

// answer is what the fake APNs says to one request.
type answer struct {
	status int
	body   string
}

// fakeAPNs is a local HTTP/2 APNs that checks every request as Apple
// documents it and answers from a script.
type fakeAPNs struct {
	t     *testing.T
	srv   *httptest.Server
	pub   *ecdsa.PublicKey
	clock *clock

	mu      sync.Mutex
	jwts    []string // every JWT seen, in order
	answers map[string][]answer
	// answerFor, if set, picks the answer from the JWT (for the
	// provider-token tests).
	answerFor func(jwt string) answer
	requests  int
}

func newFakeAPNs(t *testing.T, pub *ecdsa.PublicKey, c *clock) *fakeAPNs {
	f := &fakeAPNs{t: t, pub: pub, clock: c, answers: map[string][]answer{}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.EnableHTTP2 = true
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// script queues answers for a device token; with none queued it answers 200.
func (f *fakeAPNs) script(token string, as ...answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[token] = append(f.answers[token], as...)
}

func (f *fakeAPNs) seen() (requests int, jwts []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, append([]string(nil), f.jwts...)
}

// distinct counts the different JWTs seen.
func (f *fakeAPNs) distinct() int {
	_, jwts := f.seen()
	m := map[string]bool{}
	for _, j := range jwts {
		m[j] = true
	}
	return len(m)
}

func (f *fakeAPNs) serve(w http.ResponseWriter, r *http.Request) {
	t := f.t
	fail := func(format string, args ...any) {
		t.Errorf("fake APNs: "+format, args...)
		w.Header().Set("apns-id", "00000000-0000-0000-0000-000000000000")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"reason":"TestRequestWrong"}`)
	}
	if r.ProtoMajor != 2 {
		fail("request is %s, APNs takes only HTTP/2", r.Proto)
		return
	}
	if r.Method != http.MethodPost {
		fail("method %s, want POST", r.Method)
		return
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if !ok || r.URL.RawQuery != "" {
		fail("path %q, want /3/device/<token>", r.URL.RequestURI())
		return
	}
	// Every header, and no other than the transport's own.
	want := map[string]string{
		"Apns-Topic":       topic,
		"Apns-Push-Type":   "alert",
		"Apns-Priority":    "10",
		"Apns-Expiration":  strconv.FormatInt(f.clock.Now().Add(120*time.Second).Unix(), 10),
		"Apns-Collapse-Id": "",
	}
	for k, v := range want {
		got := r.Header.Values(k)
		if len(got) != 1 {
			fail("header %s appears %d times", k, len(got))
			return
		}
		if v != "" && got[0] != v {
			fail("header %s = %q, want %q", k, got[0], v)
			return
		}
	}
	for k := range r.Header {
		switch k {
		case "Authorization", "Accept-Encoding", "User-Agent", "Content-Length":
		default:
			if _, ok := want[k]; !ok {
				fail("unexpected header %s", k)
				return
			}
		}
	}
	jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "bearer ")
	if !ok {
		fail("authorization %q, want bearer <JWT>", r.Header.Get("Authorization"))
		return
	}
	if err := f.checkJWT(jwt); err != nil {
		fail("provider token: %v", err)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		fail("read body: %v", err)
		return
	}
	if len(body) > 4096 {
		fail("payload %d bytes", len(body))
		return
	}
	var p struct {
		APS struct {
			Alert struct {
				Title string `json:"title"`
				Body  string `json:"body"`
			} `json:"alert"`
			Sound string `json:"sound"`
		} `json:"aps"`
		SignInID string `json:"signin_id"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		fail("payload %s: %v", body, err)
		return
	}
	if p.APS.Sound != "default" || p.SignInID == "" || p.SignInID != r.Header.Get("Apns-Collapse-Id") {
		fail("payload %s: want sound default and signin_id = apns-collapse-id %q", body, r.Header.Get("Apns-Collapse-Id"))
		return
	}
	// Exactly these keys in this order, nothing else, HTML not escaped.
	var canon bytes.Buffer
	enc := json.NewEncoder(&canon)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p)
	if string(body)+"\n" != canon.String() {
		fail("payload\n%s\nwant\n%s", body, canon.String())
		return
	}
	if p.APS.Alert.Title != testPush("").Title || p.APS.Alert.Body != testPush("").Body {
		fail("alert %+v", p.APS.Alert)
		return
	}

	f.mu.Lock()
	f.requests++
	f.jwts = append(f.jwts, jwt)
	a := answer{status: 200}
	if q := f.answers[token]; len(q) > 0 {
		a, f.answers[token] = q[0], q[1:]
	} else if f.answerFor != nil {
		a = f.answerFor(jwt)
	}
	f.mu.Unlock()
	w.Header().Set("apns-id", "6F1C4F3B-2D6E-4C2B-9A51-0E6B3A6F2C11")
	if a.body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

// checkJWT checks the provider token as APNs does: ES256 header with the
// key id, the team as issuer, iat within the last hour, and the signature
// by the team's key.
func (f *fakeAPNs) checkJWT(jwt string) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%d parts", len(parts))
	}
	dec := base64.RawURLEncoding
	h, err := dec.DecodeString(parts[0])
	if err != nil {
		return fmt.Errorf("header: %v", err)
	}
	if string(h) != `{"alg":"ES256","kid":"`+keyID+`"}` {
		return fmt.Errorf("header %s", h)
	}
	c, err := dec.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("claims: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(c, &claims); err != nil {
		return fmt.Errorf("claims: %v", err)
	}
	if len(claims) != 2 || claims["iss"] != teamID {
		return fmt.Errorf("claims %s", c)
	}
	iat, ok := claims["iat"].(float64)
	if !ok || iat != float64(int64(iat)) {
		return fmt.Errorf("iat in %s", c)
	}
	if age := f.clock.Now().Sub(time.Unix(int64(iat), 0)); age < 0 || age >= time.Hour {
		return fmt.Errorf("iat is %v old", age)
	}
	sig, err := dec.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return fmt.Errorf("signature is not 64 bytes r||s")
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.VerifyASN1(f.pub, digest[:], der) {
		return errors.New("signature does not verify with the team's key")
	}
	return nil
}

// setup makes a key, a fake APNs and a Sender pointed at it.
func setup(t *testing.T) (*apns.Sender, *fakeAPNs, *clock) {
	t.Helper()
	key, pemKey := p8(t)
	c := newClock()
	f := newFakeAPNs(t, &key.PublicKey, c)
	s, err := apns.New(apns.Config{
		Endpoint:   f.srv.URL,
		KeyPEM:     pemKey,
		KeyID:      keyID,
		TeamID:     teamID,
		Topic:      topic,
		HTTPClient: f.srv.Client(),
		Clock:      c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, f, c
}

func testPush(token string) flows.Push {
	return flows.Push{
		Route:    "apns:" + token,
		SignInID: "abcdefghijklmnopqrstuvwxyz",
		Title:    "Sign-in request",
		Body:     `Payroll wants you to sign in <"&">`,
	}
}

func TestSendIsWhatAppleDocuments(t *testing.T) {
	s, f, _ := setup(t)
	id, err := s.Send(context.Background(), testPush(deviceToken(t, 0xab)))
	if err != nil {
		t.Fatal(err)
	}
	if id != "6F1C4F3B-2D6E-4C2B-9A51-0E6B3A6F2C11" {
		t.Errorf("apns-id %q", id)
	}
	if n, _ := f.seen(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	// Upper-case hex and a longer token are routes too.
	long := strings.ToUpper(deviceToken(t, 0xcd)) + "0A0B"
	if err := s.SendPush(context.Background(), testPush(long)); err != nil {
		t.Fatal(err)
	}
}

func TestProviderTokenIsCachedFor50Minutes(t *testing.T) {
	s, f, c := setup(t)
	ctx := context.Background()
	send := func() {
		t.Helper()
		if err := s.SendPush(ctx, testPush(deviceToken(t, 2))); err != nil {
			t.Fatal(err)
		}
	}
	send()
	send()
	if n := f.distinct(); n != 1 {
		t.Fatalf("two sends made %d JWTs, want 1", n)
	}
	c.Advance(50*time.Minute - time.Second)
	send()
	if n := f.distinct(); n != 1 {
		t.Fatalf("at 49:59 %d JWTs, want 1", n)
	}
	c.Advance(time.Second)
	send()
	if n := f.distinct(); n != 2 {
		t.Fatalf("at 50:00 %d JWTs, want 2", n)
	}
	_, jwts := f.seen()
	if iatOf(t, jwts[3]) != c.Now().Unix() {
		t.Errorf("new JWT's iat is %d, want %d", iatOf(t, jwts[3]), c.Now().Unix())
	}
	send()
	if n := f.distinct(); n != 2 {
		t.Fatalf("after the refresh %d JWTs, want 2", n)
	}
}

func iatOf(t *testing.T, jwt string) int64 {
	t.Helper()
	c, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ Iat int64 }
	if err := json.Unmarshal(c, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Iat
}

func TestConcurrentSendsShareOneToken(t *testing.T) {
	s, f, _ := setup(t)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if err := s.SendPush(context.Background(), testPush(deviceToken(t, byte(i)))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := f.distinct(); n != 1 {
		t.Errorf("16 concurrent sends made %d JWTs, want 1", n)
	}
}

func TestRefusedProviderTokenIsRefreshedOnce(t *testing.T) {
	for _, reason := range []string{"ExpiredProviderToken", "InvalidProviderToken"} {
		t.Run(reason, func(t *testing.T) {
			s, f, _ := setup(t)
			tok := deviceToken(t, 3)
			f.script(tok, answer{403, `{"reason":"` + reason + `"}`})
			if err := s.SendPush(context.Background(), testPush(tok)); err != nil {
				t.Fatal(err)
			}
			n, jwts := f.seen()
			if n != 2 || jwts[0] == jwts[1] {
				t.Fatalf("%d requests, JWTs differ: %v; want a retry with a fresh JWT", n, n == 2 && jwts[0] != jwts[1])
			}
			// The fresh token is kept.
			if err := s.SendPush(context.Background(), testPush(tok)); err != nil {
				t.Fatal(err)
			}
			if _, jwts := f.seen(); jwts[2] != jwts[1] {
				t.Error("the fresh JWT was not kept")
			}
		})
	}
}

func TestProviderTokenRefusedTwiceIsAuthError(t *testing.T) {
	s, f, _ := setup(t)
	f.answerFor = func(string) answer { return answer{403, `{"reason":"InvalidProviderToken"}`} }
	tok := deviceToken(t, 4)
	err := s.SendPush(context.Background(), testPush(tok))
	if !errors.Is(err, push.ErrAuth) {
		t.Fatalf("err = %v, want push.ErrAuth", err)
	}
	var ae *apns.Error
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Reason != "InvalidProviderToken" {
		t.Fatalf("err = %#v", err)
	}
	if n, _ := f.seen(); n != 2 {
		t.Errorf("%d requests, want 2 (one retry)", n)
	}
	_, jwts := f.seen()
	for _, j := range jwts {
		if strings.Contains(err.Error(), j) || strings.Contains(err.Error(), tok) {
			t.Errorf("error %q holds a token", err)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		status   int
		body     string
		want     error
		reason   string
		mentions string
	}{
		{400, `{"reason":"BadDeviceToken"}`, apns.ErrRouteGone, "BadDeviceToken", "no longer valid"},
		{410, `{"reason":"Unregistered","timestamp":1893553445000}`, apns.ErrRouteGone, "Unregistered", "410"},
		{410, `{"reason":"ExpiredToken"}`, apns.ErrRouteGone, "ExpiredToken", "410"},
		{400, `{"reason":"DeviceTokenNotForTopic"}`, push.ErrRejected, "DeviceTokenNotForTopic", "DeviceTokenNotForTopic"},
		{400, `{"reason":"BadCollapseId"}`, push.ErrRejected, "BadCollapseId", "400"},
		{403, `{"reason":"MissingProviderToken"}`, push.ErrAuth, "MissingProviderToken", "refused"},
		{413, `{"reason":"PayloadTooLarge"}`, push.ErrRejected, "PayloadTooLarge", "413"},
		{429, `{"reason":"TooManyRequests"}`, push.ErrThrottled, "TooManyRequests", "too many requests"},
		{429, `{"reason":"TooManyProviderTokenUpdates"}`, push.ErrThrottled, "TooManyProviderTokenUpdates", "try again later"},
		{500, `{"reason":"InternalServerError"}`, push.ErrUnavailable, "InternalServerError", "unavailable"},
		{503, `{"reason":"ServiceUnavailable"}`, push.ErrUnavailable, "ServiceUnavailable", "unavailable"},
		{503, `{"reason":"Shutdown"}`, push.ErrUnavailable, "Shutdown", "503"},
		{502, `<html>bad gateway</html>`, push.ErrUnavailable, "", "502"},
		{400, `{"reason":"evil\nlog line"}`, push.ErrRejected, "", "400"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.body), func(t *testing.T) {
			s, f, _ := setup(t)
			tok := deviceToken(t, 5)
			f.script(tok, answer{tc.status, tc.body})
			err := s.SendPush(context.Background(), testPush(tok))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, other := range []error{push.ErrRouteGone, push.ErrAuth, push.ErrThrottled, push.ErrUnavailable, push.ErrRejected} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("err = %v is also %v", err, other)
				}
			}
			var ae *apns.Error
			if !errors.As(err, &ae) || ae.Status != tc.status || ae.Reason != tc.reason {
				t.Fatalf("err = %#v", err)
			}
			if ae.APNsID != "6F1C4F3B-2D6E-4C2B-9A51-0E6B3A6F2C11" {
				t.Errorf("apns-id %q not kept", ae.APNsID)
			}
			if !strings.Contains(err.Error(), tc.mentions) || strings.Contains(err.Error(), tok) || strings.ContainsAny(err.Error(), "\n") {
				t.Errorf("error %q", err)
			}
			if n, _ := f.seen(); n != 1 {
				t.Errorf("%d requests, want 1 (no retry)", n)
			}
			if tc.status == 410 && tc.reason == "Unregistered" && !ae.Timestamp.Equal(time.UnixMilli(1893553445000)) {
				t.Errorf("timestamp %v", ae.Timestamp)
			}
		})
	}
}

func TestBadRouteOrPushSendsNothing(t *testing.T) {
	s, f, _ := setup(t)
	good := deviceToken(t, 6)
	routes := map[string]string{
		"fcm prefix": "fcm:" + good,
		"no prefix":  good,
		"short":      "apns:" + good[:62],
		"odd":        "apns:" + good + "a",
		"long":       "apns:" + strings.Repeat("ab", 101),
		"not hex":    "apns:" + good[:63] + "g",
		"slash":      "apns:" + good[:62] + "/x",
		"empty":      "",
	}
	for name, r := range routes {
		p := testPush(good)
		p.Route = r
		if err := s.SendPush(context.Background(), p); !errors.Is(err, push.ErrBadRoute) {
			t.Errorf("%s: err = %v, want ErrBadRoute", name, err)
		} else if strings.Contains(err.Error(), good[:40]) {
			t.Errorf("%s: error %q holds the token", name, err)
		}
	}
	pushes := map[string]func(*flows.Push){
		"no signin id":    func(p *flows.Push) { p.SignInID = "" },
		"long signin id":  func(p *flows.Push) { p.SignInID = strings.Repeat("a", 65) },
		"odd signin id":   func(p *flows.Push) { p.SignInID = "a b" },
		"no text":         func(p *flows.Push) { p.Title, p.Body = "", "" },
		"not utf-8":       func(p *flows.Push) { p.Body = "\xff" },
		"payload too big": func(p *flows.Push) { p.Body = strings.Repeat("x", 4000) },
	}
	for name, change := range pushes {
		p := testPush(good)
		change(&p)
		if err := s.SendPush(context.Background(), p); !errors.Is(err, push.ErrBadPush) {
			t.Errorf("%s: err = %v, want ErrBadPush", name, err)
		}
	}
	if n, _ := f.seen(); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	_, pemKey := p8(t)
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
	s, err := apns.New(apns.Config{Endpoint: srv.URL, KeyPEM: pemKey, KeyID: keyID, TeamID: teamID, Topic: topic,
		HTTPClient: srv.Client(), Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = s.SendPush(context.Background(), testPush(deviceToken(t, 7)))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, push.ErrUnavailable) {
		t.Errorf("timeout: err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = s.SendPush(ctx, testPush(deviceToken(t, 7)))
	if !errors.Is(err, context.Canceled) || errors.Is(err, push.ErrUnavailable) {
		t.Errorf("cancelled: err = %v", err)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	_, pemKey := p8(t)
	var (
		hits int
		mu   sync.Mutex
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	s, err := apns.New(apns.Config{Endpoint: srv.URL, KeyPEM: pemKey, KeyID: keyID, TeamID: teamID, Topic: topic, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendPush(context.Background(), testPush(deviceToken(t, 8))); !errors.Is(err, push.ErrRejected) {
		t.Errorf("err = %v, want ErrRejected", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 1 {
		t.Errorf("%d requests, want 1", hits)
	}
}

func TestNewChecksConfig(t *testing.T) {
	_, good := p8(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(p256)
	base := apns.Config{KeyPEM: good, KeyID: keyID, TeamID: teamID, Topic: topic}
	if _, err := apns.New(base); err != nil {
		t.Fatalf("good config: %v", err)
	}
	sandbox := base
	sandbox.Endpoint = apns.SandboxEndpoint + "/"
	if _, err := apns.New(sandbox); err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	cases := map[string]func(*apns.Config){
		"http endpoint":  func(c *apns.Config) { c.Endpoint = "http://api.push.apple.com" },
		"endpoint path":  func(c *apns.Config) { c.Endpoint = "https://api.push.apple.com/3/device" },
		"endpoint query": func(c *apns.Config) { c.Endpoint = "https://api.push.apple.com?x=1" },
		"endpoint user":  func(c *apns.Config) { c.Endpoint = "https://u:p@api.push.apple.com" },
		"no key":         func(c *apns.Config) { c.KeyPEM = nil },
		"not pem":        func(c *apns.Config) { c.KeyPEM = []byte("MIGTAgEAMBMGByqGSM49") },
		"rsa key":        func(c *apns.Config) { c.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER}) },
		"p384 key":       func(c *apns.Config) { c.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p384DER}) },
		"sec1 block":     func(c *apns.Config) { c.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}) },
		"garbage pkcs8": func(c *apns.Config) {
			c.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("nope")})
		},
		"short key id":  func(c *apns.Config) { c.KeyID = "ABC" },
		"no team":       func(c *apns.Config) { c.TeamID = "" },
		"lower team":    func(c *apns.Config) { c.TeamID = "def123ghij" },
		"no topic":      func(c *apns.Config) { c.Topic = "" },
		"topic space":   func(c *apns.Config) { c.Topic = "com.example app" },
		"negative time": func(c *apns.Config) { c.Timeout = -time.Second },
	}
	for name, change := range cases {
		cfg := base
		change(&cfg)
		_, err := apns.New(cfg)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "MIG") || !strings.HasPrefix(err.Error(), "apns: config: ") {
			t.Errorf("%s: error %q", name, err)
		}
	}
}

func TestPayload(t *testing.T) {
	b, err := apns.Payload(flows.Push{SignInID: "id1", Title: "T", Body: "B"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"aps":{"alert":{"title":"T","body":"B"},"sound":"default"},"signin_id":"id1"}`
	if string(b) != want {
		t.Errorf("payload %s, want %s", b, want)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || !reflect.DeepEqual(m["signin_id"], "id1") {
		t.Errorf("payload does not parse: %v", err)
	}
}
