package directory

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/internal/slapdtest"
)

// running is a Source.Run in the background, with its hooks as channels.
type running struct {
	following chan string
	full      chan error
	failed    chan error
	cancel    context.CancelFunc
	done      chan error
}

// run starts e.src.Run; the test's end stops it.
func (e *syncEnv) run() *running {
	e.t.Helper()
	r := &running{following: make(chan string, 100), full: make(chan error, 100), failed: make(chan error, 100), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(e.ctx)
	r.cancel = cancel
	go func() {
		r.done <- e.src.Run(ctx, RunHooks{
			Following:  func(m string) { r.following <- m },
			FullSynced: func(_ RunReport, err error) { r.full <- err },
			Failed:     func(err error) { r.failed <- err },
		})
	}()
	e.t.Cleanup(r.stop)
	return r
}

// stop stops Run and waits for it.
func (r *running) stop() {
	r.cancel()
	<-r.done
	r.done <- context.Canceled // a second stop returns at once
}

// await receives from ch or fails the test after a generous bound.
func awaitCh[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(60 * time.Second):
		t.Fatalf("gave up waiting for %s", what)
		panic("unreachable")
	}
}

// TestSyncreplFollowsChanges: with syncrepl (refreshAndPersist), a change
// in slapd reaches the accounts without a full sync, and a disabled user
// is refused moments after the LDAP modify.
func TestSyncreplFollowsChanges(t *testing.T) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(50, "people")})
	e := newSyncEnv(t, srv, func(c *SourceConfig) { c.Incremental = "auto" })
	r := e.run()
	if err := awaitCh(t, "the first full sync", r.full); err != nil {
		t.Fatal(err)
	}
	if mode := awaitCh(t, "syncrepl to follow", r.following); mode != ModeSyncrepl {
		t.Fatalf("mode %q, want syncrepl (auto-detected)", mode)
	}
	id1 := e.account("user000001").ID

	// Disable → refused.
	start := time.Now()
	srv.LockPermanently(t, people("user000001"))
	e.waitFor("user000001 suspended", func() bool { return e.state(id1) == flows.AccountSuspended })
	if _, err := e.begin("user000001"); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Fatalf("Begin after the disable: %v", err)
	}
	t.Logf("offboarding latency (LDAP modify to Begin refusing, syncrepl): %v", time.Since(start))

	// Re-enable, change, delete, add: each arrives on its own.
	srv.Unlock(t, people("user000001"))
	e.waitFor("user000001 restored", func() bool { return e.state(id1) == flows.AccountActive })
	srv.Modify(t, people("user000002"), map[string][]string{"mobile": {"+4915123456789"}})
	e.waitFor("user000002's phone", func() bool { return e.account("user000002").Phone == "+4915123456789" })
	id3 := e.account("user000003").ID
	d, key := e.enroll("user000003")
	srv.Delete(t, people("user000003"))
	e.waitFor("user000003 removed", func() bool { return e.state(id3) == flows.AccountRemoved })
	if ch, err := e.begin("user000003"); err == nil {
		if e.approve(d, key, ch) == nil {
			t.Error("a deleted user's device approved a sign-in")
		}
	}
	if dev, err := e.store.GetDevice(e.ctx, d.ID); err != nil || dev.State != flows.DeviceUnregistered {
		t.Errorf("the deleted user's device: %+v, %v", dev, err)
	}
	_, uuid := srv.AddUser(t, "newbie", "people", map[string][]string{"mail": {"newbie@example.org"}})
	e.waitFor("newbie's account", func() bool {
		a, err := e.store.GetAccount(e.ctx, uuid)
		return err == nil && a.Username == "newbie"
	})
	moved := srv.Rename(t, people("user000004"), "uid=user000004", slapdtest.StaffDN)
	// A move changes no account field, so nothing announces it: a change
	// made after it, which arrives after it, says it has been applied.
	srv.Modify(t, moved, map[string][]string{"displayName": {"Four"}})
	e.waitFor("user000004's change after the move", func() bool { return e.account("user000004").DisplayName == "Four" })
	if ls, err := e.store.GetDirectoryLinks(e.ctx, "corp", []string{e.account("user000004").ID}); err != nil || len(ls) != 1 || !sameDNString(ls[0].DN, moved) {
		t.Errorf("the moved user's link: %+v, %v (want DN %s)", ls, err, moved)
	}
	st, err := e.src.Status(e.ctx)
	if err != nil || st.Mode != ModeSyncrepl || st.Incremental == nil || st.Incremental.Removed != 1 || st.LastChange.IsZero() {
		t.Errorf("status: %+v, %v", st, err)
	}
	select {
	case err := <-r.full:
		t.Errorf("a second full sync ran (%v); the changes should have come incrementally", err)
	default:
	}
}

