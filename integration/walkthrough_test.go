package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type challenge struct {
	Event     string `json:"event"`
	ID        string `json:"id"`
	Number    string `json:"number"`
	QRPayload string `json:"qr_payload"`
}

type outcome struct {
	Event  string `json:"event"`
	ID     string `json:"id"`
	Status string `json:"status"`
	Reason string `json:"reason"`
}

type pendingList struct {
	Requests []struct {
		ID     string `json:"id"`
		Client string `json:"client"`
	} `json:"requests"`
}

type accountList struct {
	Accounts []struct {
		Username string `json:"username"`
		State    string `json:"state"`
	} `json:"accounts"`
}

// walk is one admin and one user, each with the keystep command.
type walk struct {
	t   *testing.T
	srv server
	dir string
}

func (w walk) admin(args ...string) []string {
	return append([]string{"admin", "--server", w.srv.URL, "--token-file", filepath.Join(w.srv.Data, "admin-token"), "--json"}, args...)
}

func (w walk) device(state string, args ...string) []string {
	return append([]string{"device", "--state", filepath.Join(w.dir, state), "--json"}, args...)
}

// enroll invites user and enrolls the state file's authenticator.
func (w walk) enroll(user, state string) string {
	w.t.Helper()
	var inv struct{ Link string }
	ok(w.t, &inv, w.admin("invite", user)...)
	if !strings.HasPrefix(inv.Link, "keystep://enroll?") {
		w.t.Fatalf("invitation link %q", inv.Link)
	}
	var e struct {
		DeviceID string `json:"device_id"`
		Username string `json:"username"`
	}
	ok(w.t, &e, w.device(state, "enroll", inv.Link)...)
	if e.Username != user || e.DeviceID == "" {
		w.t.Fatalf("enrolled %+v", e)
	}
	return e.DeviceID
}

// signIn starts `admin test-signin` and returns its challenge.
func (w walk) signIn(user string, extra ...string) (*streaming, challenge) {
	w.t.Helper()
	s := startStreaming(w.t, w.admin(append([]string{"test-signin", user}, extra...)...)...)
	var c challenge
	s.next(&c)
	if c.Event != "challenge" || c.ID == "" {
		w.t.Fatalf("first line of test-signin: %+v", c)
	}
	return s, c
}

// outcome reads the last line of test-signin and its exit code.
func (w walk) outcome(s *streaming) (outcome, int) {
	w.t.Helper()
	var o outcome
	s.next(&o)
	return o, s.wait()
}

