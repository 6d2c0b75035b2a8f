package host_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/plugin/host"
	"github.com/keystep/keystep/plugin/step"
	"github.com/keystep/keystep/provider/authenticator"
)

// keystepBin is the keystep binary TestMain builds in testDir; keystepSum
// its SHA-256.
var (
	testDir    string
	keystepBin string
	keystepSum []byte
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var err error
	if testDir, err = os.MkdirTemp("", "keystep-host-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(testDir)
	keystepBin, keystepSum, err = buildKeystep(testDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return m.Run()
}

// buildKeystep builds ./plugin/cmd/keystep from the module root into dir.
func buildKeystep(dir string) (string, []byte, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", nil, fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "keystep")
	cmd := exec.Command("go", "build", "-o", bin, "./plugin/cmd/keystep")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("build keystep: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return "", nil, err
	}
	sum := sha256.Sum256(b)
	return bin, sum[:], nil
}

// env is one plugin's data directory and configuration.
type env struct {
	dir    string
	listen string
	config []byte
}

// newEnv makes a data directory whose SQLite store holds the given users
// (added before the plugin starts, as the directory or the admin API
// would), and a configuration that listens on listen (127.0.0.1:0 when
// empty).
func newEnv(tb testing.TB, listen string, users ...string) env {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil { // as keystep asks of a data directory
		tb.Fatal(err)
	}
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if err := seedUsers(filepath.Join(dir, "keystep.db"), users...); err != nil {
		tb.Fatal(err)
	}
	cfg := fmt.Sprintf(`listen: %q
data_dir: %q
store:
  driver: sqlite
  dsn: %q
push:
  limit: 1000
  window: 1m
`, listen, dir, filepath.Join(dir, "keystep.db"))
	return env{dir: dir, listen: listen, config: []byte(cfg)}
}

// seedUsers adds active accounts to the SQLite store at path, then closes
// it before the plugin opens it.
func seedUsers(path string, users ...string) error {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	defer st.Close()
	svc, err := flows.New(st, flows.Config{Origin: "http://127.0.0.1", CodeConfig: flows.CodeConfig{CodeKey: []byte("host-test-seed-code-key-0123456789")}},
		flows.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	defer svc.Close()
	for _, u := range users {
		if _, err := svc.AddAccount(ctx, "test", flows.NewAccount{Username: u, Email: u + "@example.com", DisplayName: "User " + u}); err != nil {
			return err
		}
	}
	return nil
}

// launch starts the plugin for e and closes it at the end of the test.
func launch(tb testing.TB, e env, mod ...func(*host.Options)) *host.Client {
	tb.Helper()
	o := host.Options{Path: keystepBin, Config: e.config, Logger: testLogger(tb), StartTimeout: time.Minute}

	for _, f := range mod {
		f(&o)
	}
	c, err := host.Launch(context.Background(), o)
	if err != nil {
		tb.Fatalf("Launch: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// testLogger logs to the test's log when -v, else nowhere.
func testLogger(tb testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ tb testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// enroll opens a reference authenticator and enrolls user on it with an
// invitation made through the plugin.
func enroll(tb testing.TB, ctx context.Context, c *host.Client, user string) *authenticator.Authenticator {
	tb.Helper()
	inv, err := c.Invite(ctx, step.AccountRef{Username: user})
	if err != nil {
		tb.Fatalf("Invite %s: %v", user, err)
	}
	phone, err := authenticator.Open(filepath.Join(tb.TempDir(), user+".json"), authenticator.WithStreamRetry(20*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := phone.Enroll(ctx, inv.Link); err != nil {
		tb.Fatalf("Enroll %s: %v", user, err)
	}
	return phone
}

// approvePending approves the pending request id with number, as the user
// would tap it in the app's list.
func approvePending(ctx context.Context, phone *authenticator.Authenticator, id, number string) error {
	reqs, err := phone.Pending(ctx)
	if err != nil {
		return err
	}
	for _, r := range reqs {
		if r.ID == id {
			_, err := phone.ApproveRequest(ctx, r, number)
			return err
		}
	}
	return fmt.Errorf("request %s is not pending on the phone (%d others)", id, len(reqs))
}

// approveStreamed waits on the phone's request stream (which reconnects
// by itself while the device API is down) for the request id, and
// approves it.
func approveStreamed(ctx context.Context, phone *authenticator.Authenticator, id, number string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		once sync.Once
		res  error = errors.New("the stream ended first")
	)
	err := phone.Stream(ctx, func(ev authenticator.Event) {
		if ev.Kind != authenticator.EventRequest || ev.Request.ID != id {
			return
		}
		once.Do(func() {
			_, res = phone.ApproveRequest(ctx, authenticator.Request{Enrollment: ev.Enrollment, SignInRequest: *ev.Request}, number)
			cancel()
		})
	})
	if !errors.Is(err, context.Canceled) {
		return err
	}
	return res
}

func TestLaunchAndHealth(t *testing.T) {
	ctx := context.Background()
	c := launch(t, newEnv(t, ""))
	h, err := c.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Serving || !strings.HasPrefix(h.DeviceAPIURL, "http://127.0.0.1:") || strings.HasSuffix(h.DeviceAPIURL, ":0") {
		t.Fatalf("Health = %+v", h)
	}
	t.Logf("Health = %+v", h)
	if c.PID() <= 0 || c.PID() == os.Getpid() {
		t.Fatalf("PID = %d", c.PID())
	}
	if c.Restarts() != 0 {
		t.Fatalf("Restarts = %d", c.Restarts())
	}
}

func TestSignInThroughPlugin(t *testing.T) {
	ctx := context.Background()
	c := launch(t, newEnv(t, ""))
	added, err := c.AddAccount(ctx, step.NewAccount{Username: "alice", Email: "alice@example.com", DisplayName: "Alice"})
	if err != nil || added.ID == "" || added.State != flows.AccountActive || added.Devices != 0 {
		t.Fatalf("AddAccount = %+v, %v", added, err)
	}
	if _, err := c.AddAccount(ctx, step.NewAccount{Username: "alice", Email: "alice@example.com"}); !errors.Is(err, flows.ErrConflict) {
		t.Fatalf("AddAccount of a taken username: %v", err)
	}
	phone := enroll(t, ctx, c, "alice")
	a, err := c.GetAccount(ctx, step.AccountRef{Username: "alice"})
	if err != nil || a.ID != added.ID || a.Devices != 1 || a.State != flows.AccountActive || a.Email != "alice@example.com" {
		t.Fatalf("GetAccount = %+v, %v", a, err)
	}

	tx, err := c.Begin(ctx, step.BeginRequest{Username: "alice", Client: "Host IdP", IP: "192.0.2.7", UserAgent: "test", BindingMessage: "ref 42"})
	if err != nil {
		t.Fatal(err)
	}
	if tx.ID == "" || tx.Number == "" || tx.QRPayload == "" || !bytes.HasPrefix(tx.QRPNG, []byte("\x89PNG")) || tx.ExpiresAt.Before(time.Now()) {
		t.Fatalf("Begin = %+v", tx)
	}
	var seen []flows.SignInStatus
	type result struct {
		res step.Result
		err error
	}
	done := make(chan result, 1)
	firstStatus := make(chan struct{})
	go func() {
		var once sync.Once
		res, err := c.Await(ctx, tx.ID, func(r step.Result) {
			seen = append(seen, r.Status)
			once.Do(func() { close(firstStatus) })
		})
		done <- result{res, err}
	}()
	<-firstStatus // Await is open: the approval comes while it waits
	if err := approvePending(ctx, phone, tx.ID, tx.Number); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || !r.res.Approved() || r.res.Method != flows.MethodPush || r.res.ID != tx.ID || r.res.AccountID != a.ID || r.res.DecidedAt.IsZero() {
		t.Fatalf("Await = %+v, %v", r.res, r.err)
	}
	if len(seen) != 2 || seen[0] != flows.StatusPending || seen[1] != flows.StatusApproved {
		t.Fatalf("progress saw %v", seen)
	}
	// Decided: Await answers at once, and Cancel is refused as flows does.
	if r2, err := c.Await(ctx, tx.ID, nil); err != nil || !r2.Approved() {
		t.Fatalf("Await again = %+v, %v", r2, err)
	}
	if _, err := c.Cancel(ctx, tx.ID, "too late"); !errors.Is(err, flows.ErrAlreadyDecided) {
		t.Fatalf("Cancel of a decided sign-in: %v", err)
	}
}

func TestErrorsEndToEnd(t *testing.T) {
	ctx := context.Background()
	c := launch(t, newEnv(t, "", "bob", "carol"))

	if _, err := c.Begin(ctx, step.BeginRequest{Username: "nobody", Client: "Host IdP"}); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("Begin of an unknown user: %v", err)
	}
	if _, err := c.GetAccount(ctx, step.AccountRef{Username: "nobody"}); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("GetAccount of an unknown user: %v", err)
	}
	if _, err := c.Begin(ctx, step.BeginRequest{Username: "bob", Client: "Host IdP"}); !errors.Is(err, flows.ErrNoDevice) {
		t.Fatalf("Begin of a user without a device: %v", err)
	}
	if _, err := c.Begin(ctx, step.BeginRequest{Client: "Host IdP"}); !errors.Is(err, flows.ErrInvalid) {
		t.Fatalf("Begin naming nobody: %v", err)
	}
	if _, err := c.Await(ctx, "no-such-sign-in", nil); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("Await of an unknown sign-in: %v", err)
	}

	enroll(t, ctx, c, "carol")
	a, err := c.Suspend(ctx, step.AccountRef{Username: "carol"}, "left the company")
	if err != nil || a.State != flows.AccountSuspended || a.StateReason != "left the company" {
		t.Fatalf("Suspend = %+v, %v", a, err)
	}
	_, err = c.Begin(ctx, step.BeginRequest{Username: "carol", Client: "Host IdP"})
	if !errors.Is(err, flows.ErrAccountSuspended) {
		t.Fatalf("Begin of a suspended user: %v", err)
	}
	if !strings.Contains(err.Error(), "suspended") {
		t.Fatalf("the error does not say why: %v", err)
	}
	if _, err := c.Invite(ctx, step.AccountRef{Username: "carol"}); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Fatalf("Invite of a suspended user: %v", err)
	}
	if a, err := c.Restore(ctx, step.AccountRef{Username: "carol"}, "back"); err != nil || a.State != flows.AccountActive {
		t.Fatalf("Restore = %+v, %v", a, err)
	}
	tx, err := c.Begin(ctx, step.BeginRequest{Username: "carol", Client: "Host IdP"})
	if err != nil {
		t.Fatalf("Begin after Restore: %v", err)
	}
	if r, err := c.Cancel(ctx, tx.ID, "the user gave up"); err != nil || r.Status != flows.StatusCancelled {
		t.Fatalf("Cancel = %+v, %v", r, err)
	}
	if r, err := c.Await(ctx, tx.ID, nil); err != nil || r.Status != flows.StatusCancelled {
		t.Fatalf("Await of a cancelled sign-in = %+v, %v", r, err)
	}
}

func TestVersionNegotiation(t *testing.T) {
	e := newEnv(t, "")
	_, err := host.Launch(context.Background(), host.Options{Path: keystepBin, Config: e.config, Logger: testLogger(t), Versions: []int{9}})
	if !errors.Is(err, host.ErrIncompatibleVersion) {
		t.Fatalf("Launch asking for version 9 only: %v", err)
	}
	// The error names both sides' versions.
	if msg := err.Error(); !strings.Contains(msg, "[9]") || !strings.Contains(msg, "Plugin version: 1") {
		t.Fatalf("unclear error: %v", err)
	}
	t.Logf("version 9 only: %v", err)

	// A host that also speaks 1 gets 1.
	c := launch(t, e, func(o *host.Options) { o.Versions = []int{9, 1} })
	if _, err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestChecksum(t *testing.T) {
	e := newEnv(t, "")
	wrong := sha256.Sum256([]byte("not keystep"))
	logs := &recorder{}
	_, err := host.Launch(context.Background(), host.Options{Path: keystepBin, Config: e.config, Checksum: wrong[:], Logger: slog.New(logs)})
	if !errors.Is(err, host.ErrChecksumMismatch) {
		t.Fatalf("Launch with a wrong checksum: %v", err)
	}
	// It was never run: the plugin logged nothing.
	for _, r := range logs.all() {
		if attr(r, "component") != "go-plugin" {
			t.Fatalf("the plugin ran and logged %q", r.Message)
		}
	}
	c := launch(t, e, func(o *host.Options) { o.Checksum = keystepSum })
	if _, err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a loopback address with a port that was free just now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// killPlugin kills the plugin process with SIGKILL and returns its pid.
func killPlugin(t *testing.T, c *host.Client) int {
	t.Helper()
	pid := c.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	return pid
}

func TestRestartAfterSIGKILL(t *testing.T) {
	t.Run("await in progress", func(t *testing.T) {
		ctx := context.Background()
		// A fixed port: the phone's enrolled server URL stays valid
		// across the restart.
		c := launch(t, newEnv(t, freePort(t), "dave"))
		phone := enroll(t, ctx, c, "dave")
		tx, err := c.Begin(ctx, step.BeginRequest{Username: "dave", Client: "Host IdP"})
		if err != nil {
			t.Fatal(err)
		}
		pending := make(chan struct{}, 8)
		done := make(chan error, 1)
		var res step.Result
		go func() {
			var err error
			res, err = c.Await(ctx, tx.ID, func(r step.Result) {
				if r.Status == flows.StatusPending {
					pending <- struct{}{}
				}
			})
			done <- err
		}()
		<-pending // the stream is open on the first plugin
		old := killPlugin(t, c)
		<-pending // re-opened on the restarted plugin: the sign-in survived
		if c.PID() == old || c.Restarts() != 1 {
			t.Fatalf("after the kill: PID %d (was %d), Restarts %d", c.PID(), old, c.Restarts())
		}
		if err := approveStreamed(ctx, phone, tx.ID, tx.Number); err != nil {
			t.Fatalf("the phone's approval through the new plugin: %v", err)
		}
		if err := <-done; err != nil || !res.Approved() {
			t.Fatalf("Await across the restart = %+v, %v", res, err)
		}
	})

	t.Run("await called after the kill", func(t *testing.T) {
		ctx := context.Background()
		c := launch(t, newEnv(t, freePort(t), "erin"))
		phone := enroll(t, ctx, c, "erin")
		tx, err := c.Begin(ctx, step.BeginRequest{Username: "erin", Client: "Host IdP"})
		if err != nil {
			t.Fatal(err)
		}
		old := killPlugin(t, c)
		approved := make(chan error, 1)
		go func() { approved <- approveStreamed(ctx, phone, tx.ID, tx.Number) }()
		res, err := c.Await(ctx, tx.ID, nil)
		if err != nil || !res.Approved() {
			t.Fatalf("Await after the kill = %+v, %v", res, err)
		}
		if err := <-approved; err != nil {
			t.Fatal(err)
		}
		if c.PID() == old || c.Restarts() != 1 {
			t.Fatalf("PID %d (was %d), Restarts %d", c.PID(), old, c.Restarts())
		}
	})

	t.Run("begin after the kill", func(t *testing.T) {
		// The plugin is gone before Begin: the connection is refused
		// before anything is sent, so Begin runs on the restarted plugin.
		ctx := context.Background()
		c := launch(t, newEnv(t, freePort(t), "frank"))
		enroll(t, ctx, c, "frank")
		old := killPlugin(t, c)
		waitGone(t, old)
		tx, err := c.Begin(ctx, step.BeginRequest{Username: "frank", Client: "Host IdP"})
		if err != nil || tx.ID == "" {
			t.Fatalf("Begin after the kill = %+v, %v", tx, err)
		}
		if c.Restarts() != 1 || c.PID() == old {
			t.Fatalf("PID %d (was %d), Restarts %d", c.PID(), old, c.Restarts())
		}
	})
}

// waitGone waits until pid has exited and been reaped (go-plugin reaps
// it): a bounded retry on the condition.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still there", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAwaitHonoursContext(t *testing.T) {
	c := launch(t, newEnv(t, "", "gina"))
	enroll(t, context.Background(), c, "gina")
	tx, err := c.Begin(context.Background(), step.BeginRequest{Username: "gina", Client: "Host IdP"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	waiting := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Await(ctx, tx.ID, func(step.Result) { close(waiting) })
		done <- err
	}()
	<-waiting
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if err != context.Canceled { // ctx.Err() itself
			t.Fatalf("Await after cancel: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Await took %s to return after cancel", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Await did not return after cancel")
	}
	// A deadline works the same way, and the sign-in is still pending.
	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	if _, err := c.Await(dctx, tx.ID, nil); err != context.DeadlineExceeded {
		t.Fatalf("Await past its deadline: %v", err)
	}
	// Begin with a cancelled context is not sent.
	if _, err := c.Begin(ctx, step.BeginRequest{Username: "gina", Client: "Host IdP"}); err != context.Canceled {
		t.Fatalf("Begin with a cancelled context: %v", err)
	}
	if c.Restarts() != 0 {
		t.Fatalf("cancellation restarted the plugin %d times", c.Restarts())
	}
}

func TestClose(t *testing.T) {
	c := launch(t, newEnv(t, ""))
	pid := c.PID()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("process %d still runs after Close", pid)
	}
	if _, err := c.Health(context.Background()); !errors.Is(err, host.ErrClosed) {
		t.Fatalf("Health after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// recorder is a slog.Handler that keeps the records.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
	attrs   []slog.Attr
	parent  *recorder
}

func (r *recorder) root() *recorder {
	if r.parent != nil {
		return r.parent.root()
	}
	return r
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	root := r.root()
	root.mu.Lock()
	defer root.mu.Unlock()
	root.records = append(root.records, rec)
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{attrs: append(append([]slog.Attr(nil), r.attrs...), as...), parent: r}
}

func (r *recorder) WithGroup(string) slog.Handler { return r }

func (r *recorder) all() []slog.Record {
	root := r.root()
	root.mu.Lock()
	defer root.mu.Unlock()
	return append([]slog.Record(nil), root.records...)
}

// attr returns a record's attribute as text ("" if absent).
func attr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

func TestLogsForwarded(t *testing.T) {
	logs := &recorder{}
	e := newEnv(t, "")
	c := launch(t, e, func(o *host.Options) { o.Logger = slog.New(logs) })
	if _, err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	var fromPlugin []slog.Record
	for _, r := range logs.all() {
		if attr(r, "plugin") != "keystep" {
			t.Fatalf("a record without plugin=keystep: %q", r.Message)
		}
		if attr(r, "component") == "" && r.Message != "keystep plugin started" {
			fromPlugin = append(fromPlugin, r)
		}
	}
	if len(fromPlugin) == 0 {
		t.Fatal("no log line of the plugin reached the host's logger")
	}
	// The plugin's own lines keep their level, time and attributes.
	found := false
	for _, r := range fromPlugin {
		t.Logf("%s %s %q plugin=%s attrs=%d", r.Time.Format(time.RFC3339Nano), r.Level, r.Message, attr(r, "plugin"), r.NumAttrs())
		if r.NumAttrs() > 1 && !r.Time.IsZero() {
			found = true
		}
	}
	if !found {
		t.Fatal("no plugin record carried attributes of its own")
	}
}

func TestConcurrentCallsShareOneRestart(t *testing.T) {
	ctx := context.Background()
	c := launch(t, newEnv(t, freePort(t), "hana"))
	enroll(t, ctx, c, "hana")
	old := killPlugin(t, c)
	waitGone(t, old)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := c.GetAccount(ctx, step.AccountRef{Username: "hana"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c.Restarts() != 1 {
		t.Fatalf("Restarts = %d after one death", c.Restarts())
	}
}

// TestConfigNotInEnvironment: the configuration (which may hold secrets)
// reaches the plugin through a pipe, and is in no process environment:
// the plugin listens where the configuration says, and its
// /proc/<pid>/environ holds neither the configuration nor a marker put in
// it.
func TestConfigNotInEnvironment(t *testing.T) {
	e := newEnv(t, "")
	const marker = "secret-marker-7f3a9c"
	e.config = append(e.config, []byte("# "+marker+"\n")...)
	c := launch(t, e)
	h, err := c.Health(context.Background())
	if err != nil || !strings.HasPrefix(h.DeviceAPIURL, "http://127.0.0.1:") {
		t.Fatalf("Health = %+v, %v: the configuration did not arrive", h, err)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", c.PID()))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(environ), marker) || strings.Contains(string(environ), "data_dir") {
		t.Error("the plugin's environment holds its configuration")
	}
	if !strings.Contains(string(environ), "KEYSTEP_PLUGIN_CONFIG_FD=3") {
		t.Error("the plugin was not told to read its configuration from file descriptor 3")
	}
}
