package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/keystep/keystep/flows"
)

// codeKeyFile is the code key's file in the data directory.
const codeKeyFile = "code-key"

// loadOrCreateCodeKey returns the code key in path (base64url of at least
// flows.MinCodeKeyLen bytes), making a new random one with mode 0600 when
// there is none and create is set. A key file others may read is refused.
func loadOrCreateCodeKey(path string, create bool) (key []byte, created bool, err error) {
	key, err = readCodeKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !create {
		return key, false, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, false, fmt.Errorf("code key: %w", err)
	}
	// Write a temporary file and link it into place: the key file appears
	// whole or not at all, and a concurrent first start cannot overwrite it.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, false, fmt.Errorf("code key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(base64.RawURLEncoding.EncodeToString(b) + "\n")
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("code key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) { // another start won the race
			key, err = readCodeKey(path)
			return key, false, err
		}
		return nil, false, fmt.Errorf("code key: %w", err)
	}
	return b, true, nil
}

// readCodeKey reads a code key file, refusing one open to others or too short.
func readCodeKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("code key: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("code key file %s is open to other users (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("code key: %w", err)
	}
	key, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < flows.MinCodeKeyLen {
		return nil, fmt.Errorf("code key file %s must hold at least %d random bytes in unpadded base64url "+
			"(make one with: head -c 32 /dev/urandom | basenc --base64url | tr -d =)", path, flows.MinCodeKeyLen)
	}
	return key, nil
}

// codeKey loads the code key: from codes.key_file when it is set (the file
// must exist: instances that share a store must share one key), else from
// <data dir>/code-key, made on first start. It says where the key is and
// whether it was just made.
func (c *Config) codeKey(dataDir string) ([]byte, string, bool, error) {
	path, create := c.Codes.KeyFile, false
	if path == "" {
		path, create = filepath.Join(dataDir, codeKeyFile), true
	}
	key, created, err := loadOrCreateCodeKey(path, create)
	if err != nil {
		return nil, "", false, err
	}
	return key, path, created, nil
}
