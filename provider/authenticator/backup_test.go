package authenticator_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
	"github.com/keystep/keystep/provider/authenticator"
)

const passphrase = "correct horse battery staple"

// phones is one or two servers and the state files of a user's phones.
type phones struct {
	t     *testing.T
	ctx   context.Context
	clock *clocktest.Clock
	dir   string
}

func newPhones(t *testing.T) phones {
	return phones{t: t, ctx: context.Background(), clock: clocktest.New(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)), dir: t.TempDir()}
}

// open opens the phone whose state file is called name.
func (p phones) open(name string) *authenticator.Authenticator {
	p.t.Helper()
	a, err := authenticator.Open(p.path(name), authenticator.WithClock(p.clock.Now), authenticator.WithDeviceName(name))
	if err != nil {
		p.t.Fatal(err)
	}
	return a
}

func (p phones) path(name string) string { return filepath.Join(p.dir, name) }

// noStateFile checks that name's state file was never created.
func (p phones) noStateFile(name string) {
	p.t.Helper()
	if _, err := os.Stat(p.path(name)); !errors.Is(err, fs.ErrNotExist) {
		p.t.Fatalf("state file %s exists (%v); a failed restore must not create it", name, err)
	}
}

// activeDevices lists user's active device ids at srv.
func activeDevices(t *testing.T, srv server, user string) []string {
	t.Helper()
	l, err := srv.admin.ListDevices(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range l.Devices {
		if d.State == "active" {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

// approve starts a push sign-in for user at srv and has a approve it.
func approve(t *testing.T, srv server, a *authenticator.Authenticator, user string) (api.SignIn, error) {
	t.Helper()
	ctx := context.Background()
	c, err := srv.admin.TestSignIn(ctx, user, "push")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Approve(ctx, c.ID, c.Number); err != nil {
		return api.SignIn{}, err
	}
	return srv.admin.GetSignIn(ctx, c.ID, 0)
}

func TestBackupRestore(t *testing.T) {
	p := newPhones(t)
	one, two := startServer(t, p.clock), startServer(t, p.clock)
	phone1 := p.open("phone1.json")
	alice := enroll(t, p.ctx, one, phone1, "alice")
	bob := enroll(t, p.ctx, two, phone1, "bob")

	blob, err := phone1.Backup(passphrase)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	var env struct {
		V      int    `json:"v"`
		KDF    string `json:"kdf"`
		Argon2 struct {
			Time      uint32 `json:"time"`
			MemoryKiB uint32 `json:"memory_kib"`
			Threads   uint8  `json:"threads"`
		} `json:"argon2"`
		Salt string `json:"salt"`
	}
	if err := json.Unmarshal(blob, &env); err != nil {
		t.Fatalf("backup is not JSON: %v", err)
	}
	if salt, err := base64.RawURLEncoding.DecodeString(env.Salt); env.V != 1 || env.KDF != "argon2id" || err != nil || len(salt) != 16 ||
		env.Argon2.Time != 3 || env.Argon2.MemoryKiB != 64*1024 || env.Argon2.Threads != 4 {
		t.Fatalf("envelope %+v", env)
	}
	for _, secret := range []string{alice.PrivateKey, bob.PrivateKey, alice.DeviceID, "alice", one.origin} {
		if bytes.Contains(blob, []byte(secret)) {
			t.Fatalf("the backup holds %q in clear", secret)
		}
	}

	phone2 := p.open("phone2.json")
	res, err := phone2.Restore(p.ctx, blob, passphrase)
	if err != nil || len(res) != 2 {
		t.Fatalf("restore: %+v, %v", res, err)
	}
	for i, old := range []authenticator.Enrollment{alice, bob} {
		r := res[i]
		if r.Err != nil || r.Old.DeviceID != old.DeviceID || r.New.DeviceID == "" || r.New.DeviceID == old.DeviceID ||
			r.New.PrivateKey == old.PrivateKey || r.New.AccountID != old.AccountID || r.New.Server != old.Server || r.New.Username != old.Username {
			t.Fatalf("restored %d: %+v", i, r)
		}
	}
	es, err := phone2.Enrollments()
	if err != nil || len(es) != 2 || es[0] != res[0].New || es[1] != res[1].New {
		t.Fatalf("phone2 enrollments %+v, %v", es, err)
	}
	if fi, err := os.Stat(p.path("phone2.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("phone2 state file: %v, %v", fi, err)
	}
	if ids := activeDevices(t, one, "alice"); len(ids) != 1 || ids[0] != res[0].New.DeviceID {
		t.Fatalf("alice's active devices %v, want only %s", ids, res[0].New.DeviceID)
	}

	// The old phone is refused everywhere; the new one approves.
	if _, err := approve(t, one, phone1, "alice"); !adminclient.HasType(err, api.ProblemDeviceUnregistered) {
		t.Fatalf("approve on the old phone: %v, want device-unregistered", err)
	}
	as, err := phone1.Accounts(p.ctx)
	if err != nil || len(as) != 2 || as[0].State != authenticator.StateUnregistered || as[1].State != authenticator.StateUnregistered {
		t.Fatalf("old phone's accounts %+v, %v", as, err)
	}
	for i, srv := range []server{one, two} {
		s, err := approve(t, srv, phone2, res[i].New.Username)
		if err != nil || s.Status != "approved" || s.DeviceID != res[i].New.DeviceID {
			t.Fatalf("approve on the new phone at %s: %+v, %v", srv.origin, s, err)
		}
	}

	// Restoring again into a state file with enrollments is refused.
	if _, err := phone2.Restore(p.ctx, blob, passphrase); !errors.Is(err, authenticator.ErrStateNotEmpty) {
		t.Fatalf("restore over enrollments: %v, want ErrStateNotEmpty", err)
	}
	// Restoring the same backup elsewhere: the old devices are gone, so
	// nothing is restored and no state file is made.
	phone3 := p.open("phone3.json")
	res, err = phone3.Restore(p.ctx, blob, passphrase)
	if !errors.Is(err, flows.ErrDeviceUnregistered) || len(res) != 2 || res[0].Err == nil || res[1].Err == nil {
		t.Fatalf("second restore of one backup: %+v, %v", res, err)
	}
	p.noStateFile("phone3.json")
	if ids := activeDevices(t, one, "alice"); len(ids) != 1 || ids[0] != es[0].DeviceID {
		t.Fatalf("a refused restore changed alice's devices: %v", ids)
	}
}

func TestRestoreWrongPassphraseChangesNothing(t *testing.T) {
	p := newPhones(t)
	srv := startServer(t, p.clock)
	phone1 := p.open("phone1.json")
	alice := enroll(t, p.ctx, srv, phone1, "alice")
	blob, err := phone1.Backup(passphrase)
	if err != nil {
		t.Fatal(err)
	}

	phone2 := p.open("phone2.json")
	for _, wrong := range []string{"correct horse battery stapler", "", "x"} {
		if _, err := phone2.Restore(p.ctx, blob, wrong); !errors.Is(err, authenticator.ErrWrongPassphrase) {
			t.Fatalf("restore with %q: %v, want ErrWrongPassphrase", wrong, err)
		}
	}
	p.noStateFile("phone2.json")
	if ids := activeDevices(t, srv, "alice"); len(ids) != 1 || ids[0] != alice.DeviceID {
		t.Fatalf("alice's devices after wrong passphrases: %v", ids)
	}
	if s, err := approve(t, srv, phone1, "alice"); err != nil || s.Status != "approved" {
		t.Fatalf("the old phone after wrong passphrases: %+v, %v", s, err)
	}
}

// tamper changes one field of a backup's envelope.
func tamper(t *testing.T, blob []byte, field string, edit func(v any) any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(blob, &m); err != nil {
		t.Fatal(err)
	}
	m[field] = edit(m[field])
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// flipBit flips one bit of the byte at of a base64url value; a negative
// at counts from the end.
func flipBit(t *testing.T, at int) func(v any) any {
	return func(v any) any {
		b, err := base64.RawURLEncoding.DecodeString(v.(string))
		if err != nil {
			t.Fatal(err)
		}
		i := at
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 0x01
		return base64.RawURLEncoding.EncodeToString(b)
	}
}

func TestRestoreTamperedBackup(t *testing.T) {
	p := newPhones(t)
	srv := startServer(t, p.clock)
	phone1 := p.open("phone1.json")
	enroll(t, p.ctx, srv, phone1, "alice")
	blob, err := phone1.Backup(passphrase)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"ciphertext bit":     tamper(t, blob, "ciphertext", flipBit(t, 0)),
		"ciphertext tag bit": tamper(t, blob, "ciphertext", flipBit(t, -1)),
		"salt bit":           tamper(t, blob, "salt", flipBit(t, 3)),
		"nonce bit":          tamper(t, blob, "nonce", flipBit(t, 5)),
		"kdf time":           tamper(t, blob, "argon2", func(v any) any { m := v.(map[string]any); m["time"] = 2; return m }),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := p.open("phone2.json").Restore(p.ctx, bad, passphrase); !errors.Is(err, authenticator.ErrWrongPassphrase) {
				t.Fatalf("restore: %v, want ErrWrongPassphrase", err)
			}
			p.noStateFile("phone2.json")
		})
	}
	// Unknown version and KDF are refused as such.
	for name, bad := range map[string][]byte{
		"version 2": tamper(t, blob, "v", func(any) any { return 2 }),
		"scrypt":    tamper(t, blob, "kdf", func(any) any { return "scrypt" }),
		"4 GiB":     tamper(t, blob, "argon2", func(v any) any { m := v.(map[string]any); m["memory_kib"] = 4 << 20; return m }),
	} {
		if _, err := p.open("phone2.json").Restore(p.ctx, bad, passphrase); !errors.Is(err, authenticator.ErrInvalidBackup) {
			t.Fatalf("%s: restore: %v, want ErrInvalidBackup", name, err)
		}
	}
	p.noStateFile("phone2.json")
	// The untouched backup still restores.
	if _, err := p.open("phone2.json").Restore(p.ctx, blob, passphrase); err != nil {
		t.Fatalf("restore of the untouched backup: %v", err)
	}
}

func TestBackupRefused(t *testing.T) {
	p := newPhones(t)
	srv := startServer(t, p.clock)
	phone := p.open("phone.json")
	if _, err := phone.Backup(passphrase); err == nil || !strings.Contains(err.Error(), "nothing to back up") {
		t.Fatalf("backup of an empty device: %v", err)
	}
	enroll(t, p.ctx, srv, phone, "alice")
	for _, weak := range []string{"", "short", "123456789", "ééééééééé"} { // the last: 9 characters in 18 bytes
		_, err := phone.Backup(weak)
		if !errors.Is(err, authenticator.ErrWeakPassphrase) || !strings.Contains(err.Error(), "at least 10 characters") {
			t.Fatalf("backup with %q: %v, want ErrWeakPassphrase", weak, err)
		}
	}
	if _, err := phone.Backup(strings.Repeat("x", authenticator.MaxPassphraseLen+1)); !errors.Is(err, authenticator.ErrWeakPassphrase) {
		t.Fatalf("backup with a huge passphrase: %v", err)
	}
	if _, err := phone.Backup("\xff\xfe invalid utf-8"); !errors.Is(err, authenticator.ErrWeakPassphrase) {
		t.Fatalf("backup with invalid UTF-8: %v", err)
	}
}

func TestRestorePartial(t *testing.T) {
	p := newPhones(t)
	srv := startServer(t, p.clock)
	phone1 := p.open("phone1.json")
	enroll(t, p.ctx, srv, phone1, "alice")
	bob := enroll(t, p.ctx, srv, phone1, "bob")
	blob, err := phone1.Backup(passphrase)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.admin.Suspend(p.ctx, "bob", "on leave"); err != nil {
		t.Fatal(err)
	}

	// Bob's account is suspended: alice is restored, bob is not.
	phone2 := p.open("phone2.json")
	res, err := phone2.Restore(p.ctx, blob, passphrase)
	if !errors.Is(err, flows.ErrAccountSuspended) || !strings.Contains(err.Error(), "1 of 2") || !strings.Contains(err.Error(), "bob at ") {
		t.Fatalf("restore with bob suspended: %v", err)
	}
	if len(res) != 2 || res[0].Err != nil || res[1].Err == nil || res[1].New != (authenticator.Enrollment{}) {
		t.Fatalf("results %+v", res)
	}
	es, err := phone2.Enrollments()
	if err != nil || len(es) != 1 || es[0].Username != "alice" {
		t.Fatalf("phone2 enrollments %+v, %v", es, err)
	}
	if ids := activeDevices(t, srv, "bob"); len(ids) != 1 || ids[0] != bob.DeviceID {
		t.Fatalf("bob's devices changed: %v", ids)
	}

	// Once bob is active again, the same backup restores him on a third
	// phone; alice, already moved, is refused there.
	if _, err := srv.admin.Restore(p.ctx, "bob", ""); err != nil {
		t.Fatal(err)
	}
	phone3 := p.open("phone3.json")
	res, err = phone3.Restore(p.ctx, blob, passphrase)
	if !errors.Is(err, flows.ErrDeviceUnregistered) || len(res) != 2 || res[0].Err == nil || res[1].Err != nil {
		t.Fatalf("restore of bob: %+v, %v", res, err)
	}
	if s, err := approve(t, srv, phone3, "bob"); err != nil || s.Status != "approved" {
		t.Fatalf("bob on phone3: %+v, %v", s, err)
	}
	if s, err := approve(t, srv, phone2, "alice"); err != nil || s.Status != "approved" {
		t.Fatalf("alice on phone2: %+v, %v", s, err)
	}
}
