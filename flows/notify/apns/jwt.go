package apns

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// parseKey reads the .p8 file: a PEM "PRIVATE KEY" block with a PKCS#8
// EC P-256 key. Errors never quote the key.
func parseKey(p8 []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(p8)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("key (KeyPEM) must be the .p8 file from Apple (a PEM PRIVATE KEY block)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("key (KeyPEM) does not hold a PKCS#8 private key")
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("key (KeyPEM) must hold an EC P-256 key")
	}
	return ek, nil
}

// tokenCache makes the provider token (an ES256 JWT) and keeps it until it
// is TokenRefresh old or APNs refuses it.
type tokenCache struct {
	key    *ecdsa.PrivateKey
	keyID  string
	teamID string

	mu     sync.Mutex
	token  string
	issued time.Time
}

// get returns the cached token, or a new one if there is none, it is
// TokenRefresh old, or the clock went back before it was issued.
func (c *tokenCache) get(now time.Time) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" {
		if age := now.Sub(c.issued); age >= 0 && age < TokenRefresh {
			return c.token, nil
		}
	}
	tok, err := signJWT(c.key, c.keyID, c.teamID, now)
	if err != nil {
		return "", err
	}
	c.token, c.issued = tok, now
	return tok, nil
}

// invalidate drops tok if it is still the cached token, so that many sends
// refused with the same token make one new token, not one each.
func (c *tokenCache) invalidate(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == tok {
		c.token = ""
	}
}

var b64 = base64.RawURLEncoding

// jwtHeader and jwtClaims are the provider token's parts, in the order
// Apple's documentation shows them.
type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

type jwtClaims struct {
	Iss string `json:"iss"`
	Iat int64  `json:"iat"`
}

// signJWT makes a provider token: {"alg":"ES256","kid":keyID} .
// {"iss":teamID,"iat":now} signed with ES256 (the signature is r||s, 32
// bytes each, as JWS requires), every part base64url without padding.
func signJWT(key *ecdsa.PrivateKey, keyID, teamID string, now time.Time) (string, error) {
	h, err := json.Marshal(jwtHeader{Alg: "ES256", Kid: keyID})
	if err != nil {
		return "", fmt.Errorf("encode header: %w", err)
	}
	c, err := json.Marshal(jwtClaims{Iss: teamID, Iat: now.Unix()})
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	der, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) != 0 {
		return "", errors.New("sign: unexpected signature encoding")
	}
	if sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.BitLen() > 256 || sig.S.BitLen() > 256 {
		return "", errors.New("sign: signature out of range")
	}
	raw := make([]byte, 64)
	sig.R.FillBytes(raw[:32])
	sig.S.FillBytes(raw[32:])
	return input + "." + b64.EncodeToString(raw), nil
}
