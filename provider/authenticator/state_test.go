package authenticator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"
)

func testEnrollment(t *testing.T, user string) Enrollment {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return Enrollment{Server: "https://idp.example.com", DeviceID: "dev-" + user, AccountID: "acc-" + user, Username: user,
		EnrolledAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), PrivateKey: b64.EncodeToString(der)}
}

func TestStateRoundTripMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.json")
	st, err := LoadState(path)
	if err != nil || len(st.Enrollments) != 0 {
		t.Fatalf("LoadState(missing) = %+v, %v", st, err)
	}
	want := State{Version: StateVersion, Enrollments: []Enrollment{testEnrollment(t, "alice"), testEnrollment(t, "bob")}}
	want.Enrollments[1].Server = "http://127.0.0.1:8080"
	if err := SaveState(path, want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %04o, want 0600", fi.Mode().Perm())
	}
	got, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if _, err := got.Enrollments[0].Key(); err != nil {
		t.Errorf("Key: %v", err)
	}
}

func TestStateRefusesBadContent(t *testing.T) {
	for name, content := range map[string]string{
		"not json":      "{",
		"unknown field": `{"version":1,"enrollments":[],"extra":true}`,
		"version":       `{"version":2,"enrollments":[]}`,
		"incomplete":    `{"version":1,"enrollments":[{"server":"https://x"}]}`,
	} {
		path := filepath.Join(t.TempDir(), "device.json")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadState(path); err == nil {
			t.Errorf("%s: LoadState accepted %q", name, content)
		}
	}
}

func TestSaveStateIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "device.json")
	first := State{Enrollments: []Enrollment{testEnrollment(t, "alice")}}
	if err := SaveState(path, first); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	second := State{Enrollments: []Enrollment{testEnrollment(t, "alice"), testEnrollment(t, "bob")}}
	if err := SaveState(path, second); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// A rename puts a new file in place; writing in place would keep the inode.
	if os.SameFile(before, after) {
		t.Error("SaveState rewrote the file in place instead of renaming a new one over it")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestSaveStateFailureLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "device.json")
	// A non-empty directory where the file should be: the rename fails.
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := SaveState(path, State{Enrollments: []Enrollment{testEnrollment(t, "alice")}}); err == nil {
		t.Fatal("SaveState over a directory succeeded")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}
