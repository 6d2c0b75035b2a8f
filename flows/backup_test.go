package flows_test

import (
	"crypto/ecdsa"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keystep/keystep/flows"
)

// rebindBody stands for the JSON body of the rebind call: flows only needs
// the bytes the restored key signs.
var rebindBody = []byte(`{"public_key":"…"}`)

// proof is the restored (old) key's signature on a rebind call, as the
// device API checks it.
func (e *env) proof(p phone) flows.DeviceProof {
	e.t.Helper()
	now, nonce := e.clock.Now(), flows.NewSecret(16)
	msg, err := flows.RequestPayload(origin, "POST", "/device/v1/rebind", now, nonce, rebindBody)
	if err != nil {
		e.t.Fatal(err)
	}
	sig, err := flows.SignES256(p.key, msg)
	if err != nil {
		e.t.Fatal(err)
	}
	return flows.DeviceProof{DeviceID: p.device.ID, Method: "POST", PathQuery: "/device/v1/rebind", Time: now, Nonce: nonce, Body: rebindBody, Signature: sig}
}

// rebindRequest is a new key's proof that it takes over from oldID.
func (e *env) rebindRequest(oldID string) (flows.RebindRequest, *ecdsa.PrivateKey) {
	e.t.Helper()
	key, der := newKey(e.t)
	msg, err := flows.RebindPayload(origin, oldID, der)
	if err != nil {
		e.t.Fatal(err)
	}
	sig, err := flows.SignES256(key, msg)
	if err != nil {
		e.t.Fatal(err)
	}
	return flows.RebindRequest{PublicKey: der, Signature: sig, Name: "new phone"}, key
}

// authenticate checks the old phone's signed call as the device API would.
func (e *env) authenticate(p phone) flows.Device {
	e.t.Helper()
	d, _, err := e.svc.AuthenticateDevice(e.ctx, e.proof(p))
	if err != nil {
		e.t.Fatalf("authenticate %s: %v", p.device.ID, err)
	}
	return d
}

// devices lists an account's devices, removed accounts' too.
func (e *env) devices(accountID string) []flows.Device {
	e.t.Helper()
	ds, err := e.store.ListDevices(e.ctx, accountID)
	if err != nil {
		e.t.Fatal(err)
	}
	return ds
}

// approve runs a push sign-in for user and has p approve it.
func (e *env) approve(user string, p phone) (flows.SignIn, error) {
	e.t.Helper()
	ch := e.begin(user, flows.MethodPush)
	return e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number))
}

func TestRebindMovesAccountToNewKey(t *testing.T) {
	e := newEnv(t, flows.Config{})
	alice := e.addUser("alice")
	old := e.enroll("alice")
	wake, stop := e.svc.WatchAccount(alice.ID)
	defer stop()

	req, key := e.rebindRequest(old.device.ID)
	d, err := e.svc.Rebind(e.ctx, e.authenticate(old), req)
	if err != nil {
		t.Fatalf("rebind: %v", err)
	}
	if d.AccountID != alice.ID || d.State != flows.DeviceActive || d.ID == old.device.ID || d.Name != "new phone" {
		t.Fatalf("new device %+v", d)
	}
	select {
	case <-wake:
	default:
		t.Fatal("the account's watchers were not woken")
	}

	ds := e.devices(alice.ID)
	if len(ds) != 2 {
		t.Fatalf("devices %+v", ds)
	}
	for _, x := range ds {
		switch x.ID {
		case old.device.ID:
			if x.State != flows.DeviceUnregistered || x.UnregisterReason != "replaced by restore on device "+d.ID {
				t.Fatalf("old device %+v", x)
			}
		case d.ID:
			if x.State != flows.DeviceActive {
				t.Fatalf("new device %+v", x)
			}
		default:
			t.Fatalf("unexpected device %+v", x)
		}
	}
	acts := e.auditActions()
	if got := acts[len(acts)-2:]; !slices.Equal(got, []string{flows.AuditDeviceUnregistered, flows.AuditDeviceRebound}) {
		t.Fatalf("audit ends with %v", got)
	}
	if v, err := e.svc.VerifyAudit(e.ctx); err != nil || !v.OK {
		t.Fatalf("audit chain: %+v, %v", v, err)
	}

	// The old key's signatures are refused; the new key approves.
	if _, err := e.approve("alice", old); !errors.Is(err, flows.ErrDeviceUnregistered) {
		t.Fatalf("decision by the old key: %v, want ErrDeviceUnregistered", err)
	}
	if _, _, err := e.svc.AuthenticateDevice(e.ctx, e.proof(old)); !errors.Is(err, flows.ErrDeviceUnregistered) {
		t.Fatalf("device call by the old key: %v, want ErrDeviceUnregistered", err)
	}
	sgn, err := e.approve("alice", phone{key: key, device: d})
	if err != nil || sgn.Status != flows.StatusApproved || sgn.DeviceID != d.ID {
		t.Fatalf("decision by the new key: %+v, %v", sgn, err)
	}
}

