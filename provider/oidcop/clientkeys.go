package oidcop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/flows"
)

// remoteKeys is a key set from a file or a URL (fetched again when a key
// id is unknown, at most every refetchEvery, so forged tokens naming
// random key ids cannot make keystep hammer the issuer): a private_key_jwt
// client's keys, or the keys that sign a host's id_token_hints.
type remoteKeys struct {
	hc    *http.Client
	url   string
	clock flows.Clock

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetchedAt time.Time
}

const refetchEvery = 30 * time.Second

func newClientKeys(hc *http.Client, clock flows.Clock, url, file string) (*remoteKeys, error) {
	r := &remoteKeys{hc: hc, url: url, clock: clock}
	if file != "" {
		set, err := loadKeySetFile(file)
		if err != nil {
			return nil, err
		}
		r.keys = set.keys
	}
	return r, nil
}

// key returns the key with the given id.
func (r *remoteKeys) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k := r.find(kid); k != nil {
		return k, nil
	}
	if r.url == "" || (!r.fetchedAt.IsZero() && r.clock.Now().Sub(r.fetchedAt) < refetchEvery) {
		return nil, fmt.Errorf("no client key %q", kid)
	}
	if err := r.fetch(ctx); err != nil {
		return nil, err
	}
	if k := r.find(kid); k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("no client key %q", kid)
}

func (r *remoteKeys) find(kid string) *jose.JSONWebKey {
	for i := range r.keys {
		if r.keys[i].KeyID == kid && r.keys[i].IsPublic() {
			k := r.keys[i]
			return &k
		}
	}
	return nil
}

func (r *remoteKeys) fetch(ctx context.Context) error {
	r.fetchedAt = r.clock.Now()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return fmt.Errorf("client key set: %w", err)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return fmt.Errorf("client key set: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("client key set %s: HTTP %d", r.url, resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("client key set %s: %w", r.url, err)
	}
	r.keys = set.Keys
	return nil
}

// VerifySignature checks a JWS with the key its header names.
func (r *remoteKeys) VerifySignature(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must have exactly one signature")
	}
	h := jws.Signatures[0].Header
	if h.KeyID == "" {
		return nil, errors.New("token names no key (kid)")
	}
	key, err := r.key(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	if (key.Algorithm != "" && key.Algorithm != h.Algorithm) || (key.Use != "" && key.Use != "sig") {
		return nil, fmt.Errorf("key %q is not for %s signatures", h.KeyID, h.Algorithm)
	}
	return jws.Verify(key)
}
