package fcm

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"regexp"
	"strings"
)

// serviceAccount is what keystep takes from a service account's key file.
type serviceAccount struct {
	projectID   string
	clientEmail string
	keyID       string
	tokenURI    string
	key         *rsa.PrivateKey
}

func (sa *serviceAccount) String() string { return "service account " + sa.clientEmail }

var (
	projectPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.:\-]{0,99}$`)
	keyIDPattern   = regexp.MustCompile(`^[A-Za-z0-9_\-]{1,128}$`)
	emailPattern   = regexp.MustCompile(`^[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]{1,190}$`)
)

// minRSABits is the smallest service-account key accepted; Google makes
// 2048-bit keys.
const minRSABits = 2048

// parseServiceAccount reads a service account's key file. Errors name the
// field that is wrong and never quote the file.
func parseServiceAccount(b []byte) (*serviceAccount, error) {
	var f struct {
		Type         string `json:"type"`
		ProjectID    string `json:"project_id"`
		PrivateKeyID string `json:"private_key_id"`
		PrivateKey   string `json:"private_key"`
		ClientEmail  string `json:"client_email"`
		TokenURI     string `json:"token_uri"`
	}
	if len(b) == 0 {
		return nil, errors.New("service account: no key file (ServiceAccountJSON is empty)")
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, errors.New("service account: not a JSON key file")
	}
	if f.Type != "service_account" {
		return nil, errors.New(`service account: type must be "service_account"`)
	}
	if !projectPattern.MatchString(f.ProjectID) {
		return nil, errors.New("service account: project_id is missing or malformed")
	}
	if !emailPattern.MatchString(f.ClientEmail) {
		return nil, errors.New("service account: client_email is missing or malformed")
	}
	if !keyIDPattern.MatchString(f.PrivateKeyID) {
		return nil, errors.New("service account: private_key_id is missing or malformed")
	}
	if strings.TrimSpace(f.TokenURI) != f.TokenURI {
		return nil, errors.New("service account: token_uri is malformed")
	}
	key, err := parseRSAKey([]byte(f.PrivateKey))
	if err != nil {
		return nil, err
	}
	return &serviceAccount{
		projectID:   f.ProjectID,
		clientEmail: f.ClientEmail,
		keyID:       f.PrivateKeyID,
		tokenURI:    f.TokenURI,
		key:         key,
	}, nil
}

// parseRSAKey reads a PEM RSA private key, PKCS#8 ("PRIVATE KEY", what
// Google writes) or PKCS#1 ("RSA PRIVATE KEY").
func parseRSAKey(p []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(p)
	if block == nil {
		return nil, errors.New("service account: private_key is not a PEM key")
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("service account: private_key is not a PKCS#8 key")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("service account: private_key is not an RSA key")
		}
		key = rk
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("service account: private_key is not a PKCS#1 RSA key")
		}
		key = k
	default:
		return nil, errors.New("service account: private_key is not a PEM RSA private key")
	}
	if key.N.BitLen() < minRSABits {
		return nil, errors.New("service account: private_key is shorter than 2048 bits")
	}
	return key, nil
}
