//go:build unix

package authenticator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStateRefusesOpenFile(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		path := filepath.Join(t.TempDir(), "device.json")
		if err := SaveState(path, State{Enrollments: []Enrollment{testEnrollment(t, "alice")}}); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadState(path)
		if err == nil || !strings.Contains(err.Error(), "open to other users") {
			t.Errorf("mode %04o: LoadState error = %v", mode, err)
		}
		if _, err := Open(path); err == nil {
			t.Errorf("mode %04o: Open accepted the file", mode)
		}
	}
}

func TestSaveStateReplacesOpenFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.json")
	if err := os.WriteFile(path, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SaveState(path, State{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %04o after saving over a 0644 file", fi.Mode().Perm())
	}
}
