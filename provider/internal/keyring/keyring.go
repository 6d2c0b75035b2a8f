// Package keyring keeps a server's signing keys of one use (ID tokens,
// SAML assertions) in the store, sealed, so that every instance signs with
// the same keys, and rotates them by policy: the next key is published
// ahead of the time it signs, and a replaced key stays published for a
// while after.
package keyring

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/internal/seal"
)

// Policy says when signing keys rotate.
type Policy struct {
	// RotateEvery is how long a key signs before the next takes over.
	RotateEvery time.Duration
	// PublishAhead is how long a new key is published before it signs,
	// so that relying parties that cache keys learn it in time.
	PublishAhead time.Duration
	// KeepAfter is how long a replaced key stays published: at least the
	// lifetime of what it signed.
	KeepAfter time.Duration
}

// fill sets the zero fields of p from d.
func (p *Policy) fill(d Policy) {
	if p.RotateEvery == 0 {
		p.RotateEvery = d.RotateEvery
	}
	if p.PublishAhead == 0 {
		p.PublishAhead = d.PublishAhead
	}
	if p.KeepAfter == 0 {
		p.KeepAfter = d.KeepAfter
	}
}

// Alg is a signing algorithm, named as in JOSE (RFC 7518).
type Alg string

// The signing algorithms a Ring keeps keys for.
const (
	ES256 Alg = "ES256" // ECDSA on P-256 with SHA-256
	RS256 Alg = "RS256" // RSASSA-PKCS1-v1_5 (RSA-2048) with SHA-256
)

// Options configures a Ring.
type Options struct {
	// Store keeps the keys (required).
	Store flows.Store
	// Seal encrypts the private keys in the store (required); instances
	// that share the store must share it.
	Seal seal.Key
	// Clock is the time source (default: the system clock).
	Clock flows.Clock
	// Use is what the keys sign (required): only keys of this use are
	// listed and made.
	Use flows.KeyUse
	// Algs are the algorithms to keep a signing key for (at least one).
	Algs []Alg
	// Policy is the rotation policy; its zero fields come from Defaults.
	Policy Policy
	// Defaults fill the zero fields of Policy.
	Defaults Policy
	// CommonName prefixes the common name of the keys' self-signed
	// certificates, which is followed by the key id (default "keystep
	// <use> signing key").
	CommonName string
	// Logger gets a warning when a next key is published ahead of its
	// time, with NextKeyAdvice (what the admin must do before it signs);
	// nil: no log.
	Logger *slog.Logger
	// NextKeyAdvice ends the warning, e.g. "SPs that pin the signing
	// certificate must import it before then".
	NextKeyAdvice string
}

// Key is a published signing key, opened. Keys are shared: do not modify
// one.
type Key struct {
	// ID is the key id (kid).
	ID string
	// Alg is the algorithm the key signs with.
	Alg Alg
	// Signer is the private key: *ecdsa.PrivateKey or *rsa.PrivateKey.
	Signer crypto.Signer
	// Cert is the key's self-signed certificate.
	Cert *x509.Certificate
	// ActiveAt is when the key signs from; it is published before.
	ActiveAt time.Time
	// RetireAt is when the key leaves the published keys (zero: not set).
	RetireAt time.Time

	createdAt time.Time
}

// Info describes a published key for the admin.
type Info struct {
	ID        string    `json:"id"`                 // the key id (kid)
	Alg       string    `json:"alg"`                // "ES256", "RS256"
	Use       string    `json:"use"`                // the ring's use: "oidc", "saml"
	CreatedAt time.Time `json:"created_at"`         // published from then
	ActiveAt  time.Time `json:"active_at"`          // signs from then
	RetireAt  time.Time `json:"retire_at,omitzero"` // leaves the published keys then (zero: not set)
	Signing   bool      `json:"signing"`            // the key that signs now for its Alg
}

// Ring keeps the signing keys of one use, for every instance, in the
// store, and rotates them by policy. It is safe for concurrent use.
type Ring struct {
	store  flows.Store
	seal   seal.Key
	clock  flows.Clock
	use    flows.KeyUse
	algs   []Alg
	policy Policy
	cn     string
	log    *slog.Logger
	advice string

	mu       sync.Mutex
	keys     []*Key // published (not retired), oldest first
	loadedAt time.Time
}

// reloadEvery bounds how stale an instance's view of the keys may be.
const reloadEvery = time.Minute