func sameDNString(a, b string) bool {
	da, err1 := ldap.ParseDN(a)
	db, err2 := ldap.ParseDN(b)
	return err1 == nil && err2 == nil && da.EqualFold(db)
}

// TestSyncreplResumesFromCookie: a restarted sync resumes from the stored
// cookie: what changed while it was stopped (a disable, a delete) arrives
// in the refresh phase, without a full sync and without the server
// sending every entry again.
func TestSyncreplResumesFromCookie(t *testing.T) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(300, "people")})
	e := newSyncEnv(t, srv, nil)
	r := e.run()
	if err := awaitCh(t, "the first full sync", r.full); err != nil {
		t.Fatal(err)
	}
	awaitCh(t, "syncrepl to follow", r.following)
	srv.Modify(t, people("user000010"), map[string][]string{"displayName": {"Ten"}})
	e.waitFor("the first change", func() bool { return e.account("user000010").DisplayName == "Ten" })
	r.stop()

	id1, id2 := e.account("user000001").ID, e.account("user000002").ID
	srv.LockPermanently(t, people("user000001"))
	srv.Delete(t, people("user000002"))
	// The server restarts too: its session log is gone, so the deletes
	// come back as a present phase.
	srv.Restart(t)

	r = e.run()
	awaitCh(t, "syncrepl to follow again", r.following)
	if e.state(id1) != flows.AccountSuspended || e.state(id2) != flows.AccountRemoved {
		t.Fatalf("after the resume: %s, %s", e.state(id1), e.state(id2))
	}
	select {
	case err := <-r.full:
		t.Fatalf("a full sync ran (%v); the cookie should have been enough", err)
	default:
	}
	st, _ := e.src.Status(e.ctx)
	if st.Incremental == nil || st.Incremental.Entries > 5 {
		t.Errorf("the refresh sent %+v entries in full; a resumed sync should send only what changed", st.Incremental)
	}
	if n, _ := e.store.CountDirectoryLinks(e.ctx, "corp"); n != 299 {
		t.Errorf("accounts after the resume: %d, want 299", n)
	}
}

// TestDirectoryDown: slapd dies while the sync follows it: the accounts
// keep their states, the status says failing, and once slapd is back the
// sync resumes (after its backoff) and catches up.
func TestDirectoryDown(t *testing.T) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(20, "people")})
	e := newSyncEnv(t, srv, nil)
	r := e.run()
	if err := awaitCh(t, "the first full sync", r.full); err != nil {
		t.Fatal(err)
	}
	awaitCh(t, "syncrepl to follow", r.following)
	srv.Kill()
	awaitCh(t, "the failure", r.failed)
	st, _ := e.src.Status(e.ctx)
	if st.Health != HealthFailing || st.Failures != 1 || st.NextRetry.IsZero() {
		t.Errorf("status with slapd down: %+v", st)
	}
	if n, _ := e.store.CountDirectoryLinks(e.ctx, "corp"); n != 20 {
		t.Errorf("accounts with slapd down: %d", n)
	}
	if _, err := e.begin("user000001"); !errors.Is(err, flows.ErrNoDevice) {
		t.Errorf("Begin with slapd down (no live check): %v", err)
	}
	// Still down at the first retry: the backoff grows.
	e.clock.Advance(backoff(1))
	awaitCh(t, "the second failure", r.failed)
	if st, _ := e.src.Status(e.ctx); st.Failures != 2 {
		t.Errorf("failures: %d", st.Failures)
	}
	srv.Restart(t)
	srv.LockPermanently(t, people("user000005"))
	e.clock.Advance(backoff(2))
	awaitCh(t, "syncrepl to follow again", r.following)
	e.waitFor("user000005 suspended", func() bool { return e.account("user000005").State == flows.AccountSuspended })
	if st, _ := e.src.Status(e.ctx); st.Health != HealthOK || st.Failures != 0 {
		t.Errorf("status after the recovery: %+v", st)
	}
}

