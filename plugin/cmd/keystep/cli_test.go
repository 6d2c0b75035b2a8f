package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineWriter hands each complete line written to it to a channel, and keeps
// everything for failure messages.
type lineWriter struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	lines   chan string
}

func newLineWriter() *lineWriter { return &lineWriter{lines: make(chan string, 1000)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.lines <- string(w.partial[:i])
		w.partial = w.partial[i+1:]
	}
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

// next returns the next line that matches re. The timeout only turns a hang
// into a failure.
func (w *lineWriter) next(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l := <-w.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-timeout:
			t.Fatalf("no line matching %s; output so far:\n%s", re, w.String())
		}
	}
}

// nextJSON decodes the next line into v.
func (w *lineWriter) nextJSON(t *testing.T, v any) {
	t.Helper()
	l := w.next(t, regexp.MustCompile(`^\{.*\}$`))[0]
	if err := json.Unmarshal([]byte(l), v); err != nil {
		t.Fatalf("line %q: %v", l, err)
	}
}

// bg is a command running in the background.
type bg struct {
	out, err *lineWriter
	cancel   context.CancelFunc
	code     chan int
}

func start(args ...string) *bg {
	ctx, cancel := context.WithCancel(context.Background())
	b := &bg{out: newLineWriter(), err: newLineWriter(), cancel: cancel, code: make(chan int, 1)}
	go func() { b.code <- run(ctx, args, b.out, b.err) }()
	return b
}

// wait returns the command's exit code.
func (b *bg) wait(t *testing.T) int {
	t.Helper()
	select {
	case c := <-b.code:
		return c
	case <-time.After(30 * time.Second):
		t.Fatalf("command did not end; stderr:\n%s", b.err.String())
		return -1
	}
}

// stop interrupts the command (as Ctrl-C would) and returns its exit code.
func (b *bg) stop(t *testing.T) int {
	t.Helper()
	b.cancel()
	return b.wait(t)
}

// cli runs keystep commands against one server.
type cli struct {
	t         *testing.T
	server    string
	tokenFile string
	state     string
}