// New builds a Ring from o. It makes no key: the first call that needs
// one does.
func New(o Options) (*Ring, error) {
	if o.Store == nil {
		return nil, errors.New("keyring: Options.Store is required")
	}
	if o.Seal == (seal.Key{}) {
		return nil, errors.New("keyring: Options.Seal is required")
	}
	if o.Use == "" {
		return nil, errors.New("keyring: Options.Use is required")
	}
	if len(o.Algs) == 0 {
		return nil, errors.New("keyring: Options.Algs names no algorithm")
	}
	for i, a := range o.Algs {
		if a != ES256 && a != RS256 {
			return nil, fmt.Errorf("keyring: unsupported algorithm %q", a)
		}
		if slices.Contains(o.Algs[:i], a) {
			return nil, fmt.Errorf("keyring: algorithm %s is given twice", a)
		}
	}
	o.Policy.fill(o.Defaults)
	if o.Policy.RotateEvery <= 0 || o.Policy.PublishAhead < 0 || o.Policy.KeepAfter < 0 {
		return nil, fmt.Errorf("keyring: policy %+v: RotateEvery must be positive, PublishAhead and KeepAfter not negative", o.Policy)
	}
	if o.Clock == nil {
		o.Clock = flows.SystemClock{}
	}
	if o.CommonName == "" {
		o.CommonName = "keystep " + string(o.Use) + " signing key"
	}
	return &Ring{store: o.Store, seal: o.Seal, clock: o.Clock, use: o.Use, algs: slices.Clone(o.Algs),
		policy: o.Policy, cn: o.CommonName, log: o.Logger, advice: o.NextKeyAdvice}, nil
}

// Current returns the published keys (the signing ones, the next ones and
// the retiring ones), oldest first. It reloads them from the store (and
// makes the keys the policy wants) when its view is older than a minute.
func (r *Ring) Current(ctx context.Context) ([]*Key, error) {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys != nil && now.Sub(r.loadedAt) < reloadEvery && now.Sub(r.loadedAt) >= 0 {
		return slices.Clone(r.keys), nil
	}
	keys, err := r.load(ctx, now)
	if err != nil {
		return nil, err
	}
	if keys, err = r.rotateDue(ctx, keys, now, false); err != nil {
		return nil, err
	}
	r.keys, r.loadedAt = keys, now
	return slices.Clone(keys), nil
}

// Signing returns the key that signs now for alg: the newest active one
// (see signingOf).
func (r *Ring) Signing(ctx context.Context, alg Alg) (*Key, error) {
	keys, err := r.Current(ctx)
	if err != nil {
		return nil, err
	}
	best := signingOf(keys, alg, r.clock.Now())
	if best == nil {
		return nil, fmt.Errorf("no %s signing key is active for %s", r.use, alg)
	}
	return best, nil
}

// Rotate forces a rotation: new keys sign from now, the old ones that
// have signed stay published for KeepAfter at most, and a next key that
// has not signed yet leaves at once. It returns the published keys.
func (r *Ring) Rotate(ctx context.Context) ([]Info, error) {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	keys, err := r.load(ctx, now)
	if err != nil {
		return nil, err
	}
	if keys, err = r.rotateDue(ctx, keys, now, true); err != nil {
		return nil, err
	}
	r.keys, r.loadedAt = keys, now
	return r.infoLocked(now), nil
}

// Info lists the published keys, oldest first.
func (r *Ring) Info(ctx context.Context) ([]Info, error) {
	if _, err := r.Current(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.infoLocked(r.clock.Now()), nil
}

func (r *Ring) infoLocked(now time.Time) []Info {
	out := make([]Info, 0, len(r.keys))
	for _, k := range r.keys {
		signing := k == signingOf(r.keys, k.Alg, now)
		out = append(out, Info{ID: k.ID, Alg: string(k.Alg), Use: string(r.use), CreatedAt: k.createdAt,
			ActiveAt: k.ActiveAt, RetireAt: k.RetireAt, Signing: signing})
	}
	return out
}

// load opens the stored keys of the ring's use that are published at now.
func (r *Ring) load(ctx context.Context, now time.Time) ([]*Key, error) {
	stored, err := r.store.ListKeys(ctx, r.use, now)
	if err != nil {
		return nil, fmt.Errorf("load %s signing keys: %w", r.use, err)
	}
	keys := make([]*Key, 0, len(stored))
	for _, sk := range stored {
		k, err := r.open(sk)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func (r *Ring) open(sk flows.StoredKey) (*Key, error) {
	der, err := r.seal.Open(sk.Sealed, []byte(sk.ID))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w (is codes.key_file the one this store was made with?)", sk.ID, err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", sk.ID, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s: not a signing key", sk.ID)
	}
	cert, err := x509.ParseCertificate(sk.Cert)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: certificate: %w", sk.ID, err)
	}
	// The certificate is not sealed: one who can write the store but has
	// not the seal key could put in a certificate of their own key, which
	// would be published as this key's.
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("signing key %s: the certificate does not match the key", sk.ID)
	}
	return &Key{ID: sk.ID, Alg: Alg(sk.Alg), Signer: signer, Cert: cert, ActiveAt: sk.ActiveAt, RetireAt: sk.RetireAt,
		createdAt: sk.CreatedAt}, nil
}

