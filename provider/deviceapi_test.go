package provider

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

func TestEnroll(t *testing.T) {
	e := newEnv(t)
	u := e.addUser("alice")
	link := e.invite("alice")
	if link.Server != testOrigin {
		t.Fatalf("link server %q", link.Server)
	}
	req, _ := e.enrollRequest(link)
	res := decode[api.EnrollResponse](t, e.post(api.PathEnroll, req), http.StatusCreated)
	want := api.AccountView{ID: u.ID, Username: "alice", State: "active"}
	if res.DeviceID == "" || res.Server != testOrigin || res.Account != want {
		t.Fatalf("enroll response %+v", res)
	}

	// The same invitation cannot be used twice, even with a good signature.
	again, _ := e.enrollRequest(link)
	wantProblem(t, e.post(api.PathEnroll, again), http.StatusConflict, api.ProblemAlreadyUsed)

	devs := decode[api.DeviceList](t, e.admin("GET", userPath(api.PathUserDevices, "alice"), nil), http.StatusOK)
	if len(devs.Devices) != 1 || devs.Devices[0].ID != res.DeviceID || devs.Devices[0].Name != "test phone" {
		t.Fatalf("devices %+v", devs)
	}
}

func TestEnrollRefused(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	link := e.invite("alice")
	before := e.auditLen()

	// A signature by another key than the one enrolled.
	req, _ := e.enrollRequest(link)
	other, _ := e.enrollRequest(link)
	req.Signature = other.Signature
	wantProblem(t, e.post(api.PathEnroll, req), http.StatusUnauthorized, api.ProblemBadSignature)

	// A signature over another token.
	forged := link
	forged.Token = flows.NewSecret(32)
	fr, _ := e.enrollRequest(forged)
	fr.Token = link.Token
	wantProblem(t, e.post(api.PathEnroll, fr), http.StatusUnauthorized, api.ProblemBadSignature)

	// An unknown token.
	unknown, _ := e.enrollRequest(forged)
	wantProblem(t, e.post(api.PathEnroll, unknown), http.StatusNotFound, api.ProblemNotFound)

	// Malformed input.
	bad := req
	bad.PublicKey = "not base64!"
	wantProblem(t, e.post(api.PathEnroll, bad), http.StatusBadRequest, api.ProblemInvalid)
	bad = req
	bad.Token = "short"
	wantProblem(t, e.post(api.PathEnroll, bad), http.StatusBadRequest, api.ProblemInvalid)

	if n := e.auditLen(); n != before {
		t.Fatalf("refused enrollments changed the audit log: %d events, want %d", n, before)
	}
	// The invitation still works.
	good, _ := e.enrollRequest(link)
	decode[api.EnrollResponse](t, e.post(api.PathEnroll, good), http.StatusCreated)
}

