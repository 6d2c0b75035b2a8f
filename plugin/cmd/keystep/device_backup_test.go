package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeviceBackupRefusals covers what backup and restore refuse before any
// server is asked; integration/backup_test.go drives the whole round trip.
func TestDeviceBackupRefusals(t *testing.T) {
	t.Setenv(envBackupPassphrase, "")
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("pass", "correct horse battery staple\n")
	short := write("short", "short\n")
	empty := write("empty", "\n")
	notBackup := write("not-backup.json", `{"version":1}`)
	// A state file with an enrollment (its key is never used here).
	full := write("full.json", `{"version":1,"enrollments":[{"server":"https://idp.example","device_id":"d","account_id":"a","username":"alice","enrolled_at":"2026-11-27T09:00:00Z","private_key":"AA"}]}`)
	fresh := filepath.Join(dir, "fresh.json")
	out := filepath.Join(dir, "b.json")

	c := cli{t: t}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"backup without --out", []string{"device", "--state", full, "backup"}, 2, "--out is required"},
		{"backup of an empty device", []string{"device", "--state", fresh, "backup", "--out", out, "--passphrase-file", good}, 1, "nothing to back up"},
		{"short passphrase", []string{"device", "--state", full, "backup", "--out", out, "--passphrase-file", short}, 1, "at least 10 characters"},
		{"empty passphrase file", []string{"device", "--state", full, "backup", "--out", out, "--passphrase-file", empty}, 1, "is empty"},
		{"missing passphrase file", []string{"device", "--state", full, "backup", "--out", out, "--passphrase-file", filepath.Join(dir, "none")}, 1, "passphrase file"},
		{"no passphrase and no terminal", []string{"device", "--state", full, "backup", "--out", out}, 1, "--passphrase-file"},
		{"backup over a file", []string{"device", "--state", full, "backup", "--out", good, "--passphrase-file", good}, 1, "exists"},
		{"restore without a file", []string{"device", "--state", fresh, "restore"}, 2, "needs FILE"},
		{"restore of a missing file", []string{"device", "--state", fresh, "restore", filepath.Join(dir, "none"), "--passphrase-file", good}, 1, "read backup"},
		{"restore of something else", []string{"device", "--state", fresh, "restore", notBackup, "--passphrase-file", good}, 1, "not a keystep backup"},
		{"restore of a directory", []string{"device", "--state", fresh, "restore", dir, "--passphrase-file", good}, 1, "not a regular file"},
		{"restore over enrollments", []string{"device", "--state", full, "restore", notBackup, "--passphrase-file", good}, 1, "already holds 1 enrollment"},
	} {
		code, stdout, stderr := c.run(tc.args...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
			t.Errorf("%s: exit %d, %q%q; want exit %d and %q", tc.name, code, stdout, stderr, tc.code, tc.want)
		}
	}
	for _, p := range []string{out, fresh} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was created by a refused command: %v", p, err)
		}
	}
	if b, err := os.ReadFile(good); err != nil || string(b) != "correct horse battery staple\n" {
		t.Errorf("backup --out over an existing file changed it: %q, %v", b, err)
	}

	// The passphrase comes from the environment when no file is given.
	t.Setenv(envBackupPassphrase, "tiny")
	if code, _, stderr := c.run("device", "--state", full, "backup", "--out", out); code != 1 || !strings.Contains(stderr, "at least 10 characters") {
		t.Errorf("backup with %s=tiny: exit %d, %q", envBackupPassphrase, code, stderr)
	}
}

func TestReadPassphraseFile(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"correct horse battery staple\n":   "correct horse battery staple",
		"correct horse battery staple\r\n": "correct horse battery staple",
		"correct horse battery staple":     "correct horse battery staple",
		"  spaces count  \n\n":             "  spaces count  \n",
	} {
		p := filepath.Join(dir, "p")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := readPassphraseFile(p); err != nil || got != want {
			t.Errorf("file %q: %q, %v; want %q", content, got, err, want)
		}
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", maxPassphraseFile+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readPassphraseFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge passphrase file: %v", err)
	}
}