// signingOf returns the key of alg that signs at now, nil if none: of the
// active ones, the one with the latest ActiveAt, then (on a tie) the one
// made last, then the one that retires last, then the greatest id, so that
// every instance, and the rotation check, pick the same.
func signingOf(keys []*Key, alg Alg, now time.Time) *Key {
	var best *Key
	for _, k := range keys {
		if k.Alg == alg && !k.ActiveAt.After(now) && (best == nil || signsBefore(k, best)) {
			best = k
		}
	}
	return best
}

// signsBefore reports whether a, active, signs in preference to b.
func signsBefore(a, b *Key) bool {
	switch {
	case !a.ActiveAt.Equal(b.ActiveAt):
		return a.ActiveAt.After(b.ActiveAt)
	case !a.createdAt.Equal(b.createdAt):
		return a.createdAt.After(b.createdAt)
	case !a.RetireAt.Equal(b.RetireAt):
		return a.RetireAt.IsZero() || (!b.RetireAt.IsZero() && a.RetireAt.After(b.RetireAt))
	}
	return a.ID > b.ID
}

// nextOf returns the key of alg that signs after now, nil if none: of the
// ones not active yet, the one made first, then the least id. There is
// more than one only when instances made one each at once.
func nextOf(keys []*Key, alg Alg, now time.Time) *Key {
	var next *Key
	for _, k := range keys {
		if k.Alg == alg && k.ActiveAt.After(now) && (next == nil || k.createdAt.Before(next.createdAt) ||
			(k.createdAt.Equal(next.createdAt) && k.ID < next.ID)) {
			next = k
		}
	}
	return next
}

// rotateDue makes the keys the policy wants: for each algorithm, one that
// signs now (made active at once only when there is none, as on the first
// start or after a forced rotation), and the next one published
// PublishAhead before the current one's time is up; a replaced key
// retires KeepAfter after its successor takes over. A forced rotation
// retires at once a next key that has not signed, and the others KeepAfter
// after now (or earlier, as set before). Keys that instances made at the
// same time, each seeing none, are retired but the one signingOf or
// nextOf picks: a next key at once, an active key KeepAfter after now.
func (r *Ring) rotateDue(ctx context.Context, keys []*Key, now time.Time, force bool) ([]*Key, error) {
	changed := false
	retire := func(k *Key, at time.Time) error {
		// The store keeps an earlier time already set.
		if err := r.store.RetireKey(ctx, k.ID, at); err != nil {
			return fmt.Errorf("retire signing key %s: %w", k.ID, err)
		}
		changed = true
		return nil
	}
	for _, alg := range r.algs {
		signing, next := signingOf(keys, alg, now), nextOf(keys, alg, now)
		if force || signing == nil {
			if _, err := r.create(ctx, alg, now, now); err != nil {
				return nil, err
			}
			changed = true
			for _, old := range keys {
				if old.Alg != alg {
					continue
				}
				at := now.Add(r.policy.KeepAfter)
				if old.ActiveAt.After(now) {
					at = now // it never signed: it must not sign after the new key
				}
				if err := retire(old, at); err != nil {
					return nil, err
				}
			}
			continue
		}
		for _, k := range keys {
			switch {
			case k.Alg != alg || k == signing || k == next:
			case k.ActiveAt.After(now): // a twin of next: it never signed
				if err := retire(k, now); err != nil {
					return nil, err
				}
			case k.RetireAt.IsZero(): // a twin of the signing key
				if err := retire(k, now.Add(r.policy.KeepAfter)); err != nil {
					return nil, err
				}
			}
		}
		if next == nil && now.After(signing.ActiveAt.Add(r.policy.RotateEvery-r.policy.PublishAhead)) {
			at := signing.ActiveAt.Add(r.policy.RotateEvery)
			if at.Before(now.Add(r.policy.PublishAhead)) {
				at = now.Add(r.policy.PublishAhead)
			}
			k, err := r.create(ctx, alg, now, at)
			if err != nil {
				return nil, err
			}
			if r.log != nil {
				r.log.Warn("published the next "+string(r.use)+" signing key; it signs from active_at. "+r.advice,
					"use", string(r.use), "kid", k.ID, "alg", string(alg), "active_at", at.UTC().Format(time.RFC3339))
			}
			if err := retire(signing, at.Add(r.policy.KeepAfter)); err != nil {
				return nil, err
			}
		}
	}
	if !changed {
		return keys, nil
	}
	return r.load(ctx, now)
}

// create makes, seals and stores a new key with a self-signed certificate.
func (r *Ring) create(ctx context.Context, alg Alg, now, activeAt time.Time) (*Key, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("signing key: unsupported algorithm %s", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s signing key: %w", alg, err)
	}
	id := flows.NewID()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: r.cn + " " + id},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     activeAt.Add(r.policy.RotateEvery + r.policy.KeepAfter + 365*24*time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal signing key: %w", err)
	}
	sk := flows.StoredKey{ID: id, Use: r.use, Alg: string(alg), Sealed: r.seal.Seal(der, []byte(id)),
		Cert: certDER, CreatedAt: now, ActiveAt: activeAt}
	if err := r.store.CreateKey(ctx, sk); err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	return r.open(sk)
}