func TestDeviceAuth(t *testing.T) {
	e := newEnv(t)
	u := e.addUser("alice")
	p := e.enroll("alice")

	view := decode[api.AccountView](t, e.device(p, "GET", api.PathDeviceAccount, nil), http.StatusOK)
	if view.ID != u.ID || view.State != "active" || view.Username != "alice" {
		t.Fatalf("account view %+v", view)
	}

	// Replayed: the very same request twice.
	req := e.signed(p, "GET", api.PathDeviceAccount, nil, e.clock.Now(), flows.NewSecret(16))
	again := req.Clone(e.ctx)
	decode[api.AccountView](t, e.send(req), http.StatusOK)
	wantProblem(t, e.send(again), http.StatusUnauthorized, api.ProblemReplay)

	// Stale: signed ten minutes ago (the allowed skew is five).
	stale := e.signed(p, "GET", api.PathDeviceAccount, nil, e.clock.Now().Add(-10*time.Minute), flows.NewSecret(16))
	wantProblem(t, e.send(stale), http.StatusGone, api.ProblemExpired)

	// Signed by another key.
	stranger, _ := newKey(t)
	badSig := e.send(e.signed(phone{key: stranger, id: p.id}, "GET", api.PathDeviceAccount, nil, e.clock.Now(), flows.NewSecret(16)))
	badBody := problemBody(t, badSig, http.StatusUnauthorized, api.ProblemBadSignature)
	if badSig.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}

	// An unknown device gets exactly the same answer.
	unknown := e.send(e.signed(phone{key: stranger, id: flows.NewID()}, "GET", api.PathDeviceAccount, nil, e.clock.Now(), flows.NewSecret(16)))
	if got := problemBody(t, unknown, http.StatusUnauthorized, api.ProblemBadSignature); !bytes.Equal(got, badBody) {
		t.Fatalf("unknown device answered\n%s\nbad signature answered\n%s", got, badBody)
	}
	// Even an unknown device with a stale time: nothing is said before the signature verifies.
	unknownStale := e.send(e.signed(phone{key: stranger, id: flows.NewID()}, "GET", api.PathDeviceAccount, nil, e.clock.Now().Add(-time.Hour), flows.NewSecret(16)))
	if got := problemBody(t, unknownStale, http.StatusUnauthorized, api.ProblemBadSignature); !bytes.Equal(got, badBody) {
		t.Fatalf("unknown stale device answered %s", got)
	}

	// The signature covers the path with its query and the body.
	moved := e.signed(p, "GET", api.PathDeviceAccount, nil, e.clock.Now(), flows.NewSecret(16))
	moved.URL.RawQuery = "x=1"
	wantProblem(t, e.send(moved), http.StatusUnauthorized, api.ProblemBadSignature)
	body := []byte(`{"payload":"x"}`)
	altered := e.signed(p, "POST", api.PathQRClaim, body, e.clock.Now(), flows.NewSecret(16))
	altered.Body = io.NopCloser(strings.NewReader(`{"payload":"y"}`))
	wantProblem(t, e.send(altered), http.StatusUnauthorized, api.ProblemBadSignature)

	// Missing and malformed headers.
	for _, h := range []string{api.HeaderDevice, api.HeaderTime, api.HeaderNonce, api.HeaderSignature} {
		r := e.signed(p, "GET", api.PathDeviceAccount, nil, e.clock.Now(), flows.NewSecret(16))
		r.Header.Del(h)
		wantProblem(t, e.send(r), http.StatusUnauthorized, api.ProblemUnauthorized)
	}
	r := e.signed(p, "GET", api.PathDeviceAccount, nil, e.clock.Now(), flows.NewSecret(16))
	r.Header.Set(api.HeaderTime, "yesterday")
	wantProblem(t, e.send(r), http.StatusUnauthorized, api.ProblemBadSignature)
	r = e.signed(p, "GET", api.PathDeviceAccount, nil, e.clock.Now(), "short")
	wantProblem(t, e.send(r), http.StatusUnauthorized, api.ProblemBadSignature)
}

// problemBody checks resp is the given problem and returns its body.
func problemBody(t *testing.T, resp *http.Response, status int, typ string) []byte {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	wantProblem(t, resp, status, typ)
	return b
}

func TestDecisions(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")

	t.Run("approve", func(t *testing.T) {
		ch := e.testSignIn("alice")
		res := decode[api.DecisionResponse](t, e.decide(p, ch, flows.DecisionApprove, ch.Number), http.StatusOK)
		if res.ID != ch.ID || res.Status != "approved" {
			t.Fatalf("decision %+v", res)
		}
		s := e.signIn(ch.ID)
		if s.Status != "approved" || s.DecidedBy != "push" || s.DeviceID != p.id || s.Client != TestSignInClient {
			t.Fatalf("sign-in %+v", s)
		}
		// Deciding again is refused.
		nonce := "" // the request is no longer listed; sign with a made-up nonce
		wantProblem(t, e.device(p, "POST", decisionPath(ch.ID), e.decision(p, ch.ID, nonce+"x", flows.DecisionApprove, flows.MethodPush, ch.Number)),
			http.StatusConflict, api.ProblemAlreadyDecided)
	})
	t.Run("deny", func(t *testing.T) {
		ch := e.testSignIn("alice")
		res := decode[api.DecisionResponse](t, e.decide(p, ch, flows.DecisionDeny, ""), http.StatusOK)
		if res.Status != "denied" || res.Reason == "" {
			t.Fatalf("decision %+v", res)
		}
	})
	t.Run("report", func(t *testing.T) {
		ch := e.testSignIn("alice")
		res := decode[api.DecisionResponse](t, e.decide(p, ch, flows.DecisionReport, ""), http.StatusOK)
		if res.Status != "denied" {
			t.Fatalf("decision %+v", res)
		}
		if s := e.signIn(ch.ID); !s.FraudReport {
			t.Fatalf("sign-in %+v has no fraud report", s)
		}
	})
	t.Run("wrong number", func(t *testing.T) {
		ch := e.testSignIn("alice")
		wrong := "10"
		if ch.Number == wrong {
			wrong = "11"
		}
		wantProblem(t, e.decide(p, ch, flows.DecisionApprove, wrong), http.StatusConflict, api.ProblemWrongNumber)
		if s := e.signIn(ch.ID); s.Status != "denied" {
			t.Fatalf("after a wrong number the sign-in is %s", s.Status)
		}
	})
	t.Run("bad decision signature", func(t *testing.T) {
		ch := e.testSignIn("alice")
		reqs := e.pendingFor(p)
		d := e.decision(p, ch.ID, reqs[0].Nonce, flows.DecisionApprove, flows.MethodPush, ch.Number)
		d.Number = "99" // not what was signed
		wantProblem(t, e.device(p, "POST", decisionPath(ch.ID), d), http.StatusUnauthorized, api.ProblemBadSignature)
		d.Decision = "maybe"
		wantProblem(t, e.device(p, "POST", decisionPath(ch.ID), d), http.StatusBadRequest, api.ProblemInvalid)
		if s := e.signIn(ch.ID); s.Status != "pending" {
			t.Fatalf("sign-in %s after refused decisions", s.Status)
		}
	})
	t.Run("unknown sign-in", func(t *testing.T) {
		d := e.decision(p, "nosuchsignin", "nonce", flows.DecisionDeny, flows.MethodPush, "")
		wantProblem(t, e.device(p, "POST", decisionPath("nosuchsignin"), d), http.StatusNotFound, api.ProblemNotFound)
	})
}

