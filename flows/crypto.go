package flows

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// b64 is the encoding of every binary value keystep puts on the wire.
var b64 = base64.RawURLEncoding

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random 128-bit identifier (26 lower-case base32 characters).
func NewID() string {
	return idEncoding.EncodeToString(randomBytes(16))
}

// validID reports whether s has the shape NewID gives or a directory id
// might have: 1 to 128 characters of letters, digits, '-', '_' or '.'.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// NewSecret returns n random bytes encoded as unpadded base64url.
func NewSecret(n int) string { return b64.EncodeToString(randomBytes(n)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("keystep: crypto/rand failed: " + err.Error()) // never happens on a working OS
	}
	return b
}

// randomDigits returns a uniformly random number of n digits with no
// leading zero (so "07" is never confused with "7").
func randomDigits(n int) string {
	lo := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n-1)), nil)
	span := new(big.Int).Sub(new(big.Int).Mul(lo, big.NewInt(10)), lo)
	v, err := rand.Int(rand.Reader, span)
	if err != nil {
		panic("keystep: crypto/rand failed: " + err.Error())
	}
	return v.Add(v, lo).String()
}

// HashSecret returns the SHA-256 of a high-entropy secret (invitation
// tokens, QR secrets) as it is stored.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// equalSecret compares a presented secret with a stored hash in constant time.
func equalSecret(secret string, hash []byte) bool {
	return subtle.ConstantTimeCompare(HashSecret(secret), hash) == 1
}

// ParsePublicKey parses a device key: PKIX DER of an ECDSA P-256 public key.
func ParsePublicKey(der []byte) (*ecdsa.PublicKey, error) {
	if len(der) == 0 || len(der) > 512 {
		return nil, invalidf("public key must be PKIX DER of a P-256 key")
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, invalidf("public key: %v", err)
	}
	ec, ok := k.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, invalidf("public key must be ECDSA P-256")
	}
	return ec, nil
}

// SignES256 signs msg with a P-256 key and returns the 64-byte r||s
// signature of JWS ES256.
func SignES256(key *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig, nil
}

// VerifyES256 checks a 64-byte r||s ES256 signature over msg.
func VerifyES256(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	h := sha256.Sum256(msg)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, h[:], r, s)
}

// Decision is what a device says about a sign-in.
type Decision string

// Decisions a device can sign.
const (
	DecisionApprove Decision = "approve"
	DecisionDeny    Decision = "deny"
	DecisionReport  Decision = "report" // deny: "I did not start this"
)

// Valid reports whether d is a known decision.
func (d Decision) Valid() bool {
	return d == DecisionApprove || d == DecisionDeny || d == DecisionReport
}

// payload joins signed fields with newlines under a version tag, refusing
// any field that itself holds a newline, so no two field lists sign alike.
func payload(tag string, fields ...string) ([]byte, error) {
	for _, f := range fields {
		if strings.ContainsAny(f, "\n\r") || len(f) > 4096 {
			return nil, invalidf("signed field is too long or holds a line break")
		}
	}
	return []byte(tag + "\n" + strings.Join(fields, "\n")), nil
}

// DecisionPayload is what a device signs to decide a sign-in: the server
// origin, the sign-in id, its nonce, the decision, the method, the number
// typed (push) or the secret scanned (QR), and the device's time.
func DecisionPayload(origin, signInID, nonce string, d Decision, m Method, number string, t time.Time) ([]byte, error) {
	return payload("keystep-decision-v1", origin, signInID, nonce, string(d), string(m), number, strconv.FormatInt(t.Unix(), 10))
}

// EnrollPayload is what a device signs to enroll: the server origin, the
// invitation token and its own public key, proving it holds the private key.
func EnrollPayload(origin, token string, publicKey []byte) ([]byte, error) {
	return payload("keystep-enroll-v1", origin, token, b64.EncodeToString(publicKey))
}

// RequestPayload is what a device signs on every device API call: the
// origin, HTTP method, path with query, time, a fresh nonce and the SHA-256
// of the body, so a captured request can neither be replayed nor altered.
func RequestPayload(origin, method, pathQuery string, t time.Time, nonce string, body []byte) ([]byte, error) {
	sum := sha256.Sum256(body)
	return payload("keystep-request-v1", origin, method, pathQuery, strconv.FormatInt(t.Unix(), 10), nonce, b64.EncodeToString(sum[:]))
}
