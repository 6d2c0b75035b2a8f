package authenticator

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// StateVersion is the version of the state file format this package writes.
const StateVersion = 1

// maxStateFile bounds what LoadState reads.
const maxStateFile = 4 << 20

// State is what the authenticator keeps between runs: one entry per
// enrolled account, each with its own device key.
type State struct {
	Version     int          `json:"version"`
	Enrollments []Enrollment `json:"enrollments"`
}

// Enrollment is one account enrolled on this authenticator.
type Enrollment struct {
	// Server is the server URL from the enrollment link, exactly as given:
	// it is the origin every signature names.
	Server      string    `json:"server"`
	DeviceID    string    `json:"device_id"`
	AccountID   string    `json:"account_id"`
	Username    string    `json:"username"`
	DisplayName string    `json:"display_name,omitempty"`
	EnrolledAt  time.Time `json:"enrolled_at"`
	// PrivateKey is the device's P-256 private key, PKCS #8 DER in
	// unpadded base64url. It never leaves this file but to sign.
	PrivateKey string `json:"private_key"`
}

// Key decodes the enrollment's private key.
func (e Enrollment) Key() (*ecdsa.PrivateKey, error) {
	der, err := base64.RawURLEncoding.DecodeString(e.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("enrollment %s at %s: private key: %w", e.Username, e.Server, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("enrollment %s at %s: private key: %w", e.Username, e.Server, err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("enrollment %s at %s: private key is not ECDSA", e.Username, e.Server)
	}
	return ec, nil
}

// Label names the enrollment for people: "alice at https://idp.example.com".
func (e Enrollment) Label() string { return e.Username + " at " + e.Server }

// LoadState reads a state file. A file that does not exist is an empty
// state. A file that group or others may read or write is refused: it holds
// private keys.
func LoadState(path string) (State, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{Version: StateVersion}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read state: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return State{}, fmt.Errorf("read state: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return State{}, fmt.Errorf("read state: %s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return State{}, fmt.Errorf("read state: %s holds private keys but is open to other users (mode %04o); run chmod 600 %s if it is yours", path, fi.Mode().Perm(), path)
	}
	if fi.Size() > maxStateFile {
		return State{}, fmt.Errorf("read state: %s is larger than %d bytes", path, maxStateFile)
	}
	var st State
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return State{}, fmt.Errorf("read state %s: %w", path, err)
	}
	if st.Version != StateVersion {
		return State{}, fmt.Errorf("read state %s: unsupported version %d", path, st.Version)
	}
	for i, e := range st.Enrollments {
		if e.Server == "" || e.DeviceID == "" || e.PrivateKey == "" {
			return State{}, fmt.Errorf("read state %s: enrollment %d is incomplete", path, i+1)
		}
	}
	return st, nil
}

// SaveState writes a state file atomically with mode 0600: it writes a
// temporary file beside it, syncs it, and renames it over the old one, so a
// crash leaves either the old state or the new one, never half of one.
func SaveState(path string, st State) error {
	st.Version = StateVersion
	if st.Enrollments == nil {
		st.Enrollments = []Enrollment{}
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	done = true
	if d, err := os.Open(dir); err == nil { // make the rename itself durable
		d.Sync()
		d.Close()
	}
	return nil
}