func TestPendingRequests(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")
	if got := e.pendingFor(p); len(got) != 0 {
		t.Fatalf("pending %+v", got)
	}
	ch := e.testSignIn("alice")
	e.testSignIn("alice", "qr") // QR-only sign-ins are not pushed
	got := e.pendingFor(p)
	if len(got) != 1 || got[0].ID != ch.ID || got[0].Client != TestSignInClient || got[0].Nonce == "" || !got[0].ExpiresAt.Equal(ch.ExpiresAt) {
		t.Fatalf("pending %+v", got)
	}
	raw, _ := json.Marshal(got[0])
	if strings.Contains(string(raw), `"number"`) {
		t.Fatalf("the device was shown the number: %s", raw)
	}
}

func TestQRClaim(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.testSignIn("alice", "qr")
	if ch.Number != "" || ch.QRPayload == "" {
		t.Fatalf("challenge %+v", ch)
	}
	req := decode[api.SignInRequest](t, e.device(p, "POST", api.PathQRClaim, api.QRClaimRequest{Payload: ch.QRPayload}), http.StatusOK)
	if req.ID != ch.ID || req.Nonce == "" || len(req.Methods) != 1 || req.Methods[0] != "qr" {
		t.Fatalf("claimed %+v", req)
	}
	qr, err := flows.ParseSignInQR(ch.QRPayload)
	if err != nil {
		t.Fatal(err)
	}
	d := e.decision(p, ch.ID, req.Nonce, flows.DecisionApprove, flows.MethodQR, qr.Secret)
	res := decode[api.DecisionResponse](t, e.device(p, "POST", decisionPath(ch.ID), d), http.StatusOK)
	if res.Status != "approved" {
		t.Fatalf("decision %+v", res)
	}
	if s := e.signIn(ch.ID); s.DecidedBy != "qr" {
		t.Fatalf("sign-in %+v", s)
	}

	// A claim with the wrong secret, a foreign server, or no QR at all.
	forged := flows.SignInQR{Server: testOrigin, SignInID: ch.ID, Secret: flows.NewSecret(16)}
	wantProblem(t, e.device(p, "POST", api.PathQRClaim, api.QRClaimRequest{Payload: forged.String()}), http.StatusNotFound, api.ProblemNotFound)
	foreign := flows.SignInQR{Server: "https://elsewhere.test", SignInID: ch.ID, Secret: qr.Secret}
	wantProblem(t, e.device(p, "POST", api.PathQRClaim, api.QRClaimRequest{Payload: foreign.String()}), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.device(p, "POST", api.PathQRClaim, api.QRClaimRequest{Payload: "hello"}), http.StatusBadRequest, api.ProblemInvalid)
	// Claiming a decided sign-in.
	wantProblem(t, e.device(p, "POST", api.PathQRClaim, api.QRClaimRequest{Payload: ch.QRPayload}), http.StatusConflict, api.ProblemAlreadyDecided)

	// Another account's device cannot claim alice's QR.
	e.addUser("bob")
	bob := e.enroll("bob")
	ch2 := e.testSignIn("alice", "qr")
	wantProblem(t, e.device(bob, "POST", api.PathQRClaim, api.QRClaimRequest{Payload: ch2.QRPayload}), http.StatusForbidden, api.ProblemWrongAccount)
}

