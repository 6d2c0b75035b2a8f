package provider

import (
	"bytes"
	"crypto/ecdsa"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// rebindRequest is a new key's signed claim to take over from old.
func (e *env) rebindRequest(old phone) (api.RebindRequest, *ecdsa.PrivateKey) {
	e.t.Helper()
	key, der := newKey(e.t)
	msg, err := flows.RebindPayload(testOrigin, old.id, der)
	return api.RebindRequest{PublicKey: b64.EncodeToString(der), Signature: sign(e.t, key, msg, err), Name: "new phone"}, key
}

// devicesOf lists user's devices through the admin API.
func (e *env) devicesOf(user string) []api.Device {
	e.t.Helper()
	return decode[api.DeviceList](e.t, e.admin("GET", userPath(api.PathUserDevices, user), nil), http.StatusOK).Devices
}

func TestRebind(t *testing.T) {
	e := newEnv(t)
	u := e.addUser("alice")
	old := e.enroll("alice")
	ch := e.testSignIn("alice") // pending before the restore, decided after it

	req, key := e.rebindRequest(old)
	body := jsonBody(t, req)
	signed := e.signed(old, "POST", api.PathRebind, body, e.clock.Now(), flows.NewSecret(16))
	replay := signed.Clone(e.ctx)
	replay.Body = io.NopCloser(bytes.NewReader(body)) // the clone shares the original's reader
	res := decode[api.RebindResponse](t, e.send(signed), http.StatusCreated)
	want := api.AccountView{ID: u.ID, Username: "alice", State: "active"}
	if res.DeviceID == "" || res.DeviceID == old.id || res.ReplacedDeviceID != old.id || res.Server != testOrigin || res.Account != want {
		t.Fatalf("rebind response %+v", res)
	}
	fresh := phone{key: key, id: res.DeviceID}

	devs := map[string]api.Device{}
	for _, d := range e.devicesOf("alice") {
		devs[d.ID] = d
	}
	if was, now := devs[old.id], devs[res.DeviceID]; len(devs) != 2 ||
		was.State != "unregistered" || was.UnregisterReason != "replaced by restore on device "+res.DeviceID ||
		now.State != "active" || now.Name != "new phone" {
		t.Fatalf("devices after rebind %+v", devs)
	}

	// The very same request again is refused before anything else.
	wantProblem(t, e.send(replay), http.StatusUnauthorized, api.ProblemReplay)
	// A fresh request by the old key: that device is gone.
	again, _ := e.rebindRequest(old)
	wantProblem(t, e.device(old, "POST", api.PathRebind, again), http.StatusForbidden, api.ProblemDeviceUnregistered)
	wantProblem(t, e.device(old, "GET", api.PathRequests, nil), http.StatusForbidden, api.ProblemDeviceUnregistered)

	// The new key sees and approves the sign-in that was pending.
	res2 := decode[api.DecisionResponse](t, e.decide(fresh, ch, flows.DecisionApprove, ch.Number), http.StatusOK)
	if res2.Status != "approved" {
		t.Fatalf("decision by the new key: %+v", res2)
	}
	if s := e.signIn(ch.ID); s.DeviceID != fresh.id {
		t.Fatalf("sign-in decided by %s, want %s", s.DeviceID, fresh.id)
	}
	if len(e.devicesOf("alice")) != 2 {
		t.Fatal("refused rebinds added devices")
	}
}

func TestRebindRefused(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	e.addUser("bob")
	old := e.enroll("alice")
	stranger, _ := newKey(t)

	check := func(name string, resp *http.Response, status int, typ, detail string) {
		t.Helper()
		before := len(e.devicesOf("alice"))
		audit := e.auditLen()
		p := wantProblem(t, resp, status, typ)
		if detail != "" && !strings.Contains(p.Detail, detail) {
			t.Errorf("%s: detail %q does not say %q", name, p.Detail, detail)
		}
		if n := len(e.devicesOf("alice")); n != before || n != 1 {
			t.Fatalf("%s: alice has %d devices, want 1", name, n)
		}
		if n := e.auditLen(); n != audit {
			t.Fatalf("%s: audit log grew", name)
		}
	}

	// The new key's signature is by another key.
	req, _ := e.rebindRequest(old)
	other, _ := e.rebindRequest(old)
	req.Signature = other.Signature
	check("bad signature", e.device(old, "POST", api.PathRebind, req), http.StatusUnauthorized, api.ProblemBadSignature, "")

	// The call itself is not signed by the restored key.
	good, _ := e.rebindRequest(old)
	check("call by a stranger", e.device(phone{key: stranger, id: old.id}, "POST", api.PathRebind, good),
		http.StatusUnauthorized, api.ProblemBadSignature, "")

	// Unknown fields, malformed values, wrong content type, no body.
	check("unknown field", e.device(old, "POST", api.PathRebind, []byte(`{"public_key":"`+good.PublicKey+`","signature":"`+good.Signature+`","private_key":"x"}`)),
		http.StatusBadRequest, api.ProblemInvalid, `unknown field "private_key"`)
	bad := good
	bad.PublicKey = "not base64!"
	check("bad key encoding", e.device(old, "POST", api.PathRebind, bad), http.StatusBadRequest, api.ProblemInvalid, "public_key")
	bad = good
	bad.PublicKey = b64.EncodeToString([]byte("not a key"))
	check("not a key", e.device(old, "POST", api.PathRebind, bad), http.StatusBadRequest, api.ProblemInvalid, "new key")
	bad = good
	bad.Signature = ""
	check("no signature", e.device(old, "POST", api.PathRebind, bad), http.StatusBadRequest, api.ProblemInvalid, "signature")
	bad = good
	bad.Name = "a\nb"
	check("bad name", e.device(old, "POST", api.PathRebind, bad), http.StatusBadRequest, api.ProblemInvalid, "device name")
	check("no body", e.device(old, "POST", api.PathRebind, nil), http.StatusBadRequest, api.ProblemInvalid, "JSON body")
	textReq := e.signed(old, "POST", api.PathRebind, jsonBody(t, good), e.clock.Now(), flows.NewSecret(16))
	textReq.Header.Set("Content-Type", "text/plain")
	check("wrong content type", e.send(textReq), http.StatusBadRequest, api.ProblemInvalid, "Content-Type")

	// Oversize: refused before it is read in full.
	huge := []byte(`{"public_key":"` + strings.Repeat("A", MaxBodyBytes) + `"}`)
	check("oversize", e.device(old, "POST", api.PathRebind, huge), http.StatusRequestEntityTooLarge, api.ProblemTooLarge, "")

	// Suspended: refused, and the app can tell the user to contact IT.
	if _, err := e.svc.SuspendAccount(e.ctx, "admin", "alice", flows.SourceAdmin, "on leave"); err != nil {
		t.Fatal(err)
	}
	check("suspended", e.device(old, "POST", api.PathRebind, good), http.StatusForbidden, api.ProblemAccountSuspended, "suspended")
	if _, err := e.svc.RestoreAccount(e.ctx, "admin", "alice", flows.SourceAdmin, ""); err != nil {
		t.Fatal(err)
	}

	// After every refusal, the good request still works.
	res := decode[api.RebindResponse](t, e.device(old, "POST", api.PathRebind, good), http.StatusCreated)
	if res.ReplacedDeviceID != old.id {
		t.Fatalf("rebind %+v", res)
	}
}

func TestRebindUnregisteredByAdmin(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	old := e.enroll("alice")
	e.admin("POST", strings.Replace(userPath(api.PathDeviceUnreg, "alice"), "{device}", old.id, 1), api.Unregister{Reason: "phone lost"})
	audit := e.auditLen()
	req, _ := e.rebindRequest(old)
	wantProblem(t, e.device(old, "POST", api.PathRebind, req), http.StatusForbidden, api.ProblemDeviceUnregistered)
	if devs := e.devicesOf("alice"); len(devs) != 1 || devs[0].State != "unregistered" {
		t.Fatalf("devices %+v", devs)
	}
	if e.auditLen() != audit {
		t.Fatal("a refused rebind changed the audit log")
	}
}

// FuzzRebind posts arbitrary bodies, correctly signed by the restored key:
// without the new key's signature over this device's id none can succeed.
func FuzzRebind(f *testing.F) {
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := e.serve(t, e.deviceRequest(t, api.PathRebind, body))
		if rec.Code < 400 {
			t.Fatalf("a rebind nobody signed with a new key succeeded: %s", rec.Body)
		}
	})
}