func TestRebindKeepsNameWhenNoneIsGiven(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	old := e.enroll("alice")
	req, _ := e.rebindRequest(old.device.ID)
	req.Name = ""
	d, err := e.svc.Rebind(e.ctx, e.authenticate(old), req)
	if err != nil || d.Name != old.device.Name {
		t.Fatalf("rebind without a name: %+v, %v; want name %q", d, err, old.device.Name)
	}
}

func TestRebindReplayRefused(t *testing.T) {
	e := newEnv(t, flows.Config{})
	alice := e.addUser("alice")
	old := e.enroll("alice")
	p := e.proof(old)
	d, _, err := e.svc.AuthenticateDevice(e.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := e.rebindRequest(old.device.ID)
	if _, err := e.svc.Rebind(e.ctx, d, req); err != nil {
		t.Fatalf("rebind: %v", err)
	}
	before := len(e.auditActions())

	// The captured call again: its nonce is spent.
	if _, _, err := e.svc.AuthenticateDevice(e.ctx, p); !errors.Is(err, flows.ErrReplay) {
		t.Fatalf("replayed proof: %v, want ErrReplay", err)
	}
	// The same request past the nonce check: the old device is gone.
	if _, err := e.svc.Rebind(e.ctx, d, req); !errors.Is(err, flows.ErrDeviceUnregistered) {
		t.Fatalf("replayed rebind: %v, want ErrDeviceUnregistered", err)
	}
	if n := len(e.devices(alice.ID)); n != 2 {
		t.Fatalf("%d devices after a replay, want 2", n)
	}
	if n := len(e.auditActions()); n != before {
		t.Fatalf("a refused replay changed the audit log: %d events, was %d", n, before)
	}
}

func TestRebindConcurrentOnlyOneWins(t *testing.T) {
	e := newEnv(t, flows.Config{})
	alice := e.addUser("alice")
	old := e.enroll("alice")
	d := e.authenticate(old)
	const n = 8
	reqs := make([]flows.RebindRequest, n)
	for i := range reqs {
		reqs[i], _ = e.rebindRequest(old.device.ID)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() { _, errs[i] = e.svc.Rebind(e.ctx, d, reqs[i]) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, flows.ErrDeviceUnregistered):
			t.Errorf("losing rebind: %v, want ErrDeviceUnregistered", err)
		}
	}
	active := 0
	for _, x := range e.devices(alice.ID) {
		if x.State == flows.DeviceActive {
			active++
		}
	}
	if won != 1 || active != 1 {
		t.Fatalf("%d rebinds won and %d devices are active, want 1 and 1", won, active)
	}
}

// unchanged checks that nothing was written: same devices, same audit log.
func (e *env) unchanged(accountID string, devices []flows.Device, audit int) {
	e.t.Helper()
	if got := e.devices(accountID); !slices.EqualFunc(got, devices, func(a, b flows.Device) bool {
		return a.ID == b.ID && a.State == b.State
	}) {
		e.t.Fatalf("devices changed: %+v, was %+v", got, devices)
	}
	if n := len(e.auditActions()); n != audit {
		e.t.Fatalf("audit log changed: %d events, was %d", n, audit)
	}
}

