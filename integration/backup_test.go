package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// keystepWithEnv runs one command with extra environment settings.
func keystepWithEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(keystepBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{Stdout: out.String(), Stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	default:
		t.Fatalf("keystep %v: %v", args, err)
	}
	return r
}

type restoreOutput struct {
	Accounts []struct {
		Username string `json:"username"`
		State    string `json:"state"`
		DeviceID string `json:"device_id"`
		Replaced string `json:"replaced_device_id"`
		Detail   string `json:"detail"`
	} `json:"accounts"`
}

type deviceList struct {
	Devices []struct {
		ID               string `json:"id"`
		State            string `json:"state"`
		UnregisterReason string `json:"unregister_reason"`
	} `json:"devices"`
}

// TestBackupRestoreNewPhone keeps the guide's promise for a new phone with
// a backup: back up on the old phone, restore on the new one, and from then
// on the new phone approves while the old one is refused. A wrong
// passphrase changes nothing.
func TestBackupRestoreNewPhone(t *testing.T) {
	w := walk{t: t, srv: startServer(t), dir: t.TempDir()}
	ok(t, nil, w.admin("user", "add", "alice", "--email", "alice@example.com")...)
	phone1 := w.enroll("alice", "phone1.json")

	pass := filepath.Join(w.dir, "passphrase")
	if err := os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(w.dir, "b.json")
	var b struct {
		File     string `json:"file"`
		Accounts []struct {
			Username string `json:"username"`
			DeviceID string `json:"device_id"`
		} `json:"accounts"`
	}
	ok(t, &b, w.device("phone1.json", "backup", "--out", backup, "--passphrase-file", pass)...)
	if b.File != backup || len(b.Accounts) != 1 || b.Accounts[0].Username != "alice" || b.Accounts[0].DeviceID != phone1 {
		t.Fatalf("backup output %+v", b)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}
	blob, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(blob, []byte(`"argon2id"`)) || bytes.Contains(blob, []byte("alice")) || bytes.Contains(blob, []byte(phone1)) {
		t.Fatalf("the backup is not an encrypted envelope:\n%s", blob)
	}
	// A second backup never overwrites the first.
	if msg := refused(t, w.device("phone1.json", "backup", "--out", backup, "--passphrase-file", pass)...); !strings.Contains(msg, "exists") {
		t.Fatalf("backup over an existing file: %q", msg)
	}

	// A wrong passphrase: a clear error, no state file, the old phone still registered.
	wrong := filepath.Join(w.dir, "wrong")
	if err := os.WriteFile(wrong, []byte("not the passphrase at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	msg := refused(t, w.device("phone2.json", "restore", backup, "--passphrase-file", wrong)...)
	if !strings.Contains(msg, "wrong passphrase") || !strings.Contains(msg, "nothing was changed") {
		t.Fatalf("restore with a wrong passphrase: %q", msg)
	}
	phone2State := filepath.Join(w.dir, "phone2.json")
	if _, err := os.Stat(phone2State); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed restore left a state file: %v", err)
	}
	var devs deviceList
	ok(t, &devs, w.admin("device", "list", "alice")...)
	if len(devs.Devices) != 1 || devs.Devices[0].State != "active" {
		t.Fatalf("devices after a wrong passphrase: %+v", devs)
	}

	// Restore with the passphrase from the environment, as a script would.
	r := keystepWithEnv(t, []string{"KEYSTEP_BACKUP_PASSPHRASE=correct horse battery staple"}, w.device("phone2.json", "restore", backup)...)
	if r.Code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	var out restoreOutput
	decodeOutput(t, r.Stdout, &out)
	if len(out.Accounts) != 1 || out.Accounts[0].State != "restored" || out.Accounts[0].Replaced != phone1 || out.Accounts[0].DeviceID == "" {
		t.Fatalf("restore output %+v", out)
	}
	phone2 := out.Accounts[0].DeviceID
	if fi, err := os.Stat(phone2State); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new state file: %v, %v", fi, err)
	}

	// The old phone's approval is refused; the new phone's is taken.
	s, c := w.signIn("alice")
	if msg := refused(t, w.device("phone1.json", "approve", c.ID, "--number", c.Number)...); !strings.Contains(msg, "unregistered") {
		t.Fatalf("approve on the old phone: %q", msg)
	}
	ok(t, nil, w.device("phone2.json", "approve", c.ID, "--number", c.Number)...)
	if o, code := w.outcome(s); o.Status != "approved" || code != 0 {
		t.Fatalf("approve on the new phone: %+v, exit %d", o, code)
	}

	ok(t, &devs, w.admin("device", "list", "alice")...)
	states := map[string]string{}
	for _, d := range devs.Devices {
		states[d.ID] = d.State + ": " + d.UnregisterReason
	}
	if len(states) != 2 || states[phone1] != "unregistered: replaced by restore on device "+phone2 || states[phone2] != "active: " {
		t.Fatalf("devices after restore: %+v", states)
	}
	if out := keystep(t, w.admin("audit")...).Stdout; !strings.Contains(out, "device.rebound") {
		t.Fatalf("audit log has no re-bind:\n%s", out)
	}

	// The same backup cannot be restored twice: its device is gone. The
	// user is told to ask for a new invitation, and no state file is made.
	r = keystep(t, w.device("phone3.json", "restore", backup, "--passphrase-file", pass)...)
	decodeOutput(t, r.Stdout, &out)
	if r.Code == 0 || len(out.Accounts) != 1 || out.Accounts[0].State != "failed" || !strings.Contains(out.Accounts[0].Detail, "new invitation") {
		t.Fatalf("second restore: exit %d, %+v\n%s", r.Code, out, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "phone3.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused restore left a state file: %v", err)
	}
	// Nor restored over a state file that has enrollments.
	if msg := refused(t, w.device("phone2.json", "restore", backup, "--passphrase-file", pass)...); !strings.Contains(msg, "already holds") {
		t.Fatalf("restore over enrollments: %q", msg)
	}
}

// decodeOutput decodes a command's JSON output into v.
func decodeOutput(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, s)
	}
}