// TestWalkthrough drives the README's walkthrough and the core promises of
// the troubleshooting guide through the real binary: enroll, push approve,
// deny with a report, wrong number, QR, suspend, restore, unregister, remove.
func TestWalkthrough(t *testing.T) {
	w := walk{t: t, srv: startServer(t), dir: t.TempDir()}

	var u struct{ Username, State string }
	ok(t, &u, w.admin("user", "add", "alice", "--email", "alice@example.com")...)
	if u.Username != "alice" || u.State != "active" {
		t.Fatalf("user add: %+v", u)
	}
	phone1 := w.enroll("alice", "phone1.json")

	// Push, right number: the phone sees the request (never the number) and approves.
	s, c := w.signIn("alice")
	if len(c.Number) != 2 || !strings.HasPrefix(c.QRPayload, "keystep://signin?") {
		t.Fatalf("challenge %+v", c)
	}
	var pend pendingList
	ok(t, &pend, w.device("phone1.json", "pending")...)
	if !slices.ContainsFunc(pend.Requests, func(r struct {
		ID     string `json:"id"`
		Client string `json:"client"`
	}) bool {
		return r.ID == c.ID
	}) {
		t.Fatalf("pending %+v does not hold %s", pend, c.ID)
	}
	ok(t, nil, w.device("phone1.json", "approve", c.ID, "--number", c.Number)...)
	if o, code := w.outcome(s); o.Status != "approved" || code != 0 {
		t.Fatalf("push approve: %+v, exit %d", o, code)
	}

	// Deny with "I did not start this": test-signin fails and IT sees the report.
	s, c = w.signIn("alice")
	ok(t, nil, w.device("phone1.json", "deny", c.ID, "--report")...)
	if o, code := w.outcome(s); o.Status != "denied" || code == 0 {
		t.Fatalf("deny with report: %+v, exit %d", o, code)
	}
	if out := keystep(t, w.admin("audit")...).Stdout; !strings.Contains(out, "signin.fraud_reported") {
		t.Fatalf("audit log has no fraud report:\n%s", out)
	}

	// A wrong number denies.
	s, c = w.signIn("alice")
	wrong := "10"
	if c.Number == wrong {
		wrong = "11"
	}
	refused(t, w.device("phone1.json", "approve", c.ID, "--number", wrong)...)
	if o, code := w.outcome(s); o.Status != "denied" || code == 0 {
		t.Fatalf("wrong number: %+v, exit %d", o, code)
	}

	// QR: the phone scans the payload and approves.
	s, c = w.signIn("alice", "--method", "qr")
	if c.Number != "" {
		t.Fatalf("QR-only sign-in shows a number: %+v", c)
	}
	ok(t, nil, w.device("phone1.json", "scan", c.QRPayload)...)
	if o, code := w.outcome(s); o.Status != "approved" || code != 0 {
		t.Fatalf("QR approve: %+v, exit %d", o, code)
	}

	// Suspended: refused, and the app says so; restored: works again.
	ok(t, nil, w.admin("user", "suspend", "alice", "--reason", "on leave")...)
	if msg := refused(t, w.admin("test-signin", "alice")...); !strings.Contains(msg, "suspended") {
		t.Fatalf("test-signin while suspended: %q", msg)
	}
	var accts accountList
	ok(t, &accts, w.device("phone1.json", "accounts")...)
	if len(accts.Accounts) != 1 || accts.Accounts[0].State != "suspended" {
		t.Fatalf("device accounts while suspended: %+v", accts)
	}
	ok(t, nil, w.admin("user", "restore", "alice")...)
	s, c = w.signIn("alice")
	ok(t, nil, w.device("phone1.json", "approve", c.ID, "--number", c.Number)...)
	if o, code := w.outcome(s); o.Status != "approved" || code != 0 {
		t.Fatalf("approve after restore: %+v, exit %d", o, code)
	}

	// A lost phone is unregistered and can approve nothing; the new one can.
	w.enroll("alice", "phone2.json")
	ok(t, nil, w.admin("device", "unregister", "alice", phone1, "--reason", "phone lost")...)
	s, c = w.signIn("alice")
	refused(t, w.device("phone1.json", "approve", c.ID, "--number", c.Number)...)
	ok(t, nil, w.device("phone2.json", "approve", c.ID, "--number", c.Number)...)
	if o, code := w.outcome(s); o.Status != "approved" || code != 0 {
		t.Fatalf("approve with the new phone: %+v, exit %d", o, code)
	}

	// Removed: the account disappears from the app.
	ok(t, nil, w.admin("user", "remove", "alice", "--reason", "left the company")...)
	ok(t, &accts, w.device("phone2.json", "accounts")...) // learns of the removal and drops it
	ok(t, &accts, w.device("phone2.json", "accounts")...)
	if len(accts.Accounts) != 0 {
		t.Fatalf("removed account still in the app: %+v", accts)
	}
	refused(t, w.admin("test-signin", "alice")...)

	var v struct {
		OK     bool  `json:"ok"`
		Events int64 `json:"events"`
	}
	ok(t, &v, w.admin("audit", "verify")...)
	if !v.OK || v.Events < 20 {
		t.Fatalf("audit verify: %+v", v)
	}
}

