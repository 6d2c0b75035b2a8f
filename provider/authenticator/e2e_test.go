package authenticator_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/provider"
	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
	"github.com/keystep/keystep/provider/authenticator"
)

const adminToken = "admin-token-for-e2e-tests-0123456789"

// server is a real provider.Server on a real SQLite store, served over
// loopback HTTP, with a fake clock that the authenticator shares.
type server struct {
	origin string
	admin  *adminclient.Client
	svc    *flows.Service
}

func startServer(t *testing.T, clock *clocktest.Clock) server {
	t.Helper()
	return startServerAt(t, clock, "")
}

// startServerAt serves the provider under a path prefix, as a reverse
// proxy that strips the public URL's path would; opts go to flows.New.
func startServerAt(t *testing.T, clock *clocktest.Clock, prefix string, opts ...flows.Option) server {
	t.Helper()
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := "http://" + ln.Addr().String() + prefix
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := flows.New(st, flows.Config{Origin: origin, CodeConfig: flows.CodeConfig{CodeKey: []byte("authenticator-test-code-key-0123456789")}}, append([]flows.Option{flows.WithClock(clock), flows.WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close) // waits for pushes in flight, before the store closes
	p, err := provider.New(provider.Options{Flows: svc, AdminToken: adminToken, Logger: log, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = p.Handler()
	if prefix != "" {
		h = http.StripPrefix(prefix, h)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	admin, err := adminclient.New(origin, adminToken)
	if err != nil {
		t.Fatal(err)
	}
	return server{origin: origin, admin: admin, svc: svc}
}

// enroll creates an account at srv and enrolls it on a.
func enroll(t *testing.T, ctx context.Context, srv server, a *authenticator.Authenticator, user string) authenticator.Enrollment {
	t.Helper()
	if _, err := srv.admin.AddUser(ctx, api.NewUser{Username: user, Email: user + "@example.com", DisplayName: "User " + user}); err != nil {
		t.Fatal(err)
	}
	inv, err := srv.admin.Invite(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	e, err := a.Enroll(ctx, inv.Link)
	if err != nil {
		t.Fatalf("enroll %s: %v", user, err)
	}
	if e.Server != srv.origin || e.Username != user || e.DisplayName != "User "+user || e.DeviceID == "" {
		t.Fatalf("enrollment = %+v", e)
	}
	return e
}

// events collects what Stream reports.
type events chan authenticator.Event

// next returns the next event that matches, skipping others. The timeout
// only turns a hang into a failure; nothing waits on it.
func (ch events) next(t *testing.T, what string, match func(authenticator.Event) bool) authenticator.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-ch:
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event came", what)
		}
	}
}

func requestFor(id string) func(authenticator.Event) bool {
	return func(ev authenticator.Event) bool { return ev.Kind == authenticator.EventRequest && ev.Request.ID == id }
}

func resolved(id string) func(authenticator.Event) bool {
	return func(ev authenticator.Event) bool {
		return ev.Kind == authenticator.EventResolved && ev.Resolved.ID == id
	}
}

func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	clock := clocktest.New(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	one, two := startServer(t, clock), startServer(t, clock)
	statePath := filepath.Join(t.TempDir(), "device.json")
	dev, err := authenticator.Open(statePath, authenticator.WithClock(clock.Now), authenticator.WithStreamRetry(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}

	// Enroll: alice at one server, bob at another, in one state file.
	alice := enroll(t, ctx, one, dev, "alice")
	bob := enroll(t, ctx, two, dev, "bob")
	if fi, err := os.Stat(statePath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, %v", fi, err)
	}
	if es, err := dev.Enrollments(); err != nil || len(es) != 2 {
		t.Fatalf("enrollments = %+v, %v", es, err)
	}

	// Pending via the stream: both streams open, then a push arrives live.
	streamCtx, stopStream := context.WithCancel(ctx)
	ch := make(events, 64)
	streamDone := make(chan error, 1)
	go func() { streamDone <- dev.Stream(streamCtx, func(ev authenticator.Event) { ch <- ev }) }()
	defer stopStream()
	for range 2 {
		ch.next(t, "connected", func(ev authenticator.Event) bool { return ev.Kind == authenticator.EventConnected })
	}

	// Approve with the right number.
	c1, err := one.admin.TestSignIn(ctx, "alice", "push")
	if err != nil {
		t.Fatal(err)
	}
	ev := ch.next(t, "request", requestFor(c1.ID))
	if ev.Enrollment.DeviceID != alice.DeviceID || ev.Request.Client == "" || len(ev.Request.Methods) != 1 {
		t.Fatalf("request event = %+v", ev)
	}
	pending, err := dev.Pending(ctx)
	if err != nil || len(pending) != 1 || pending[0].ID != c1.ID || pending[0].Enrollment.Username != "alice" {
		t.Fatalf("Pending = %+v, %v", pending, err)
	}
	d, err := dev.Approve(ctx, c1.ID, c1.Number)
	if err != nil || d.Status != "approved" {
		t.Fatalf("Approve = %+v, %v", d, err)
	}
	if ev := ch.next(t, "resolved", resolved(c1.ID)); ev.Resolved.Status != "approved" {
		t.Fatalf("resolved = %+v", ev.Resolved)
	}
	s, err := one.admin.WaitSignIn(ctx, c1.ID, time.Second)
	if err != nil || s.Status != "approved" || s.DecidedBy != "push" || s.DeviceID != alice.DeviceID {
		t.Fatalf("sign-in = %+v, %v", s, err)
	}

	// Deny with a report, on the second server: the request is found there.
	c2, err := two.admin.TestSignIn(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	ch.next(t, "request", requestFor(c2.ID))
	d, err = dev.Deny(ctx, c2.ID, true)
	if err != nil || d.Status != "denied" {
		t.Fatalf("Deny = %+v, %v", d, err)
	}
	s, err = two.admin.GetSignIn(ctx, c2.ID, 0)
	if err != nil || s.Status != "denied" || !s.FraudReport {
		t.Fatalf("reported sign-in = %+v, %v", s, err)
	}
	ch.next(t, "resolved", resolved(c2.ID))

	// A wrong number denies the sign-in.
	c3, err := one.admin.TestSignIn(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	ch.next(t, "request", requestFor(c3.ID))
	wrong := "99"
	if c3.Number == wrong {
		wrong = "98"
	}
	_, err = dev.Approve(ctx, c3.ID, wrong)
	if !errors.Is(err, flows.ErrWrongNumber) || !adminclient.HasType(err, api.ProblemWrongNumber) {
		t.Fatalf("Approve with a wrong number: %v", err)
	}
	s, err = one.admin.GetSignIn(ctx, c3.ID, 0)
	if err != nil || s.Status != "denied" {
		t.Fatalf("sign-in after a wrong number = %+v, %v", s, err)
	}
	if _, err := dev.Approve(ctx, c3.ID, c3.Number); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("Approve of a decided request: %v", err)
	}

	// Scan a QR: the QR-only sign-in is never pushed, and is approved by scan.
	c4, err := one.admin.TestSignIn(ctx, "alice", "qr")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := dev.Scan(ctx, c4.QRPayload)
	if err != nil || sc.Decision.Status != "approved" || sc.Request.ID != c4.ID || sc.Request.Enrollment.Username != "alice" {
		t.Fatalf("Scan = %+v, %v", sc, err)
	}
	s, err = one.admin.GetSignIn(ctx, c4.ID, 0)
	if err != nil || s.Status != "approved" || s.DecidedBy != "qr" {
		t.Fatalf("scanned sign-in = %+v, %v", s, err)
	}
	if _, err := dev.Scan(ctx, c4.QRPayload); !errors.Is(err, flows.ErrAlreadyDecided) {
		t.Fatalf("second scan: %v", err)
	}

	// A device whose clock is off is refused (the clock is injected).
	skewed, err := authenticator.Open(statePath, authenticator.WithClock(func() time.Time { return clock.Now().Add(time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := skewed.Pending(ctx); !adminclient.HasType(err, api.ProblemExpired) {
		t.Fatalf("Pending with a skewed clock: %v", err)
	}

	// Accounts: both active.
	accounts := func() map[string]authenticator.AccountStatus {
		t.Helper()
		as, err := dev.Accounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]authenticator.AccountStatus{}
		for _, a := range as {
			m[a.Enrollment.Username] = a
		}
		return m
	}
	if as := accounts(); as["alice"].State != "active" || as["bob"].State != "active" {
		t.Fatalf("accounts = %+v", as)
	}

	// Suspended: shown as suspended; its stream is closed and refused.
	if _, err := one.admin.Suspend(ctx, "alice", "on leave"); err != nil {
		t.Fatal(err)
	}
	ch.next(t, "refused stream", func(ev authenticator.Event) bool {
		return ev.Kind == authenticator.EventDisconnected && ev.Enrollment.DeviceID == alice.DeviceID && errors.Is(ev.Err, flows.ErrAccountSuspended)
	})
	if as := accounts(); as["alice"].State != "suspended" || as["alice"].Err != nil {
		t.Fatalf("accounts after suspend = %+v", as)
	}

	// Bob's device unregistered: shown as unregistered, and kept.
	if _, err := two.admin.UnregisterDevice(ctx, "bob", bob.DeviceID, "lost phone"); err != nil {
		t.Fatal(err)
	}
	if as := accounts(); as["bob"].State != authenticator.StateUnregistered || !errors.Is(as["bob"].Err, flows.ErrDeviceUnregistered) {
		t.Fatalf("accounts after unregister = %+v", as)
	}
	// With every stream refused, Stream ends and says why.
	select {
	case err := <-streamDone:
		if !errors.Is(err, flows.ErrAccountSuspended) || !errors.Is(err, flows.ErrDeviceUnregistered) {
			t.Fatalf("Stream returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stream did not end when every stream was refused")
	}

	// Removed: the account disappears from the app.
	if _, err := one.admin.Remove(ctx, "alice", "left the company"); err != nil {
		t.Fatal(err)
	}
	if as := accounts(); as["alice"].State != authenticator.StateRemoved || len(as) != 2 {
		t.Fatalf("accounts after remove = %+v", as)
	}
	es, err := dev.Enrollments()
	if err != nil || len(es) != 1 || es[0].Username != "bob" {
		t.Fatalf("enrollments after remove = %+v, %v", es, err)
	}
	if as := accounts(); len(as) != 1 {
		t.Fatalf("removed account still listed: %+v", as)
	}
}

func TestEnrollRefusals(t *testing.T) {
	ctx := context.Background()
	clock := clocktest.New(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	srv := startServer(t, clock)
	dev, err := authenticator.Open(filepath.Join(t.TempDir(), "device.json"), authenticator.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Enroll(ctx, "https://not-a-link"); !errors.Is(err, flows.ErrInvalid) {
		t.Errorf("Enroll(bad link) = %v", err)
	}
	if _, err := srv.admin.AddUser(ctx, api.NewUser{Username: "carol"}); err != nil {
		t.Fatal(err)
	}
	inv, err := srv.admin.Invite(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Enroll(ctx, inv.Link); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Enroll(ctx, inv.Link); !errors.Is(err, flows.ErrAlreadyUsed) && !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("second use of an invitation: %v", err)
	}
	if _, err := dev.Scan(ctx, flows.SignInQR{Server: "https://elsewhere.example", SignInID: "abc", Secret: flows.NewSecret(16)}.String()); err == nil {
		t.Error("Scan of another server's QR succeeded")
	}
	es, err := dev.Enrollments()
	if err != nil || len(es) != 1 {
		t.Errorf("enrollments = %+v, %v", es, err)
	}

	// Stream ends with ctx, once it is open.
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- dev.Stream(sctx, func(ev authenticator.Event) {
			if ev.Kind == authenticator.EventConnected {
				cancel()
			}
		})
	}()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Stream after cancel = %v", err)
	}
}

func TestServerBehindPathPrefix(t *testing.T) {
	ctx := context.Background()
	clock := clocktest.New(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	srv := startServerAt(t, clock, "/keystep")
	dev, err := authenticator.Open(filepath.Join(t.TempDir(), "device.json"), authenticator.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	e := enroll(t, ctx, srv, dev, "dave")
	if e.Server != srv.origin {
		t.Fatalf("enrolled at %s, not %s", e.Server, srv.origin)
	}
	c, err := srv.admin.TestSignIn(ctx, "dave", "push")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := dev.Approve(ctx, c.ID, c.Number); err != nil || d.Status != "approved" {
		t.Fatalf("Approve behind a path prefix = %+v, %v", d, err)
	}
}