func TestSuspendedAccount(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.testSignIn("alice")
	reqs := e.pendingFor(p)
	decode[api.User](t, e.admin("POST", userPath(api.PathUserSuspend, "alice"), api.StateChange{Reason: "on leave"}), http.StatusOK)

	view := decode[api.AccountView](t, e.device(p, "GET", api.PathDeviceAccount, nil), http.StatusOK)
	if view.State != "suspended" {
		t.Fatalf("account view %+v", view)
	}
	if got := e.pendingFor(p); len(got) != 0 {
		t.Fatalf("suspended account has pending requests %+v", got)
	}
	// The request pending before the suspension can no longer be approved.
	d := e.decision(p, ch.ID, reqs[0].Nonce, flows.DecisionApprove, flows.MethodPush, ch.Number)
	resp := e.device(p, "POST", decisionPath(ch.ID), d)
	if resp.StatusCode != http.StatusConflict && resp.StatusCode != http.StatusForbidden {
		t.Fatalf("decision on a suspended account: %d", resp.StatusCode)
	}
	if s := e.signIn(ch.ID); s.Status == "approved" {
		t.Fatal("a suspended account's sign-in was approved")
	}
	wantProblem(t, e.admin("POST", userPath(api.PathTestSignIn, "alice"), nil), http.StatusForbidden, api.ProblemAccountSuspended)
	wantProblem(t, e.device(p, "GET", api.PathRequestStream, nil), http.StatusForbidden, api.ProblemAccountSuspended)

	// Restored, it works again.
	decode[api.User](t, e.admin("POST", userPath(api.PathUserRestore, "alice"), nil), http.StatusOK)
	ch = e.testSignIn("alice")
	decode[api.DecisionResponse](t, e.decide(p, ch, flows.DecisionApprove, ch.Number), http.StatusOK)
}

func TestUnregisteredDevice(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")
	keep := e.enroll("alice")
	path := strings.Replace(userPath(api.PathDeviceUnreg, "alice"), "{device}", p.id, 1)
	dev := decode[api.Device](t, e.admin("POST", path, api.Unregister{Reason: "lost"}), http.StatusOK)
	if dev.State != "unregistered" || dev.UnregisterReason != "lost" {
		t.Fatalf("device %+v", dev)
	}
	wantProblem(t, e.device(p, "GET", api.PathDeviceAccount, nil), http.StatusForbidden, api.ProblemDeviceUnregistered)
	wantProblem(t, e.device(p, "GET", api.PathRequests, nil), http.StatusForbidden, api.ProblemDeviceUnregistered)
	decode[api.AccountView](t, e.device(keep, "GET", api.PathDeviceAccount, nil), http.StatusOK)
}

func TestRemovedAccount(t *testing.T) {
	e := newEnv(t)
	u := e.addUser("alice")
	p := e.enroll("alice")
	removed := decode[api.User](t, e.admin("POST", userPath(api.PathUserRemove, "alice"), api.StateChange{Reason: "left"}), http.StatusOK)
	if removed.State != "removed" || removed.StateReason != "left" {
		t.Fatalf("removed %+v", removed)
	}
	wantProblem(t, e.device(p, "GET", api.PathDeviceAccount, nil), http.StatusGone, api.ProblemAccountRemoved)
	wantProblem(t, e.device(p, "POST", api.PathQRClaim, api.QRClaimRequest{Payload: "x"}), http.StatusGone, api.ProblemAccountRemoved)
	// The tombstone is still there by id, and cannot change state.
	wantProblem(t, e.admin("POST", userPath(api.PathUserRestore, u.ID), nil), http.StatusGone, api.ProblemAccountRemoved)
	wantProblem(t, e.admin("GET", userPath(api.PathUser, "alice"), nil), http.StatusNotFound, api.ProblemNotFound)
}
