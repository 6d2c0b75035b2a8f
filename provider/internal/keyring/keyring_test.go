package keyring_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"math/big"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/provider/internal/keyring"
	"github.com/keystep/keystep/provider/internal/seal"

	_ "modernc.org/sqlite" // to write the store's file as an intruder would
)

const day = 24 * time.Hour

// oidcDefaults is the OpenID Provider's policy.
var oidcDefaults = keyring.Policy{RotateEvery: 90 * day, PublishAhead: day, KeepAfter: day}

// env is a SQLite store, a seal key and a fake clock that rings share, as
// the instances of one server do.
type env struct {
	t     *testing.T
	ctx   context.Context
	store flows.Store
	seal  seal.Key
	clock *clocktest.Clock
	path  string // the SQLite file
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keystep.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sk, err := seal.Derive([]byte("keystep-test-code-key-0123456789abcdef"), "test-signing-keys")
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, store: st, seal: sk, clock: clocktest.New(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)), path: path}
}

// ring makes a ring over the env's store; o's Store, Seal and Clock are
// filled in.
func (e *env) ring(o keyring.Options) *keyring.Ring {
	e.t.Helper()
	o.Store, o.Seal, o.Clock = e.store, e.seal, e.clock
	r, err := keyring.New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// oidcRing is a ring as the OpenID Provider makes it.
func (e *env) oidcRing() *keyring.Ring {
	return e.ring(keyring.Options{Use: flows.KeyUseOIDC, Algs: []keyring.Alg{keyring.ES256, keyring.RS256}, Defaults: oidcDefaults,
		CommonName: "keystep ID token signing key"})
}

// current returns the ids of the published keys, oldest first.
func (e *env) current(r *keyring.Ring) []string {
	e.t.Helper()
	keys, err := r.Current(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids
}

// signing returns the key that signs now for alg.
func (e *env) signing(r *keyring.Ring, alg keyring.Alg) *keyring.Key {
	e.t.Helper()
	k, err := r.Signing(e.ctx, alg)
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

// signers returns the ids of the keys that sign now by alg, as Info says,
// and how many keys are published.
func (e *env) signers(r *keyring.Ring) (signers map[string]string, published int) {
	e.t.Helper()
	info, err := r.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	signers = map[string]string{}
	for _, k := range info {
		if k.Signing {
			if signers[k.Alg] != "" {
				e.t.Errorf("two keys sign for %s: %+v", k.Alg, info)
			}
			signers[k.Alg] = k.ID
		}
	}
	return signers, len(info)
}

// TestKeyringScheduledRotation: the next key is published a day before it
// signs, and the replaced one stays published a day after, then leaves.
func TestKeyringScheduledRotation(t *testing.T) {
	e := newEnv(t)
	r := e.oidcRing()
	first, n := e.signers(r)
	if n != 2 || first["ES256"] == "" || first["RS256"] == "" {
		t.Fatalf("first start: %v, %d keys", first, n)
	}
	e.clock.Advance(90*day - 23*time.Hour) // inside the last day of the first keys
	now, n := e.signers(r)
	if n != 4 || now["ES256"] != first["ES256"] || now["RS256"] != first["RS256"] {
		t.Fatalf("a day before the rotation: signers %v (want %v), %d keys published (want 4)", now, first, n)
	}
	e.clock.Advance(day) // the new keys sign
	now, n = e.signers(r)
	if n != 4 || now["ES256"] == first["ES256"] || now["RS256"] == first["RS256"] {
		t.Fatalf("after the rotation: signers %v, %d keys published (want the old ones still there)", now, n)
	}
	if k := e.signing(r, keyring.ES256); k.ID != now["ES256"] {
		t.Errorf("Signing(ES256) = %s, Info says %s", k.ID, now["ES256"])
	}
	e.clock.Advance(25 * time.Hour) // past KeepAfter
	if _, n = e.signers(r); n != 2 {
		t.Fatalf("a day after the rotation: %d keys published, want 2", n)
	}
}

// TestKeyringRotate: a forced rotation makes keys that sign at once and
// retires the old ones KeepAfter later.
func TestKeyringRotate(t *testing.T) {
	e := newEnv(t)
	r := e.oidcRing()
	before, _ := e.signers(r)
	e.clock.Advance(time.Hour)
	info, err := r.Rotate(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info) != 4 {
		t.Fatalf("after rotation: %+v", info)
	}
	now := e.clock.Now()
	for _, k := range info {
		old := k.ID == before[k.Alg]
		switch {
		case k.Use != "oidc":
			t.Errorf("key %s: use %q", k.ID, k.Use)
		case old && (k.Signing || !k.RetireAt.Equal(now.Add(day))):
			t.Errorf("old key %+v: want not signing, retiring at %v", k, now.Add(day))
		case !old && (!k.Signing || !k.RetireAt.IsZero() || !k.ActiveAt.Equal(now) || !k.CreatedAt.Equal(now)):
			t.Errorf("new key %+v: want signing from now, not retiring", k)
		}
	}
	if k := e.signing(r, keyring.RS256); k.ID == before["RS256"] {
		t.Error("the old RS256 key still signs")
	}
	e.clock.Advance(day)
	if _, n := e.signers(r); n != 2 {
		t.Errorf("a day after: %d keys published, want 2", n)
	}
}

// TestKeyringInstances: rings over one store (the instances of a server)
// share their keys, and one sees another's rotation within a minute.
func TestKeyringInstances(t *testing.T) {
	e := newEnv(t)
	a, b := e.oidcRing(), e.oidcRing()
	ka := e.current(a)
	if kb := e.current(b); !slices.Equal(ka, kb) {
		t.Fatalf("instance a has %v, b %v", ka, kb)
	}
	if _, err := a.Rotate(e.ctx); err != nil {
		t.Fatal(err)
	}
	if kb := e.current(b); !slices.Equal(ka, kb) {
		t.Errorf("b reloaded before a minute passed: %v", kb)
	}
	e.clock.Advance(time.Minute)
	if kb := e.current(b); len(kb) != 4 || !slices.Equal(kb, e.current(a)) {
		t.Errorf("a minute after a's rotation, b has %v, a %v", kb, e.current(a))
	}
}

// TestKeyringKeys: ES256 keys are P-256, RS256 keys RSA-2048, each with a
// self-signed certificate of its public key named by CommonName and id.
func TestKeyringKeys(t *testing.T) {
	e := newEnv(t)
	r := e.oidcRing()
	ec := e.signing(r, keyring.ES256)
	if k, ok := ec.Signer.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("ES256 key is %T", ec.Signer)
	}
	rs := e.signing(r, keyring.RS256)
	if k, ok := rs.Signer.(*rsa.PrivateKey); !ok || k.N.BitLen() != 2048 {
		t.Errorf("RS256 key is %T", rs.Signer)
	}
	for _, k := range []*keyring.Key{ec, rs} {
		if k.Cert.Subject.CommonName != "keystep ID token signing key "+k.ID {
			t.Errorf("certificate CN %q", k.Cert.Subject.CommonName)
		}
		if err := k.Cert.CheckSignature(k.Cert.SignatureAlgorithm, k.Cert.RawTBSCertificate, k.Cert.Signature); err != nil {
			t.Errorf("certificate of %s: %v", k.ID, err)
		}
		if !k.Signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Cert.PublicKey) {
			t.Errorf("certificate of %s is for another key", k.ID)
		}
		digest := sha256.Sum256([]byte("signed"))
		if _, err := k.Signer.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			t.Errorf("sign with %s: %v", k.ID, err)
		}
	}
	saml := e.ring(keyring.Options{Use: flows.KeyUseSAML, Algs: []keyring.Alg{keyring.RS256}, Defaults: oidcDefaults})
	if k := e.signing(saml, keyring.RS256); k.Cert.Subject.CommonName != "keystep saml signing key "+k.ID {
		t.Errorf("default certificate CN %q", k.Cert.Subject.CommonName)
	}
	if _, err := saml.Signing(e.ctx, keyring.ES256); err == nil {
		t.Error("an RS256-only ring has an ES256 key")
	}
}

