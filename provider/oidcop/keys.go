package oidcop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is defined as a SHA-1 thumbprint (RFC 7517 §4.8)
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/internal/seal"
)

// Signing algorithms keystep signs ID tokens with.
var signingAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256}

// KeyPolicy says when signing keys rotate.
type KeyPolicy struct {
	// RotateEvery is how long a key signs before the next takes over
	// (default 90 days).
	RotateEvery time.Duration
	// PublishAhead is how long a new key is published before it signs
	// (default 24 h: Entra ID and others cache key sets for a day).
	PublishAhead time.Duration
	// KeepAfter is how long a replaced key stays published: at least the
	// longest ID token lifetime (default 24 h).
	KeepAfter time.Duration
}

func (p *KeyPolicy) setDefaults() {
	if p.RotateEvery == 0 {
		p.RotateEvery = 90 * 24 * time.Hour
	}
	if p.PublishAhead == 0 {
		p.PublishAhead = 24 * time.Hour
	}
	if p.KeepAfter == 0 {
		p.KeepAfter = 24 * time.Hour
	}
}

// signingKey is a stored key, opened.
type signingKey struct {
	id       string
	alg      jose.SignatureAlgorithm
	priv     crypto.Signer
	cert     *x509.Certificate
	activeAt time.Time
	retireAt time.Time
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *signingKey) Key() any                                    { return k.priv }
func (k *signingKey) ID() string                                  { return k.id }

// publicKey is a published key, as op.Key.
type publicKey struct{ k *signingKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return p.k.alg }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return p.k.priv.Public() }

// jwk is the key as published, with its certificate (x5c) and thumbprints.
func (k *signingKey) jwk() jose.JSONWebKey {
	s1 := sha1.Sum(k.cert.Raw) //nolint:gosec // thumbprint, not a signature
	s256 := sha256.Sum256(k.cert.Raw)
	return jose.JSONWebKey{
		Key: k.priv.Public(), KeyID: k.id, Algorithm: string(k.alg), Use: "sig",
		Certificates:                []*x509.Certificate{k.cert},
		CertificateThumbprintSHA1:   s1[:],
		CertificateThumbprintSHA256: s256[:],
	}
}

// KeyInfo describes a signing key for the admin.
type KeyInfo struct {
	ID        string    `json:"id"`
	Alg       string    `json:"alg"`
	CreatedAt time.Time `json:"created_at"`
	ActiveAt  time.Time `json:"active_at"`
	RetireAt  time.Time `json:"retire_at,omitzero"`
	Signing   bool      `json:"signing"`
}

// keyring keeps the signing keys of every instance in the store, sealed,
// and rotates them by policy.
type keyring struct {
	store  flows.Store
	seal   seal.Key
	clock  flows.Clock
	policy KeyPolicy

	mu       sync.Mutex
	keys     []*signingKey // published (not retired), oldest first
	loadedAt time.Time
}

// reloadEvery bounds how stale an instance's view of the keys may be.
const reloadEvery = time.Minute

// current returns the published keys, reloading (and rotating) them when
// the cached view is older than reloadEvery.
func (r *keyring) current(ctx context.Context) ([]*signingKey, error) {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys != nil && now.Sub(r.loadedAt) < reloadEvery && now.Sub(r.loadedAt) >= 0 {
		return r.keys, nil
	}
	keys, err := r.load(ctx, now)
	if err != nil {
		return nil, err
	}
	if keys, err = r.rotateDue(ctx, keys, now, false); err != nil {
		return nil, err
	}
	r.keys, r.loadedAt = keys, now
	return keys, nil
}