func TestRebindRefusedAccount(t *testing.T) {
	for _, tc := range []struct {
		name  string
		apply func(e *env) error
		want  error
	}{
		{"suspended", func(e *env) error {
			_, err := e.svc.SuspendAccount(e.ctx, "admin", "alice", flows.SourceAdmin, "on leave")
			return err
		}, flows.ErrAccountSuspended},
		{"removed", func(e *env) error {
			_, err := e.svc.RemoveAccount(e.ctx, "admin", "alice", flows.SourceAdmin, "left")
			return err
		}, flows.ErrAccountRemoved},
		{"old device unregistered by IT", func(e *env) error {
			_, err := e.svc.UnregisterAllDevices(e.ctx, "admin", "alice", "phone lost")
			return err
		}, flows.ErrDeviceUnregistered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, flows.Config{})
			alice := e.addUser("alice")
			old := e.enroll("alice")
			d := e.authenticate(old) // authenticated before the change, decided after
			if err := tc.apply(e); err != nil {
				t.Fatal(err)
			}
			devs, audit := e.devices(alice.ID), len(e.auditActions())
			req, _ := e.rebindRequest(old.device.ID)
			if _, err := e.svc.Rebind(e.ctx, d, req); !errors.Is(err, tc.want) {
				t.Fatalf("rebind: %v, want %v", err, tc.want)
			}
			e.unchanged(alice.ID, devs, audit)
		})
	}
}

func TestRebindBadInput(t *testing.T) {
	e := newEnv(t, flows.Config{})
	alice := e.addUser("alice")
	e.addUser("bob")
	old := e.enroll("alice")
	bobs := e.enroll("bob")
	d := e.authenticate(old)
	otherKey, _ := newKey(t)

	signed := func(key *ecdsa.PrivateKey, org, oldID string, der []byte) []byte {
		msg, err := flows.RebindPayload(org, oldID, der)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := flows.SignES256(key, msg)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	good, _ := e.rebindRequest(old.device.ID)
	for _, tc := range []struct {
		name   string
		edit   func(r *flows.RebindRequest, d *flows.Device)
		want   error
		wantIn string
	}{
		{"signed by another key", func(r *flows.RebindRequest, _ *flows.Device) {
			r.Signature = signed(otherKey, origin, old.device.ID, r.PublicKey)
		}, flows.ErrBadSignature, "signature"},
		{"signed by the old key", func(r *flows.RebindRequest, _ *flows.Device) {
			r.Signature = signed(old.key, origin, old.device.ID, r.PublicKey)
		}, flows.ErrBadSignature, "signature"},
		{"signed for another device", func(r *flows.RebindRequest, _ *flows.Device) {
			r.Signature = signed(otherKey, origin, bobs.device.ID, r.PublicKey)
		}, flows.ErrBadSignature, "signature"},
		{"signed for another server", func(r *flows.RebindRequest, _ *flows.Device) {
			nr, k := e.rebindRequest(old.device.ID)
			*r = nr
			r.Signature = signed(k, "https://other.test", old.device.ID, r.PublicKey)
		}, flows.ErrBadSignature, "signature"},
		{"no signature", func(r *flows.RebindRequest, _ *flows.Device) { r.Signature = nil }, flows.ErrBadSignature, "signature"},
		{"malformed key", func(r *flows.RebindRequest, _ *flows.Device) { r.PublicKey = []byte("not a key") }, flows.ErrInvalid, "new key"},
		{"no key", func(r *flows.RebindRequest, _ *flows.Device) { r.PublicKey = nil }, flows.ErrInvalid, "new key"},
		{"the restored key itself", func(r *flows.RebindRequest, _ *flows.Device) {
			r.PublicKey = old.device.PublicKey
			r.Signature = signed(old.key, origin, old.device.ID, r.PublicKey)
		}, flows.ErrInvalid, "must not be the restored key"},
		{"name with a control character", func(r *flows.RebindRequest, _ *flows.Device) { r.Name = "new\x00phone" }, flows.ErrInvalid, "device name"},
		{"name too long", func(r *flows.RebindRequest, _ *flows.Device) { r.Name = string(make([]byte, 200)) }, flows.ErrInvalid, "device name"},
		{"malformed push route", func(r *flows.RebindRequest, _ *flows.Device) { r.PushRoute = "apns:zz" }, flows.ErrInvalid, "push route"},
		{"device of another account", func(_ *flows.RebindRequest, d *flows.Device) { d.AccountID = bobs.device.AccountID }, flows.ErrWrongAccount, ""},
		{"malformed device id", func(_ *flows.RebindRequest, d *flows.Device) { d.ID = "no/such id" }, flows.ErrInvalid, "device id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			devs, audit := e.devices(alice.ID), len(e.auditActions())
			r, dev := good, d
			r.PublicKey = slices.Clone(good.PublicKey)
			tc.edit(&r, &dev)
			_, err := e.svc.Rebind(e.ctx, dev, r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("rebind: %v, want %v", err, tc.want)
			}
			if tc.wantIn != "" && !strings.Contains(err.Error(), tc.wantIn) {
				t.Fatalf("error %q does not say %q", err, tc.wantIn)
			}
			e.unchanged(alice.ID, devs, audit)
		})
	}
	// After all that, the good request still works.
	if _, err := e.svc.Rebind(e.ctx, d, good); err != nil {
		t.Fatalf("good rebind after refused ones: %v", err)
	}
}