// TestKeyringWrongSeal: keys sealed under another key do not open, and the
// error says which file to look at.
func TestKeyringWrongSeal(t *testing.T) {
	e := newEnv(t)
	e.current(e.oidcRing())
	other, err := seal.Derive([]byte("another-code-key-0123456789abcdefghij"), "test-signing-keys")
	if err != nil {
		t.Fatal(err)
	}
	r, err := keyring.New(keyring.Options{Store: e.store, Seal: other, Clock: e.clock, Use: flows.KeyUseOIDC,
		Algs: []keyring.Alg{keyring.ES256}, Defaults: oidcDefaults})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Current(e.ctx); err == nil || !strings.Contains(err.Error(), "codes.key_file") {
		t.Errorf("Current with the wrong seal key: %v", err)
	}
}

// TestKeyringSAMLRotation: a SAML ring with a yearly policy publishes the
// next key 30 days before it signs, switches at its ActiveAt, keeps the
// old one published a day after, and sees none of the OIDC keys in the
// same store (nor they its).
func TestKeyringSAMLRotation(t *testing.T) {
	e := newEnv(t)
	oidc := e.oidcRing()
	oidcKeys := e.current(oidc)
	saml := e.ring(keyring.Options{Use: flows.KeyUseSAML, Algs: []keyring.Alg{keyring.RS256},
		Policy: keyring.Policy{RotateEvery: 365 * day, PublishAhead: 30 * day, KeepAfter: day}, Defaults: oidcDefaults,
		CommonName: "keystep SAML assertion signing key"})
	apart := func() {
		t.Helper()
		o, s := e.current(oidc), e.current(saml)
		for _, id := range s {
			if slices.Contains(o, id) {
				t.Fatalf("key %s is in both the OIDC ring %v and the SAML ring %v", id, o, s)
			}
		}
	}

	first := e.signing(saml, keyring.RS256)
	if ids := e.current(saml); len(ids) != 1 || ids[0] != first.ID {
		t.Fatalf("first start: SAML keys %v, signing %s", ids, first.ID)
	}
	if slices.Contains(oidcKeys, first.ID) || len(oidcKeys) != 2 {
		t.Fatalf("the SAML ring took an OIDC key: %v", oidcKeys)
	}
	info, err := saml.Info(e.ctx)
	if err != nil || len(info) != 1 || info[0].Use != "saml" || info[0].Alg != "RS256" || !info[0].Signing {
		t.Fatalf("SAML info %+v, %v", info, err)
	}
	apart()

	// The next key is published 30 days before it signs, not earlier.
	e.clock.Advance(335*day - time.Minute)
	if ids := e.current(saml); len(ids) != 1 {
		t.Fatalf("31 days early: SAML keys %v, want only the first", ids)
	}
	e.clock.Advance(2 * time.Minute)
	ids := e.current(saml)
	if len(ids) != 2 || ids[0] != first.ID {
		t.Fatalf("30 days before the rotation: SAML keys %v, want the first and the next", ids)
	}
	keys, err := saml.Current(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Found a minute after the first key's last 30 days began, the next
	// key still gets its full 30 days: it signs a minute after the year.
	next := keys[1]
	if want := e.clock.Now().Add(30 * day); !next.ActiveAt.Equal(want) || next.Alg != keyring.RS256 {
		t.Fatalf("next key active at %v (want %v), alg %s", next.ActiveAt, want, next.Alg)
	}
	if !keys[0].RetireAt.Equal(next.ActiveAt.Add(day)) {
		t.Errorf("first key retires at %v, want a day after the next signs (%v)", keys[0].RetireAt, next.ActiveAt.Add(day))
	}
	if k := e.signing(saml, keyring.RS256); k.ID != first.ID {
		t.Fatalf("the next key signs 30 days early")
	}
	apart()

	// Signing switches at ActiveAt, the cached view notwithstanding.
	e.clock.Advance(next.ActiveAt.Sub(e.clock.Now()) - time.Second)
	if k := e.signing(saml, keyring.RS256); k.ID != first.ID {
		t.Fatalf("a second before ActiveAt, %s signs", k.ID)
	}
	e.clock.Advance(time.Second)
	if k := e.signing(saml, keyring.RS256); k.ID != next.ID {
		t.Fatalf("at ActiveAt, %s signs, want the next key %s", k.ID, next.ID)
	}

	// The old key stays published a day after, then leaves.
	e.clock.Advance(day - time.Minute)
	if ids := e.current(saml); len(ids) != 2 {
		t.Fatalf("a minute before the first key retires: SAML keys %v", ids)
	}
	e.clock.Advance(time.Minute)
	if ids := e.current(saml); len(ids) != 1 || ids[0] != next.ID {
		t.Fatalf("after KeepAfter: SAML keys %v, want only %s", ids, next.ID)
	}
	apart()

	// A rotation of one use leaves the other alone.
	if _, err := oidc.Rotate(e.ctx); err != nil {
		t.Fatal(err)
	}
	if k := e.signing(saml, keyring.RS256); k.ID != next.ID {
		t.Errorf("an OIDC rotation changed the SAML signing key")
	}
	before := e.current(oidc)
	if _, err := saml.Rotate(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	if after := e.current(oidc); !slices.Equal(before, after) {
		t.Errorf("a SAML rotation changed the OIDC keys: %v, then %v", before, after)
	}
	apart()
}

// TestNew: the options a ring cannot work without.
func TestNew(t *testing.T) {
	e := newEnv(t)
	ok := keyring.Options{Store: e.store, Seal: e.seal, Use: flows.KeyUseSAML, Algs: []keyring.Alg{keyring.RS256}, Defaults: oidcDefaults}
	if _, err := keyring.New(ok); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for name, change := range map[string]func(*keyring.Options){
		"no store":         func(o *keyring.Options) { o.Store = nil },
		"no seal":          func(o *keyring.Options) { o.Seal = seal.Key{} },
		"no use":           func(o *keyring.Options) { o.Use = "" },
		"no alg":           func(o *keyring.Options) { o.Algs = nil },
		"unknown alg":      func(o *keyring.Options) { o.Algs = []keyring.Alg{"HS256"} },
		"alg twice":        func(o *keyring.Options) { o.Algs = []keyring.Alg{keyring.RS256, keyring.RS256} },
		"no policy":        func(o *keyring.Options) { o.Defaults = keyring.Policy{} },
		"negative publish": func(o *keyring.Options) { o.Policy.PublishAhead = -time.Hour },
	} {
		o := ok
		change(&o)
		if _, err := keyring.New(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// samlPolicy is the SAML IdP's yearly policy.
var samlPolicy = keyring.Policy{RotateEvery: 365 * day, PublishAhead: 30 * day, KeepAfter: day}

// samlRing is a ring with the SAML IdP's policy (ES256 keys, quicker to
// make than RSA ones, rotate the same).
func (e *env) samlRing(st flows.Store) *keyring.Ring {
	e.t.Helper()
	r, err := keyring.New(keyring.Options{Store: st, Seal: e.seal, Clock: e.clock, Use: flows.KeyUseSAML,
		Algs: []keyring.Alg{keyring.ES256}, Policy: samlPolicy, Defaults: oidcDefaults})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// stored returns the ids of the keys of use the store publishes now.
func (e *env) stored(use flows.KeyUse) []string {
	e.t.Helper()
	ks, err := e.store.ListKeys(e.ctx, use, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	ids := make([]string, len(ks))
	for i, k := range ks {
		ids[i] = k.ID
	}
	return ids
}

// selfSigned returns a self-signed certificate of priv.
func selfSigned(t *testing.T, priv crypto.Signer, cn string, now time.Time) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(2 * 365 * day), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// storeKey stores an ES256 key of use made at created that signs from
// active, as an instance would, and returns its id.
func (e *env) storeKey(use flows.KeyUse, created, active time.Time) string {
	e.t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		e.t.Fatal(err)
	}
	id := flows.NewID()
	if err := e.store.CreateKey(e.ctx, flows.StoredKey{ID: id, Use: use, Alg: string(keyring.ES256),
		Sealed: e.seal.Seal(der, []byte(id)), Cert: selfSigned(e.t, priv, "stored "+id, created),
		CreatedAt: created, ActiveAt: active}); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// TestKeyringRotateInPublishWindow: a rotation forced while the next key
// is published retires the replaced key KeepAfter later (not at its
// scheduled time, weeks away) and the next key at once, so that it never
// signs after the forced one.
func TestKeyringRotateInPublishWindow(t *testing.T) {
	e := newEnv(t)
	r := e.samlRing(e.store)
	first := e.signing(r, keyring.ES256)

	// Forced on day 336, a day into the next key's 30 days.
	e.clock.Advance(336 * day)
	if ids := e.current(r); len(ids) != 2 || ids[0] != first.ID {
		t.Fatalf("day 336: SAML keys %v, want the first and the next", ids)
	}
	if _, err := r.Rotate(e.ctx); err != nil {
		t.Fatal(err)
	}
	forced := e.signing(r, keyring.ES256)
	if ids := e.current(r); len(ids) != 2 || ids[0] != first.ID || ids[1] != forced.ID {
		t.Fatalf("after the rotation: SAML keys %v, want the first %s (retiring) and the forced %s", ids, first.ID, forced.ID)
	}
	e.clock.Advance(day + time.Minute)
	if ids := e.current(r); len(ids) != 1 || ids[0] != forced.ID {
		t.Fatalf("a day after the forced rotation: SAML keys %v, want only %s", ids, forced.ID)
	}

	// Forced at 364.5 days into the forced key's year, its next key due
	// at 365: the next key leaves, and the forced one signs after 365.
	e.clock.Advance(335*day - 2*time.Minute)
	ids := e.current(r)
	if len(ids) != 2 {
		t.Fatalf("30 days before the next rotation: SAML keys %v", ids)
	}
	next := ids[1]
	e.clock.Advance(29*day + 12*time.Hour)
	if _, err := r.Rotate(e.ctx); err != nil {
		t.Fatal(err)
	}
	again := e.signing(r, keyring.ES256)
	if again.ID == forced.ID || again.ID == next {
		t.Fatalf("the second forced rotation made no key: %s signs", again.ID)
	}
	if ids := e.current(r); slices.Contains(ids, next) {
		t.Errorf("after the forced rotation, the next key %s that never signed is still published: %v", next, ids)
	}
	e.clock.Advance(13 * time.Hour) // past the next key's ActiveAt
	if k := e.signing(r, keyring.ES256); k.ID != again.ID {
		t.Errorf("13 hours after the forced rotation, %s signs, want the forced key %s", k.ID, again.ID)
	}
	if s, n := e.signers(r); n != 2 || s["ES256"] != again.ID {
		t.Errorf("13 hours after: signers %v, %d keys published (want the forced keys)", s, n)
	}
}

// TestKeyringSigningAgrees: the rotation check takes the key Signing
// returns for the signing one, even when a key made later signs from
// earlier, so it retires the other.
func TestKeyringSigningAgrees(t *testing.T) {
	e := newEnv(t)
	t0 := e.clock.Now()
	a := e.storeKey(flows.KeyUseOIDC, t0, t0.Add(day))                      // a next key
	b := e.storeKey(flows.KeyUseOIDC, t0.Add(time.Hour), t0.Add(time.Hour)) // made later, signing from earlier
	e.clock.Advance(day + time.Minute)
	r := e.ring(keyring.Options{Use: flows.KeyUseOIDC, Algs: []keyring.Alg{keyring.ES256}, Defaults: oidcDefaults})
	if k := e.signing(r, keyring.ES256); k.ID != a {
		t.Fatalf("%s signs, want %s (the later ActiveAt)", k.ID, a)
	}
	e.clock.Advance(day + time.Minute)
	if k := e.signing(r, keyring.ES256); k.ID != a {
		t.Errorf("a day later %s signs, want still %s", k.ID, a)
	}
	if ids := e.current(r); len(ids) != 1 || ids[0] != a {
		t.Errorf("a day later: keys %v, want only %s (%s retired)", ids, a, b)
	}
}

// TestKeyringCertificateMismatch: a certificate put in the store for
// another key than the sealed one is refused, not published.
func TestKeyringCertificateMismatch(t *testing.T) {
	e := newEnv(t)
	k := e.signing(e.oidcRing(), keyring.ES256)

	// An intruder who can write the database, but has not the seal key,
	// puts in a certificate of their own key.
	theirs, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(e.path)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.ExecContext(e.ctx, "UPDATE server_keys SET cert = ? WHERE id = ?",
		selfSigned(t, theirs, k.Cert.Subject.CommonName, e.clock.Now()), k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("update: %d rows, %v", n, err)
	}

	_, err = e.oidcRing().Current(e.ctx)
	if want := "signing key " + k.ID + ": the certificate does not match the key"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Current with a swapped certificate: %v, want %q", err, want)
	}
}

// racingStore runs race once, after the next ListKeys has read the keys and
// before it returns them: another instance acts between this one's look
// and its change.
type racingStore struct {
	flows.Store
	race func()
}

func (s *racingStore) ListKeys(ctx context.Context, use flows.KeyUse, now time.Time) ([]flows.StoredKey, error) {
	ks, err := s.Store.ListKeys(ctx, use, now)
	if f := s.race; f != nil {
		s.race = nil
		f()
	}
	return ks, err
}

// TestKeyringTwins: two instances that each see no next key (or no key)
// make one each; on its next look a ring retires all but one, the next
// twin at once, the active one KeepAfter later, and both rings sign with
// the same keys.
func TestKeyringTwins(t *testing.T) {
	e := newEnv(t)
	t0 := e.clock.Now()
	rs := &racingStore{Store: e.store}
	a, b := e.samlRing(e.store), e.samlRing(rs)

	// First start: both make a signing key.
	rs.race = func() { e.current(a) }
	e.current(b)
	if ids := e.stored(flows.KeyUseSAML); len(ids) != 2 {
		t.Fatalf("first start raced: stored keys %v, want twins", ids)
	}
	e.clock.Advance(time.Minute)
	signing := e.signing(a, keyring.ES256)
	if k := e.signing(b, keyring.ES256); k.ID != signing.ID {
		t.Fatalf("instance a signs with %s, b with %s", signing.ID, k.ID)
	}
	e.clock.Advance(day + time.Minute)
	if ids := e.stored(flows.KeyUseSAML); len(ids) != 1 || ids[0] != signing.ID {
		t.Fatalf("a day after the twin signing keys: stored %v, want only %s", ids, signing.ID)
	}

	// 30 days before the year is up: both publish a next key.
	e.clock.Advance(t0.Add(335*day + time.Minute).Sub(e.clock.Now()))
	rs.race = func() { e.current(a) }
	e.current(b)
	stored, err := e.store.ListKeys(e.ctx, flows.KeyUseSAML, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 3 {
		t.Fatalf("the next key raced: %d stored keys, want the signing one and twin next ones", len(stored))
	}
	e.clock.Advance(time.Minute)
	ka, kb := e.current(a), e.current(b)
	if len(ka) != 2 || !slices.Equal(ka, kb) || ka[0] != signing.ID {
		t.Fatalf("after the next look: a has %v, b %v; want the signing key and one next", ka, kb)
	}
	if ids := e.stored(flows.KeyUseSAML); !slices.Equal(ids, ka) {
		t.Fatalf("the store has %v, the rings %v", ids, ka)
	}
	next := ka[1]

	e.clock.Advance(30*day + time.Minute) // past the next key's ActiveAt
	for _, r := range []*keyring.Ring{a, b} {
		if k := e.signing(r, keyring.ES256); k.ID != next {
			t.Errorf("after the rotation %s signs, want %s", k.ID, next)
		}
	}
	e.clock.Advance(day + time.Minute)
	e.current(a)
	if ids := e.stored(flows.KeyUseSAML); len(ids) != 1 || ids[0] != next {
		t.Errorf("a day after the rotation: stored %v, want only %s", ids, next)
	}
}