// load opens the stored keys that are published at now.
func (r *keyring) load(ctx context.Context, now time.Time) ([]*signingKey, error) {
	stored, err := r.store.ListKeys(ctx, flows.KeyUseOIDC, now)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	keys := make([]*signingKey, 0, len(stored))
	for _, sk := range stored {
		k, err := r.open(sk)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func (r *keyring) open(sk flows.StoredKey) (*signingKey, error) {
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
	return &signingKey{id: sk.ID, alg: jose.SignatureAlgorithm(sk.Alg), priv: signer, cert: cert,
		activeAt: sk.ActiveAt, retireAt: sk.RetireAt}, nil
}

// rotateDue makes the keys the policy wants: for each algorithm, one that
// signs now (made active at once only when there is none, as on the first
// start or after a forced rotation), and the next one published
// PublishAhead before the current one's time is up; a replaced key
// retires KeepAfter after its successor takes over.
func (r *keyring) rotateDue(ctx context.Context, keys []*signingKey, now time.Time, force bool) ([]*signingKey, error) {
	changed := false
	for _, alg := range signingAlgs {
		var signing, next *signingKey
		for _, k := range keys {
			if k.alg != alg {
				continue
			}
			if !k.activeAt.After(now) {
				signing = k // newest active wins
			} else {
				next = k
			}
		}
		switch {
		case force || signing == nil:
			if _, err := r.create(ctx, alg, now, now); err != nil {
				return nil, err
			}
			for _, old := range keys {
				if old.alg == alg && old.retireAt.IsZero() {
					if err := r.store.RetireKey(ctx, old.id, now.Add(r.policy.KeepAfter)); err != nil {
						return nil, fmt.Errorf("retire signing key %s: %w", old.id, err)
					}
				}
			}
			changed = true
		case next == nil && now.After(signing.activeAt.Add(r.policy.RotateEvery-r.policy.PublishAhead)):
			at := signing.activeAt.Add(r.policy.RotateEvery)
			if at.Before(now.Add(r.policy.PublishAhead)) {
				at = now.Add(r.policy.PublishAhead)
			}
			if _, err := r.create(ctx, alg, now, at); err != nil {
				return nil, err
			}
			if err := r.store.RetireKey(ctx, signing.id, at.Add(r.policy.KeepAfter)); err != nil {
				return nil, fmt.Errorf("retire signing key %s: %w", signing.id, err)
			}
			changed = true
		}
	}
	if !changed {
		return keys, nil
	}
	return r.load(ctx, now)
}

// create makes, seals and stores a new key with a self-signed certificate.
func (r *keyring) create(ctx context.Context, alg jose.SignatureAlgorithm, now, activeAt time.Time) (*signingKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
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
		Subject:      pkix.Name{CommonName: "keystep ID token signing key " + id},
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
	sk := flows.StoredKey{ID: id, Use: flows.KeyUseOIDC, Alg: string(alg), Sealed: r.seal.Seal(der, []byte(id)),
		Cert: certDER, CreatedAt: now, ActiveAt: activeAt}
	if err := r.store.CreateKey(ctx, sk); err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	return r.open(sk)
}

// signer returns the key that signs now for alg: the newest active one.
func (r *keyring) signer(ctx context.Context, alg jose.SignatureAlgorithm) (*signingKey, error) {
	keys, err := r.current(ctx)
	if err != nil {
		return nil, err
	}
	now := r.clock.Now()
	var best *signingKey
	for _, k := range keys {
		if k.alg == alg && !k.activeAt.After(now) && (best == nil || !k.activeAt.Before(best.activeAt)) {
			best = k
		}
	}
	if best == nil {
		return nil, errors.New("no signing key is active for " + string(alg))
	}
	return best, nil
}

// Rotate forces a rotation: new keys sign from now, the old ones stay
// published for KeepAfter.
func (r *keyring) Rotate(ctx context.Context) ([]KeyInfo, error) {
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

// Info lists the published keys.
func (r *keyring) Info(ctx context.Context) ([]KeyInfo, error) {
	if _, err := r.current(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.infoLocked(r.clock.Now()), nil
}

func (r *keyring) infoLocked(now time.Time) []KeyInfo {
	out := make([]KeyInfo, 0, len(r.keys))
	for _, k := range r.keys {
		signing := !k.activeAt.After(now) && !slices.ContainsFunc(r.keys, func(o *signingKey) bool {
			return o.alg == k.alg && !o.activeAt.After(now) && o.activeAt.After(k.activeAt)
		})
		out = append(out, KeyInfo{ID: k.id, Alg: string(k.alg), CreatedAt: k.cert.NotBefore.Add(time.Hour), ActiveAt: k.activeAt,
			RetireAt: k.retireAt, Signing: signing})
	}
	return out
}

// keySet is every published key, for the OP's own verification.
func (r *keyring) keySet(ctx context.Context) ([]op.Key, error) {
	keys, err := r.current(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]op.Key, len(keys))
	for i, k := range keys {
		out[i] = publicKey{k}
	}
	return out, nil
}

// jwks is the published key set with certificates.
func (r *keyring) jwks(ctx context.Context) (*jose.JSONWebKeySet, error) {
	keys, err := r.current(ctx)
	if err != nil {
		return nil, err
	}
	set := &jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, len(keys))}
	for i, k := range keys {
		set.Keys[i] = k.jwk()
	}
	return set, nil
}