func (c cli) run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// must runs a command that must succeed.
func (c cli) must(args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code != 0 {
		c.t.Fatalf("keystep %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func (c cli) admin(args ...string) []string {
	return append([]string{"admin", "--server", c.server, "--token-file", c.tokenFile}, args...)
}

func (c cli) device(args ...string) []string {
	return append([]string{"device", "--state", c.state}, args...)
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return v
}

var listening = regexp.MustCompile(`^keystep listening on (http://127\.0\.0\.1:[0-9]+)$`)

func startServe(t *testing.T, dataDir string) (*bg, string) {
	t.Helper()
	s := start("serve", "--listen", "127.0.0.1:0", "--data", dataDir)
	m := s.err.next(t, listening)
	return s, m[1]
}

func TestCommandLineEndToEnd(t *testing.T) {
	for _, k := range []string{"KEYSTEP_LISTEN", "KEYSTEP_PUBLIC_URL", "KEYSTEP_DATA_DIR", "KEYSTEP_STORE_DRIVER", "KEYSTEP_STORE_DSN", "KEYSTEP_ADMIN_TOKEN"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	srv, url := startServe(t, dataDir)
	c := cli{t: t, server: url, tokenFile: filepath.Join(dataDir, "admin-token"), state: filepath.Join(dir, "device.json")}

	// The data directory and the admin token are private; the log names the
	// token file but never the token.
	tok, err := os.ReadFile(c.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	if len(token) != 43 {
		t.Errorf("token %q is not 32 bytes of base64url", token)
	}
	for path, want := range map[string]os.FileMode{dataDir: 0o700, c.tokenFile: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %04o", path, fi.Mode().Perm(), err, want)
		}
	}
	if log := srv.err.String(); strings.Contains(log, token) || !strings.Contains(log, c.tokenFile) {
		t.Errorf("server log shows the token or hides its file:\n%s", log)
	}

	// Users and an invitation.
	c.must(c.admin("user", "add", "alice", "--email", "alice@example.com", "--display-name", "Alice")...)
	if code, _, errs := c.run(c.admin("user", "add", "bob")...); code != 2 || !strings.Contains(errs, "--email is required") {
		t.Errorf("user add without --email: exit %d, %q", code, errs)
	}
	if code, _, errs := c.run(c.admin("user", "add", "alice", "--email", "a@example.com")...); code != 1 || !strings.Contains(errs, "alice") {
		t.Errorf("duplicate user add: exit %d, %q", code, errs)
	}
	users := decode[struct {
		Users []struct{ Username, State string }
	}](t, c.must(c.admin("--json", "user", "list")...))
	if len(users.Users) != 1 || users.Users[0].Username != "alice" || users.Users[0].State != "active" {
		t.Errorf("user list = %+v", users)
	}
	inv := decode[struct{ Link string }](t, c.must(c.admin("--json", "invite", "alice")...))
	if out := c.must(c.admin("invite", "alice", "--qr")...); !strings.Contains(out, "keystep://enroll?") || !strings.Contains(out, "█") {
		t.Errorf("invite --qr printed:\n%s", out)
	}
	if code, _, errs := c.run(c.device("enroll", inv.Link)...); code != 1 || !strings.Contains(errs, "keystep:") {
		t.Errorf("enroll with a revoked invitation: exit %d, %q", code, errs) // the --qr invite revoked it
	}
	inv = decode[struct{ Link string }](t, c.must(c.admin("--json", "invite", "alice")...))
	enrolled := decode[struct {
		Username string
		DeviceID string `json:"device_id"`
	}](t, c.must(c.device("--json", "enroll", inv.Link)...))
	if enrolled.Username != "alice" || enrolled.DeviceID == "" {
		t.Fatalf("enroll = %+v", enrolled)
	}

	// The device watches for requests; the audit log is followed.
	watch := start(c.device("--json", "pending", "--wait", "1m")...)
	follow := start(c.admin("--json", "audit", "--follow")...)

	type challenge struct {
		Event, ID, Number string
		QRPayload         string `json:"qr_payload"`
	}
	type outcome struct{ Event, ID, Status, Reason string }
	type request struct{ Event, ID, Status, Username string }

	// Push, right number: test-signin exits 0.
	ts := start(c.admin("--json", "test-signin", "alice", "--method", "push", "--timeout", "1m")...)
	var ch challenge
	ts.out.nextJSON(t, &ch)
	if ch.Event != "challenge" || ch.Number == "" || ch.QRPayload != "" {
		t.Fatalf("challenge = %+v", ch)
	}
	var rq request
	nextRequest := func() {
		t.Helper()
		for rq = (request{}); rq.Event != "request"; {
			watch.out.nextJSON(t, &rq)
		}
	}
	nextRequest()
	if rq.ID != ch.ID || rq.Username != "alice" {
		t.Fatalf("streamed request = %+v", rq)
	}
	if out := c.must(c.device("pending")...); !strings.Contains(out, ch.ID) {
		t.Errorf("pending does not list %s:\n%s", ch.ID, out)
	}
	c.must(c.device("approve", ch.ID, "--number", ch.Number)...)
	var oc outcome
	ts.out.nextJSON(t, &oc)
	if oc.Event != "outcome" || oc.Status != "approved" || ts.wait(t) != 0 {
		t.Fatalf("outcome = %+v", oc)
	}
	watch.out.nextJSON(t, &rq)
	if rq.Event != "resolved" || rq.Status != "approved" {
		t.Fatalf("resolved = %+v", rq)
	}

	// Denied with a report: test-signin exits 1.
	ts = start(c.admin("--json", "test-signin", "alice")...)
	ts.out.nextJSON(t, &ch)
	nextRequest()
	c.must(c.device("deny", rq.ID, "--report")...)
	ts.out.nextJSON(t, &oc)
	if oc.Status != "denied" || ts.wait(t) != 1 || !strings.Contains(ts.err.String(), "reported") {
		t.Fatalf("reported sign-in: %+v, %s", oc, ts.err.String())
	}

	// The wrong number: the device command fails and says why.
	ts = start(c.admin("test-signin", "alice")...)
	m := ts.out.next(t, regexp.MustCompile(`^Number to match: ([0-9]+)$`))
	nextRequest()
	wrong := "10"
	if m[1] == wrong {
		wrong = "11"
	}
	if code, _, errs := c.run(c.device("approve", rq.ID, "--number", wrong)...); code != 1 || !strings.Contains(errs, "type the number shown") {
		t.Errorf("wrong number: exit %d, %q", code, errs)
	}
	if ts.wait(t) != 1 || !strings.Contains(ts.err.String(), "wrong number") {
		t.Errorf("test-signin after a wrong number: %s", ts.err.String())
	}

	// A QR scan.
	ts = start(c.admin("--json", "test-signin", "alice", "--method", "qr")...)
	ts.out.nextJSON(t, &ch)
	scanned := decode[request](t, c.must(c.device("--json", "scan", ch.QRPayload)...))
	ts.out.nextJSON(t, &oc)
	if scanned.Status != "approved" || oc.Status != "approved" || ts.wait(t) != 0 {
		t.Fatalf("scan = %+v, outcome %+v", scanned, oc)
	}

	// The followed audit log saw it all; verify agrees.
	var ev struct {
		Seq            int64
		Action, Detail string
	}
	for ev.Action != "signin.approved" || ev.Detail != "qr" {
		follow.out.nextJSON(t, &ev)
	}
	if code := follow.stop(t); code != 0 {
		t.Errorf("audit --follow interrupted: exit %d", code)
	}
	v := decode[struct {
		OK     bool
		Events int
	}](t, c.must(c.admin("--json", "audit", "verify")...))
	if !v.OK || v.Events < 10 {
		t.Errorf("audit verify = %+v", v)
	}
	if out := c.must(c.admin("audit", "--after", "1")...); strings.Contains(out, "#1 ") || !strings.Contains(out, "#2 ") {
		t.Errorf("audit --after 1:\n%s", out)
	}

	// Suspended: the account shows it and the stream is refused.
	c.must(c.admin("user", "suspend", "alice", "--reason", "on leave")...)
	watch.err.next(t, regexp.MustCompile(`suspended — contact your IT administrator$`))
	if code := watch.wait(t); code != 1 { // its only stream is refused
		t.Errorf("pending --wait with every stream refused: exit %d", code)
	}
	type accounts struct {
		Accounts []struct{ Username, State, Detail string }
	}
	as := decode[accounts](t, c.must(c.device("--json", "accounts")...))
	if len(as.Accounts) != 1 || as.Accounts[0].State != "suspended" || !strings.Contains(as.Accounts[0].Detail, "contact your IT administrator") {
		t.Errorf("accounts after suspend = %+v", as)
	}
	if code, _, errs := c.run(c.admin("test-signin", "alice")...); code != 1 || !strings.Contains(errs, "suspended") {
		t.Errorf("test-signin of a suspended user: exit %d, %q", code, errs)
	}

	// Devices: list, unregister needs a reason.
	dl := decode[struct{ Devices []struct{ ID, State string } }](t, c.must(c.admin("--json", "device", "list", "alice")...))
	if len(dl.Devices) != 1 || dl.Devices[0].ID != enrolled.DeviceID {
		t.Errorf("device list = %+v", dl)
	}
	if code, _, _ := c.run(c.admin("device", "unregister", "alice", enrolled.DeviceID)...); code != 2 {
		t.Errorf("unregister without --reason: exit %d", code)
	}

	// Removed: the account disappears from the device.
	c.must(c.admin("user", "restore", "alice")...)
	c.must(c.admin("user", "remove", "alice", "--reason", "left")...)
	as = decode[accounts](t, c.must(c.device("--json", "accounts")...))
	if len(as.Accounts) != 1 || as.Accounts[0].State != "removed" {
		t.Errorf("accounts after remove = %+v", as)
	}
	if out := c.must(c.device("accounts")...); !strings.Contains(out, "No accounts") {
		t.Errorf("accounts after the removal was seen:\n%s", out)
	}

	// Shut down gracefully; a restart reuses the token.
	if code := srv.stop(t); code != 0 {
		t.Fatalf("serve exit %d:\n%s", code, srv.err.String())
	}
	srv, url = startServe(t, dataDir)
	defer srv.stop(t)
	if tok2, _ := os.ReadFile(c.tokenFile); string(tok2) != string(tok) || strings.Contains(srv.err.String(), "wrote a new admin token") {
		t.Error("the admin token changed on restart")
	}
	c.server = url
	t.Setenv("KEYSTEP_ADMIN_TOKEN", token)
	if out := c.must("admin", "--server", url, "user", "list", "--all"); !strings.Contains(out, "removed") {
		t.Errorf("user list --all with the token from the environment:\n%s", out)
	}
}

func TestCommandLineErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("signin:\n  number_digits: 8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := cli{t: t}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", "--config", bad}, 1, "signin.number_digits"},
		{[]string{"serve", "extra"}, 2, "takes no arguments"},
		{[]string{"serve", "--listen"}, 2, "flag needs an argument"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"admin", "user"}, 2, "needs a command"},
		{[]string{"admin", "test-signin", "alice", "--method", "fax", "--token-file", bad}, 2, "--method must be push, qr, sms, email or override"},
		{[]string{"admin", "override", "alice", "--ttl", "soon", "--token-file", bad}, 2, "--ttl must be a duration"},
		{[]string{"admin", "override"}, 2, "needs NAME"},
		{[]string{"admin", "user", "unlock"}, 2, "needs NAME"},
		{[]string{"admin", "--token-file", filepath.Join(dir, "none"), "user", "list"}, 1, "KEYSTEP_ADMIN_TOKEN"},
		{[]string{"device", "--state", filepath.Join(dir, "s.json"), "approve", "id"}, 2, "--number is required"},
		{[]string{"device", "--state", filepath.Join(dir, "s.json"), "enroll", "https://x"}, 1, "not a keystep enroll link"},
		{[]string{"device", "--state", filepath.Join(dir, "s.json"), "pending"}, 0, "No pending requests"},
	} {
		code, out, errs := c.run(tc.args...)
		if code != tc.code || !strings.Contains(out+errs, tc.want) {
			t.Errorf("keystep %s: exit %d, %q%q; want exit %d and %q", strings.Join(tc.args, " "), code, out, errs, tc.code, tc.want)
		}
	}
	// A state file others can read is refused.
	open := filepath.Join(dir, "open.json")
	if err := os.WriteFile(open, []byte(`{"version":1,"enrollments":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := c.run("device", "--state", open, "accounts"); code != 1 || !strings.Contains(errs, "open to other users") {
		t.Errorf("world-readable state: exit %d, %q", code, errs)
	}
}