func TestRebindPayloadIsDistinct(t *testing.T) {
	_, der := newKey(t)
	r, err := flows.RebindPayload(origin, "dev1", der)
	if err != nil {
		t.Fatal(err)
	}
	en, err := flows.EnrollPayload(origin, "dev1", der)
	if err != nil {
		t.Fatal(err)
	}
	if string(r) == string(en) {
		t.Fatal("a rebind payload reads like an enrollment payload")
	}
	if _, err := flows.RebindPayload(origin, "dev\n1", der); !errors.Is(err, flows.ErrInvalid) {
		t.Fatalf("a device id with a line break: %v, want ErrInvalid", err)
	}
}

func TestEnrollReplaceDevices(t *testing.T) {
	for _, replace := range []bool{false, true} {
		name := "keep old devices"
		if replace {
			name = "replace old devices"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, flows.Config{ReplaceDevicesOnEnroll: replace})
			alice := e.addUser("alice")
			bob := e.addUser("bob")
			first, second := e.enroll("alice"), e.enroll("alice")
			bobs := e.enroll("bob")
			third := e.enroll("alice")

			states := map[string]flows.DeviceState{}
			reasons := map[string]string{}
			for _, d := range e.devices(alice.ID) {
				states[d.ID], reasons[d.ID] = d.State, d.UnregisterReason
			}
			wantOld := flows.DeviceActive
			if replace {
				wantOld = flows.DeviceUnregistered
			}
			for _, p := range []phone{first, second} {
				if states[p.device.ID] != wantOld {
					t.Fatalf("older device %s is %s, want %s", p.device.ID, states[p.device.ID], wantOld)
				}
				if replace && reasons[p.device.ID] != "replaced by new enrollment" {
					t.Fatalf("older device %s unregistered for %q", p.device.ID, reasons[p.device.ID])
				}
			}
			if states[third.device.ID] != flows.DeviceActive {
				t.Fatalf("new device is %s", states[third.device.ID])
			}
			// Another account's device is never touched.
			if bd := e.devices(bob.ID); len(bd) != 1 || bd[0].State != flows.DeviceActive {
				t.Fatalf("bob's devices %+v", bd)
			}
			_, err := e.approve("alice", first)
			if replace && !errors.Is(err, flows.ErrDeviceUnregistered) {
				t.Fatalf("replaced device approved: %v", err)
			}
			if !replace && err != nil {
				t.Fatalf("older device refused without the option: %v", err)
			}
			if _, err := e.approve("bob", bobs); err != nil {
				t.Fatalf("bob: %v", err)
			}
			if _, err := e.approve("alice", third); err != nil {
				t.Fatalf("new device: %v", err)
			}
		})
	}
}