// keystepIn runs one command of the binary with stdin as its standard input.
func keystepIn(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(keystepBin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
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

// TestOverrideWalkthrough is the guide's promise for a user without their
// phone, through the real binary: IT issues an override code, the user
// signs in with it once, the same code is refused after, guessing locks the
// account's codes, and an admin unlock lets the right code in again.
func TestOverrideWalkthrough(t *testing.T) {
	w := walk{t: t, srv: startServer(t), dir: t.TempDir()}
	ok(t, nil, w.admin("user", "add", "alice", "--email", "alice@example.com")...)
	w.enroll("alice", "phone.json")
	ok(t, nil, w.admin("device", "unregister", "alice", "--all", "--reason", "phone left at home")...)

	var oc struct {
		Code      string `json:"code"`
		User      string `json:"user"`
		ExpiresAt string `json:"expires_at"`
	}
	ok(t, &oc, w.admin("override", "alice", "--ttl", "4h", "--reason", "phone at home")...)
	if !regexp.MustCompile(`^\d{3} \d{3} \d{4}$`).MatchString(oc.Code) || oc.User != "alice" {
		t.Fatalf("override: %+v", oc)
	}
	// The code is in the admin's answer only: not in the audit log.
	if out := keystep(t, w.admin("audit")...).Stdout; strings.Contains(out, strings.ReplaceAll(oc.Code, " ", "")) || !strings.Contains(out, "override.issued") {
		t.Fatalf("audit log after issuing:\n%s", out)
	}

	signIn := func(code string) (outcome, result) {
		t.Helper()
		r := keystepIn(t, code+"\n", w.admin("test-signin", "alice", "--method", "override")...)
		lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
		var o outcome
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &o); err != nil {
			t.Fatalf("test-signin printed %q: %v\n%s", r.Stdout, err, r.Stderr)
		}
		return o, r
	}
	if o, r := signIn(oc.Code); r.Code != 0 || o.Status != "approved" {
		t.Fatalf("sign-in with the override code: %+v, exit %d\n%s", o, r.Code, r.Stderr)
	}
	if out := keystep(t, w.admin("audit")...).Stdout; !strings.Contains(out, "issued by admin") {
		t.Fatalf("the approval does not name the admin who issued the code:\n%s", out)
	}
	// The same code again: refused.
	if o, r := signIn(oc.Code); r.Code == 0 || o.Status == "approved" || !strings.Contains(r.Stderr, "wrong or no longer valid") {
		t.Fatalf("the same code twice: %+v, exit %d, %q", o, r.Code, r.Stderr)
	}
	// Guesses up to the limit (ten consecutive failures, the one above
	// included) lock the account's codes, with a message that says so.
	ok(t, &oc, w.admin("override", "alice")...)
	wrong := "000 000 0000"
	if strings.ReplaceAll(oc.Code, " ", "") == "0000000000" {
		wrong = "111 111 1111"
	}
	var last result
	for range 9 {
		_, last = signIn(wrong)
		if last.Code == 0 {
			t.Fatal("a wrong code was accepted")
		}
	}
	if !strings.Contains(last.Stderr, "locked") {
		t.Fatalf("tenth failure: %q", last.Stderr)
	}
	if _, r := signIn(oc.Code); r.Code == 0 || !strings.Contains(r.Stderr, "locked") {
		t.Fatalf("the right code while locked: exit %d, %q", r.Code, r.Stderr)
	}
	var u struct {
		CodesLocked bool `json:"codes_locked"`
		FailedCodes int  `json:"failed_codes"`
	}
	ok(t, &u, w.admin("user", "show", "alice")...)
	if !u.CodesLocked || u.FailedCodes != 10 {
		t.Fatalf("user while locked: %+v", u)
	}
	var unlocked struct {
		Username    string `json:"username"`
		CodesLocked bool   `json:"codes_locked"`
		FailedCodes int    `json:"failed_codes"`
	}
	ok(t, &unlocked, w.admin("user", "unlock", "alice")...)
	if unlocked.Username != "alice" || unlocked.CodesLocked || unlocked.FailedCodes != 0 {
		t.Fatalf("user after unlock: %+v", unlocked)
	}
	if o, r := signIn(oc.Code); r.Code != 0 || o.Status != "approved" {
		t.Fatalf("sign-in after unlock: %+v, exit %d\n%s", o, r.Code, r.Stderr)
	}
	var v struct {
		OK bool `json:"ok"`
	}
	ok(t, &v, w.admin("audit", "verify")...)
	if !v.OK {
		t.Fatal("the audit chain is broken")
	}
}