// TestLiveCheck: with the live check on, a disable is effective at the
// next Begin even with no sync running; fail-closed refuses when slapd is
// down, fail-open lets the last synced state decide.
func TestLiveCheck(t *testing.T) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(10, "people")})
	e := newSyncEnv(t, srv, func(c *SourceConfig) {
		c.LiveCheck = LiveCheckConfig{Enabled: true, Timeout: 5 * time.Second, CacheTTL: time.Minute}
	})
	e.fullSync(SyncOptions{})
	begin := func(user string) error {
		_, err := e.svc.Begin(e.ctx, flows.BeginRequest{Username: user, Client: "Payroll", Methods: []flows.Method{flows.MethodOverride}})
		return err
	}
	if err := begin("user000001"); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	srv.LockPermanently(t, people("user000002"))
	if err := begin("user000002"); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Fatalf("Begin for a user locked since the sync: %v", err)
	}
	if a := e.account("user000002"); a.State != flows.AccountSuspended || a.StateSource != flows.SourceDirectory {
		t.Errorf("the live check did not record the suspension: %+v", a)
	}
	srv.Delete(t, people("user000003"))
	if err := begin("user000003"); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Errorf("Begin for a user deleted since the sync: %v (not found means suspended until the sync decides)", err)
	}
	// The cache answers within its TTL, without slapd.
	srv.Kill()
	if err := begin("user000001"); err != nil {
		t.Errorf("Begin within the cache's TTL with slapd down: %v", err)
	}
	e.clock.Advance(2 * time.Minute)
	if err := begin("user000001"); !errors.Is(err, flows.ErrDirectoryUnavailable) {
		t.Errorf("fail-closed Begin with slapd down: %v", err)
	}
	openCfg := e.src.cfg
	openCfg.LiveCheck = LiveCheckConfig{Enabled: true, FailOpen: true, Timeout: time.Second, CacheTTL: time.Second}
	open := mustServiceWith(t, e, NewLiveChecker(mustSource(t, e, openCfg)))
	if _, err := open.Begin(e.ctx, flows.BeginRequest{Username: "user000004", Client: "Payroll", Methods: []flows.Method{flows.MethodOverride}}); err != nil {
		t.Errorf("fail-open Begin with slapd down: %v", err)
	}
	if _, err := open.Begin(e.ctx, flows.BeginRequest{Username: "user000002", Client: "Payroll", Methods: []flows.Method{flows.MethodOverride}}); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Errorf("fail-open Begin for a suspended user: %v", err)
	}
}

// mustServiceWith makes a service on e's store whose live check is c.
func mustServiceWith(t testing.TB, e *syncEnv, c flows.AccountChecker) *flows.Service {
	t.Helper()
	svc, err := flows.New(e.store, flows.Config{Origin: "https://keystep.example", CodeConfig: flows.CodeConfig{CodeKey: testCodeKey}},
		flows.WithClock(e.clock), flows.WithAccountChecker(c))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// BenchmarkOffboardingLatency measures, with syncrepl following slapd,
// the time from the LDAP modify that disables a user to the moment Begin
// refuses them (target: under 2 s), and back.
func BenchmarkOffboardingLatency(b *testing.B) {
	srv := slapdtest.Start(b, slapdtest.Options{LDIF: slapdtest.UsersLDIF(1000, "people"), LogLevel: "none"})
	e := newSyncEnv(b, srv, nil)
	r := e.run()
	if err := awaitCh(b, "the first full sync", r.full); err != nil {
		b.Fatal(err)
	}
	awaitCh(b, "syncrepl to follow", r.following)
	var worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		user := fmt.Sprintf("user%06d", i%1000+1)
		id := e.account(user).ID
		start := time.Now()
		srv.LockPermanently(b, people(user))
		e.waitFor(user+" suspended", func() bool { return e.state(id) == flows.AccountSuspended })
		if _, err := e.begin(user); !errors.Is(err, flows.ErrAccountSuspended) {
			b.Fatalf("Begin after the disable: %v", err)
		}
		worst = max(worst, time.Since(start))
		b.StopTimer()
		srv.Unlock(b, people(user))
		e.waitFor(user+" restored", func() bool { return e.state(id) == flows.AccountActive })
		b.StartTimer()
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
}

// TestSyncreplGroupScope: memberOf changes are not replicated, so the
// sync follows the scope group's entry: a member leaving the group is
// removed through the full sync the group's change starts, and a member
// joining gets an account.
func TestSyncreplGroupScope(t *testing.T) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(10, "people")})
	var members []string
	for i := 1; i <= 5; i++ {
		members = append(members, people(fmt.Sprintf("user%06d", i)))
	}
	group := srv.AddGroup(t, "keystep-users", members)
	e := newSyncEnv(t, srv, func(c *SourceConfig) { c.Group = group; c.MaxRemovals = 0.5 })
	r := e.run()
	if err := awaitCh(t, "the first full sync", r.full); err != nil {
		t.Fatal(err)
	}
	awaitCh(t, "syncrepl to follow", r.following)
	gone := e.account("user000002").ID
	srv.RemoveMember(t, group, people("user000002"))
	if err := awaitCh(t, "the full sync the group's change starts", r.full); err != nil {
		t.Fatal(err)
	}
	if e.state(gone) != flows.AccountRemoved {
		t.Errorf("a member who left the group: %s", e.state(gone))
	}
	awaitCh(t, "syncrepl to follow again", r.following)
	srv.AddMember(t, group, people("user000009"))
	if err := awaitCh(t, "the next full sync", r.full); err != nil {
		t.Fatal(err)
	}
	if a := e.account("user000009"); a.State != flows.AccountActive {
		t.Errorf("a member who joined: %+v", a)
	}
}
