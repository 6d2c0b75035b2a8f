// Package seal encrypts server secrets (signing keys, cookie keys) before
// they go to the store, with AES-256-GCM under a key derived from the
// server's code key, so that a copy of the database alone reveals none.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Key is a 256-bit AES-GCM key for one purpose.
type Key struct{ aead cipher.AEAD }

// Derive makes the key for one purpose (such as "oidc-signing-keys") from
// the server's master secret (at least 32 bytes), with HKDF-SHA256.
func Derive(master []byte, purpose string) (Key, error) {
	b, err := DeriveBytes(master, purpose, 32)
	if err != nil {
		return Key{}, err
	}
	block, err := aes.NewCipher(b)
	if err != nil {
		return Key{}, fmt.Errorf("seal key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return Key{}, fmt.Errorf("seal key: %w", err)
	}
	return Key{aead: aead}, nil
}

// DeriveBytes derives n bytes for one purpose from the master secret.
func DeriveBytes(master []byte, purpose string, n int) ([]byte, error) {
	if len(master) < 32 {
		return nil, errors.New("seal: the master secret must be at least 32 bytes")
	}
	b, err := hkdf.Key(sha256.New, master, nil, "keystep "+purpose, n)
	if err != nil {
		return nil, fmt.Errorf("seal: derive %s: %w", purpose, err)
	}
	return b, nil
}

// Seal encrypts plaintext, bound to aad (such as the key's id): the result
// opens only with the same key and aad.
func (k Key) Seal(plaintext, aad []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce) // never fails (crypto/rand)
	return k.aead.Seal(nonce, nonce, plaintext, aad)
}

// Open decrypts what Seal made; an error if it was altered, sealed with
// another key or bound to another aad.
func (k Key) Open(sealed, aad []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, errors.New("seal: sealed value too short")
	}
	p, err := k.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, errors.New("seal: cannot open: wrong key or altered value")
	}
	return p, nil
}
