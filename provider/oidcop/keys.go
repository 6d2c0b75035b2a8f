package oidcop

import (
	"context"
	"crypto/sha1" //nolint:gosec // x5t is defined as a SHA-1 thumbprint (RFC 7517 §4.8)
	"crypto/sha256"
	"crypto/x509"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/provider/internal/keyring"
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

// defaultKeyPolicy fills the zero fields of Options.Keys.
var defaultKeyPolicy = keyring.Policy{RotateEvery: 90 * 24 * time.Hour, PublishAhead: 24 * time.Hour, KeepAfter: 24 * time.Hour}

// keyCommonName prefixes the common name of the keys' certificates.
const keyCommonName = "keystep ID token signing key"

// KeyInfo describes a signing key for the admin.
type KeyInfo = keyring.Info

// signingKey is a ring key as op.SigningKey.
type signingKey struct{ k *keyring.Key }

func (s signingKey) SignatureAlgorithm() jose.SignatureAlgorithm {
	return jose.SignatureAlgorithm(s.k.Alg)
}
func (s signingKey) Key() any   { return s.k.Signer }
func (s signingKey) ID() string { return s.k.ID }

// publicKey is a published key, as op.Key.
type publicKey struct{ k *keyring.Key }

func (p publicKey) ID() string                         { return p.k.ID }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.SignatureAlgorithm(p.k.Alg) }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return p.k.Signer.Public() }

// jwk is the key as published, with its certificate (x5c) and thumbprints.
func jwk(k *keyring.Key) jose.JSONWebKey {
	s1 := sha1.Sum(k.Cert.Raw) //nolint:gosec // thumbprint, not a signature
	s256 := sha256.Sum256(k.Cert.Raw)
	return jose.JSONWebKey{
		Key: k.Signer.Public(), KeyID: k.ID, Algorithm: string(k.Alg), Use: "sig",
		Certificates:                []*x509.Certificate{k.Cert},
		CertificateThumbprintSHA1:   s1[:],
		CertificateThumbprintSHA256: s256[:],
	}
}

// idTokenKeys are the OP's signing keys: a keyring of use oidc.
type idTokenKeys struct{ ring *keyring.Ring }

// signer returns the key that signs now for alg.
func (r idTokenKeys) signer(ctx context.Context, alg jose.SignatureAlgorithm) (op.SigningKey, error) {
	k, err := r.ring.Signing(ctx, keyring.Alg(alg))
	if err != nil {
		return nil, err
	}
	return signingKey{k}, nil
}

// keySet is every published key, for the OP's own verification.
func (r idTokenKeys) keySet(ctx context.Context) ([]op.Key, error) {
	ks, err := r.ring.Current(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]op.Key, len(ks))
	for i, k := range ks {
		out[i] = publicKey{k}
	}
	return out, nil
}

// jwks is the published key set with certificates.
func (r idTokenKeys) jwks(ctx context.Context) (*jose.JSONWebKeySet, error) {
	ks, err := r.ring.Current(ctx)
	if err != nil {
		return nil, err
	}
	set := &jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, len(ks))}
	for i, k := range ks {
		set.Keys[i] = jwk(k)
	}
	return set, nil
}
