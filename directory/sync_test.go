package directory

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/notify/smtp"
	"github.com/keystep/keystep/flows/phonetest"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/internal/slapdtest"
	"github.com/keystep/keystep/internal/smtptest"
)

// syncEnv is a source over a real slapd, applying to a real SQLite store.
type syncEnv struct {
	t     testing.TB
	ctx   context.Context
	srv   *slapdtest.Server
	store flows.Store
	svc   *flows.Service
	clock *clocktest.Clock
	src   *Source
	live  *LiveChecker
}

// testCodeKey is the code key of the tests' services.
var testCodeKey = []byte("keystep-test-code-key-0123456789abcdef")

// newSyncEnv starts a source on srv; change adjusts its configuration.
func newSyncEnv(t testing.TB, srv *slapdtest.Server, change func(*SourceConfig)) *syncEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	clock := clocktest.New(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	live := NewLiveChecker()
	log := slog.Default()
	if _, bench := t.(*testing.B); bench {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	svc, err := flows.New(st, flows.Config{Origin: "https://keystep.example", CodeConfig: flows.CodeConfig{CodeKey: testCodeKey}},
		flows.WithClock(clock), flows.WithAccountChecker(live), flows.WithLogger(log))
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	cfg := SourceConfig{
		Name:         "corp",
		URLs:         []string{srv.URL},
		StartTLS:     true,
		RootCAs:      srv.CAPool,
		BindDN:       srv.SyncDN,
		BindPassword: srv.SyncPassword,
		BaseDN:       srv.BaseDN,
		UserFilter:   "(objectClass=inetOrgPerson)",
		Suspension:   Suspension{Preset: PresetOpenLDAP},
		PageSize:     100,
		Incremental:  ModeSyncrepl,
	}
	if change != nil {
		change(&cfg)
	}
	src, err := NewSource(cfg, svc, WithClock(clock), WithLogger(log))
	if err != nil {
		t.Fatalf("new source: %v", err)
	}
	live.Add(src)
	t.Cleanup(live.Close)
	return &syncEnv{t: t, ctx: ctx, srv: srv, store: st, svc: svc, clock: clock, src: src, live: live}
}

func (e *syncEnv) fullSync(opt SyncOptions) RunReport {
	e.t.Helper()
	rep, err := e.src.FullSync(e.ctx, opt)
	if err != nil {
		e.t.Fatalf("full sync: %v", err)
	}
	return rep
}

func (e *syncEnv) account(username string) flows.Account {
	e.t.Helper()
	a, err := e.store.GetAccountByUsername(e.ctx, username)
	if err != nil {
		e.t.Fatalf("account %s: %v", username, err)
	}
	return a
}

func (e *syncEnv) accountByID(id string) flows.Account {
	e.t.Helper()
	a, err := e.store.GetAccount(e.ctx, id)
	if err != nil {
		e.t.Fatalf("account %s: %v", id, err)
	}
	return a
}

// waitFor waits until cond holds, re-checking after each audit event (every
// account change appends one). It fails the test after a generous bound.
func (e *syncEnv) waitFor(what string, cond func() bool) {
	e.t.Helper()
	ch, stop := e.svc.Events().Subscribe(flows.AuditTopic)
	defer stop()
	deadline := time.After(60 * time.Second)
	for !cond() {
		select {
		case <-ch:
		case <-deadline:
			e.t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// state is the state of the account with this id.
func (e *syncEnv) state(id string) flows.AccountState { return e.accountByID(id).State }

// enroll gives the account a device and returns its key.
func (e *syncEnv) enroll(username string) (flows.Device, *ecdsa.PrivateKey) {
	e.t.Helper()
	p := phonetest.Enroll(e.t, e.svc, username)
	return p.Device, p.Key
}

// begin starts a push sign-in for username.
func (e *syncEnv) begin(username string) (flows.Challenge, error) {
	return e.svc.Begin(e.ctx, flows.BeginRequest{Username: username, Client: "Payroll", Methods: []flows.Method{flows.MethodPush}})
}

// approve approves a sign-in with the device's key.
func (e *syncEnv) approve(d flows.Device, key *ecdsa.PrivateKey, ch flows.Challenge) error {
	sgn, err := e.svc.GetSignIn(e.ctx, ch.SignIn.ID)
	if err != nil {
		return err
	}
	now := e.clock.Now()
	msg, err := flows.DecisionPayload("https://keystep.example", sgn.ID, sgn.Nonce, flows.DecisionApprove, flows.MethodPush, ch.Number, now)
	if err != nil {
		return err
	}
	sig, err := flows.SignES256(key, msg)
	if err != nil {
		return err
	}
	_, err = e.svc.Decide(e.ctx, flows.DecisionRequest{SignInID: sgn.ID, DeviceID: d.ID, Decision: flows.DecisionApprove,
		Method: flows.MethodPush, Number: ch.Number, Time: now, Signature: sig})
	return err
}

func people(uid string) string { return slapdtest.UserDN(uid, "people") }

// TestFullSync: a few thousand users read page by page become accounts
// keyed on entryUUID, a second sync changes nothing, and attribute
// changes, disables and deletes are applied.
func TestFullSync(t *testing.T) {
	const n = 2000
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(n, "people")})
	e := newSyncEnv(t, srv, nil)
	var pages []int
	rep := e.fullSync(SyncOptions{Progress: func(p Progress) { pages = append(pages, p.Entries) }})
	if rep.Entries != n || rep.Created != n || rep.Skipped != 0 || rep.Removed != 0 {
		t.Fatalf("first sync: %+v", rep)
	}
	if len(pages) != n/100 || pages[len(pages)-1] != n {
		t.Errorf("progress after each page of 100: %v", pages)
	}
	a := e.account("user000007")
	if a.Email != "user000007@example.org" || a.Phone != "+15550000007" || a.DisplayName != "User 000007" ||
		a.State != flows.AccountActive || a.StateSource != flows.SourceDirectory {
		t.Errorf("user000007: %+v", a)
	}
	if uuid := srv.EntryUUID(t, people("user000007")); a.ID != uuid {
		t.Errorf("account id %q, want the entryUUID %q", a.ID, uuid)
	}
	st, err := e.src.Status(e.ctx)
	if err != nil || st.Health != HealthOK || st.LastFull == nil || st.LastFull.Created != n {
		t.Errorf("status after the first sync: %+v, %v", st, err)
	}

	rep = e.fullSync(SyncOptions{})
	if rep.Unchanged != n || rep.Changes() != 0 {
		t.Fatalf("second sync changed something: %+v", rep)
	}

	srv.Modify(t, people("user000009"), map[string][]string{"mail": {"new9@example.org"}, "displayName": {"Nine"}})
	srv.Delete(t, people("user000010"))
	gone := e.account("user000010").ID
	rep = e.fullSync(SyncOptions{})
	if rep.Updated != 1 || rep.Removed != 1 || rep.Unchanged != n-2 {
		t.Fatalf("third sync: %+v", rep)
	}
	if a := e.account("user000009"); a.Email != "new9@example.org" || a.DisplayName != "Nine" {
		t.Errorf("user000009 after the change: %+v", a)
	}
	if s := e.state(gone); s != flows.AccountRemoved {
		t.Errorf("deleted user: %s", s)
	}
	audit, err := e.svc.Audit(e.ctx, flows.AuditFilter{AccountID: gone})
	if err != nil || len(audit) == 0 || audit[len(audit)-1].Action != flows.AuditAccountRemoved || audit[len(audit)-1].Actor != "directory:corp" {
		t.Errorf("audit of the removal: %+v, %v", audit, err)
	}
}

// TestDisableEnable: ppolicy's permanent lock suspends, unlocking restores;
// a temporary lockout counts only with lockout on; nsAccountLock-style
// custom filters work; an admin's suspension is never lifted by the sync.
func TestDisableEnable(t *testing.T) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(20, "people")})
	e := newSyncEnv(t, srv, nil)
	e.fullSync(SyncOptions{})
	id := e.account("user000001").ID
	d, key := e.enroll("user000001")
	ch, err := e.begin("user000001")
	if err != nil {
		t.Fatal(err)
	}

	srv.LockPermanently(t, people("user000001"))
	rep := e.fullSync(SyncOptions{})
	if rep.Suspended != 1 {
		t.Fatalf("sync after the lock: %+v", rep)
	}
	a := e.accountByID(id)
	if a.State != flows.AccountSuspended || a.StateSource != flows.SourceDirectory || !strings.Contains(a.StateReason, "administrator") {
		t.Errorf("locked user: %+v", a)
	}
	if err := e.approve(d, key, ch); err == nil {
		t.Error("a pending sign-in of a suspended user was approved")
	}
	if _, err := e.begin("user000001"); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Errorf("Begin for a locked user: %v", err)
	}

	srv.Unlock(t, people("user000001"))
	rep = e.fullSync(SyncOptions{})
	if rep.Restored != 1 || e.state(id) != flows.AccountActive {
		t.Fatalf("sync after the unlock: %+v, %s", rep, e.state(id))
	}
	ch, err = e.begin("user000001")
	if err != nil {
		t.Fatalf("Begin after the unlock: %v", err)
	}
	if err := e.approve(d, key, ch); err != nil {
		t.Errorf("the device of a restored user: %v", err)
	}

	// A lockout by failed binds suspends only with lockout on.
	srv.LockByFailedBinds(t, people("user000002"))
	if rep := e.fullSync(SyncOptions{}); rep.Suspended != 0 {
		t.Errorf("a lockout suspended with lockout off: %+v", rep)
	}
	e2 := newSyncEnv(t, srv, func(c *SourceConfig) { c.Suspension.Lockout = true })
	e2.fullSync(SyncOptions{})
	if a := e2.account("user000002"); a.State != flows.AccountSuspended {
		t.Errorf("a locked-out user with lockout on: %+v", a)
	}

	// An admin's suspension stays; an admin's restore of a user the
	// directory suspends lasts until the next sync.
	if _, err := e.svc.SuspendAccount(e.ctx, "admin", "user000003", flows.SourceAdmin, "lost laptop"); err != nil {
		t.Fatal(err)
	}
	e.fullSync(SyncOptions{})
	if a := e.account("user000003"); a.State != flows.AccountSuspended || a.StateSource != flows.SourceAdmin {
		t.Errorf("the sync lifted an admin's suspension: %+v", a)
	}
	srv.LockPermanently(t, people("user000004"))
	e.fullSync(SyncOptions{})
	if _, err := e.svc.RestoreAccount(e.ctx, "admin", "user000004", flows.SourceAdmin, "oops"); err != nil {
		t.Fatal(err)
	}
	if rep := e.fullSync(SyncOptions{}); rep.Suspended != 1 || e.account("user000004").State != flows.AccountSuspended {
		t.Errorf("the directory's suspension was not applied again: %+v", rep)
	}
}

// TestCustomFilter suspends through a custom filter (here, 389-DS style
// employeeType values).
func TestCustomFilter(t *testing.T) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(5, "people")})
	e := newSyncEnv(t, srv, func(c *SourceConfig) {
		c.Suspension = Suspension{Preset: PresetNone, Filter: "(|(employeeType=leaver)(employeeType=on-leave))"}
	})
	srv.Modify(t, people("user000002"), map[string][]string{"employeeType": {"On-Leave"}})
	rep := e.fullSync(SyncOptions{})
	if rep.Created != 5 {
		t.Fatalf("sync: %+v", rep)
	}
	if a := e.account("user000002"); a.State != flows.AccountSuspended || !strings.Contains(a.StateReason, "filter") {
		t.Errorf("user on leave: %+v", a)
	}
	if a := e.account("user000001"); a.State != flows.AccountActive {
		t.Errorf("user000001: %+v", a)
	}
}

// TestDeleteRemovesDevices: a user deleted from the directory is removed
// and their device can approve nothing; an entry that comes back gets a
// fresh account without devices.
func TestDeleteRemovesDevices(t *testing.T) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(20, "people")})
	e := newSyncEnv(t, srv, nil)
	e.fullSync(SyncOptions{})
	id := e.account("user000005").ID
	d, key := e.enroll("user000005")
	ch, err := e.begin("user000005")
	if err != nil {
		t.Fatal(err)
	}
	srv.Delete(t, people("user000005"))
	if rep := e.fullSync(SyncOptions{}); rep.Removed != 1 {
		t.Fatalf("sync after the delete: %+v", rep)
	}
	if e.state(id) != flows.AccountRemoved {
		t.Fatalf("state: %s", e.state(id))
	}
	dev, err := e.store.GetDevice(e.ctx, d.ID)
	if err != nil || dev.State != flows.DeviceUnregistered {
		t.Errorf("the device of a removed user: %+v, %v", dev, err)
	}
	if err := e.approve(d, key, ch); err == nil {
		t.Error("the device of a removed user approved a sign-in")
	}
	if _, err := e.begin("user000005"); err == nil {
		t.Error("Begin for a removed user")
	}

	// The same uid comes back (a new entry, a new entryUUID): a new account.
	_, uuid := srv.AddUser(t, "user000005", "people", map[string][]string{"mail": {"back@example.org"}})
	if rep := e.fullSync(SyncOptions{}); rep.Created != 1 {
		t.Fatalf("sync after the return: %+v", rep)
	}
	a := e.account("user000005")
	if a.ID != uuid || a.ID == id || a.State != flows.AccountActive {
		t.Errorf("the returning user: %+v (old id %s)", a, id)
	}
	if ds, err := e.store.ListDevices(e.ctx, a.ID); err != nil || len(ds) != 0 {
		t.Errorf("the returning user has devices: %v, %v", ds, err)
	}
}

// TestRenameAndMoveKeepAccount: the stable id, not the DN, is the key.
func TestRenameAndMoveKeepAccount(t *testing.T) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(10, "people")})
	e := newSyncEnv(t, srv, nil)
	e.fullSync(SyncOptions{})
	a1, a2 := e.account("user000001"), e.account("user000002")
	d, key := e.enroll("user000002")

	srv.Rename(t, people("user000001"), "uid=alice", "")
	moved := srv.Rename(t, people("user000002"), "uid=user000002", "ou=staff,"+srv.BaseDN)
	rep := e.fullSync(SyncOptions{})
	if rep.Removed != 0 || rep.Created != 0 || rep.Updated != 1 {
		t.Fatalf("sync after the rename and the move: %+v", rep)
	}
	if a := e.accountByID(a1.ID); a.Username != "alice" || a.State != flows.AccountActive {
		t.Errorf("renamed user: %+v", a)
	}
	links, err := e.store.GetDirectoryLinks(e.ctx, "corp", []string{a2.ID})
	if err != nil || len(links) != 1 || !strings.EqualFold(links[0].DN, moved) {
		t.Errorf("link of the moved user: %+v, %v (want DN %s)", links, err, moved)
	}
	ch, err := e.begin("user000002")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.approve(d, key, ch); err != nil {
		t.Errorf("the moved user's device: %v", err)
	}
}

// TestGroupScope: with a group, only its members are accounts, and a
// member who leaves the group is removed.
func TestGroupScope(t *testing.T) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(30, "people")})
	var members []string
	for i := 1; i <= 10; i++ {
		members = append(members, people(fmt.Sprintf("user%06d", i)))
	}
	group := srv.AddGroup(t, "keystep-users", members)
	e := newSyncEnv(t, srv, func(c *SourceConfig) {
		c.Group = group
		c.MaxRemovals = 0.5
	})
	if rep := e.fullSync(SyncOptions{}); rep.Entries != 10 || rep.Created != 10 {
		t.Fatalf("sync of the group: %+v", rep)
	}
	if _, err := e.store.GetAccountByUsername(e.ctx, "user000011"); !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("a non-member has an account: %v", err)
	}
	gone := e.account("user000003").ID
	srv.RemoveMember(t, group, people("user000003"))
	srv.AddMember(t, group, people("user000020"))
	rep := e.fullSync(SyncOptions{})
	if rep.Removed != 1 || rep.Created != 1 {
		t.Fatalf("sync after the membership change: %+v", rep)
	}
	if e.state(gone) != flows.AccountRemoved || e.account("user000020").State != flows.AccountActive {
		t.Error("the group's changes were not applied")
	}
}

// TestGuard: a sync that would remove too many accounts, or that sees no
// user at all, stops and changes nothing (not even its other changes),
// tells the admins, and goes through once confirmed.
func TestGuard(t *testing.T) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(100, "people")})
	alerts := &alertLog{}
	e := newSyncEnv(t, srv, nil)
	e.svc = mustService(t, e, flows.WithAdminAlerter(alerts))
	e.src = mustSource(t, e, e.src.cfg)
	e.fullSync(SyncOptions{})
	for i := 1; i <= 11; i++ {
		srv.Delete(t, people(fmt.Sprintf("user%06d", i)))
	}
	srv.LockPermanently(t, people("user000050"))
	rep, err := e.src.FullSync(e.ctx, SyncOptions{})
	if !errors.Is(err, ErrGuard) || rep.Removed != 11 || !strings.Contains(rep.Guard, "11 of 100") {
		t.Fatalf("a sync removing 11%%: %+v, %v", rep, err)
	}
	if a := e.account("user000001"); a.State != flows.AccountActive {
		t.Errorf("the guard let a removal through: %+v", a)
	}
	if a := e.account("user000050"); a.State != flows.AccountActive {
		t.Errorf("the guard let a suspension through: %+v", a)
	}
	st, _ := e.src.Status(e.ctx)
	if st.Health != HealthGuard || st.Guard == "" {
		t.Errorf("status after the guard: %+v", st)
	}
	if got := alerts.kinds(); len(got) != 1 || got[0] != flows.AlertDirectoryGuard {
		t.Errorf("alerts: %v", got)
	}
	// A dry run says what would happen, and changes nothing either, not
	// even the staging of a sync running meanwhile.
	other := []flows.DirectoryEntry{{ExternalID: "staged-by-another-sync", Username: "x", State: flows.AccountActive}}
	if err := e.store.StageDirectoryEntries(e.ctx, "corp", "another-run", other); err != nil {
		t.Fatal(err)
	}
	if _, err := e.src.FullSync(e.ctx, SyncOptions{DryRun: true, ConfirmRemovals: 11}); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if staged, err := e.store.ListStagedDirectoryEntries(e.ctx, "corp", "another-run", "", 10); err != nil || len(staged) != 1 {
		t.Errorf("a dry run touched another sync's staging: %v, %v", staged, err)
	}
	if a := e.account("user000001"); a.State != flows.AccountActive {
		t.Error("a dry run removed an account")
	}
	rep, err = e.src.FullSync(e.ctx, SyncOptions{ConfirmRemovals: 11})
	if err != nil || rep.Removed != 11 || rep.Suspended != 1 {
		t.Fatalf("the confirmed sync: %+v, %v", rep, err)
	}
	if st, _ := e.src.Status(e.ctx); st.Health != HealthOK {
		t.Errorf("status after the confirmed sync: %+v", st)
	}

	// A bind that sees nothing (a filter that matches no one, or an account
	// without rights) never offboards the company.
	e2 := newSyncEnv(t, srv, func(c *SourceConfig) { c.UserFilter = "(objectClass=nobodyHasThis)" })
	e2.store, e2.svc, e2.src = e.store, e.svc, mustSource(t, e, func() SourceConfig {
		c := e.src.cfg
		c.UserFilter = "(objectClass=posixAccount)"
		return c
	}())
	rep, err = e2.src.FullSync(e.ctx, SyncOptions{})
	if !errors.Is(err, ErrGuard) || !strings.Contains(rep.Guard, "no users") {
		t.Fatalf("an empty result: %+v, %v", rep, err)
	}
	if n, _ := e.store.CountDirectoryLinks(e.ctx, "corp"); n != 89 {
		t.Errorf("accounts after an empty result: %d, want 89", n)
	}
}

// TestKilledMidSync: slapd dies in the middle of the paged read: the sync
// fails, nothing it read is applied, the status says so, and the next
// sync after a restart does the whole job.
func TestKilledMidSync(t *testing.T) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(1000, "people")})
	e := newSyncEnv(t, srv, nil)
	e.fullSync(SyncOptions{})
	srv.Modify(t, people("user000001"), map[string][]string{"mail": {"changed@example.org"}})
	srv.LockPermanently(t, people("user000999"))
	srv.Delete(t, people("user000500"))
	pagesRead := 0
	_, err := e.src.FullSync(e.ctx, SyncOptions{Progress: func(p Progress) {
		pagesRead++
		if pagesRead == 3 {
			srv.Kill()
		}
	}})
	if err == nil {
		t.Fatal("a sync survived slapd's death")
	}
	if a := e.account("user000001"); a.Email != "user000001@example.org" {
		t.Errorf("half a sync was applied: %+v", a)
	}
	if a := e.account("user000999"); a.State != flows.AccountActive {
		t.Errorf("half a sync was applied: %+v", a)
	}
	if a := e.account("user000500"); a.State != flows.AccountActive {
		t.Errorf("a failed sync removed an account: %+v", a)
	}
	st, _ := e.src.Status(e.ctx)
	if st.Health != HealthFailing || st.Failures != 1 || st.LastError == "" {
		t.Errorf("status after the failure: %+v", st)
	}
	if staged, _ := e.store.ListStagedDirectoryEntries(e.ctx, "corp", "", "", 10); len(staged) != 0 {
		t.Errorf("staged entries left behind: %d", len(staged))
	}
	srv.Restart(t)
	rep := e.fullSync(SyncOptions{})
	if rep.Updated != 1 || rep.Suspended != 1 || rep.Removed != 1 {
		t.Fatalf("the sync after the restart: %+v", rep)
	}
}

// alertLog records admin alerts.
type alertLog struct {
	mu sync.Mutex
	as []flows.AdminAlert
}

func (l *alertLog) Alert(_ context.Context, a flows.AdminAlert) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.as = append(l.as, a)
	return nil
}

func (l *alertLog) kinds() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ks []string
	for _, a := range l.as {
		ks = append(ks, a.Kind)
	}
	return ks
}

// mustService makes a new service on e's store and clock.
func mustService(t testing.TB, e *syncEnv, opts ...flows.Option) *flows.Service {
	t.Helper()
	svc, err := flows.New(e.store, flows.Config{Origin: "https://keystep.example", CodeConfig: flows.CodeConfig{CodeKey: testCodeKey}},
		append([]flows.Option{flows.WithClock(e.clock), flows.WithAccountChecker(e.live)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// mustSource makes a new source on e's service.
func mustSource(t testing.TB, e *syncEnv, cfg SourceConfig) *Source {
	t.Helper()
	src, err := NewSource(cfg, e.svc, WithClock(e.clock))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestInvite: with invite on, each new active account with an email
// address is emailed its enrollment link (through a real SMTP server); a
// suspended one is not, and the link enrolls a device.
func TestInvite(t *testing.T) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(3, "people")})
	srv.LockPermanently(t, people("user000003"))
	mail := smtptest.Start(t)
	sender, err := smtp.New(smtp.Config{Host: mail.Host, Port: mail.Port, Security: smtp.SecuritySTARTTLS,
		Username: mail.Username, Password: mail.Password, From: "keystep <no-reply@keystep.example>",
		HeloName: "keystep.test", TLSConfig: &tls.Config{RootCAs: mail.CAPool}})
	if err != nil {
		t.Fatal(err)
	}
	e := newSyncEnv(t, srv, func(c *SourceConfig) { c.Invite = true })
	e.svc = mustService(t, e, flows.WithEmailSender(sender))
	e.src = mustSource(t, e, e.src.cfg)
	rep := e.fullSync(SyncOptions{})
	if rep.Created != 3 || rep.Invited != 2 {
		t.Fatalf("sync: %+v", rep)
	}
	msgs := mail.WaitMessages(2)
	var to []string
	for _, env := range mail.Envelopes() {
		to = append(to, env.RcptTo...)
	}
	slices.Sort(to)
	if len(msgs) != 2 || strings.Join(to, ",") != "user000001@example.org,user000002@example.org" {
		t.Fatalf("invitations went to %v", to)
	}
	body, err := io.ReadAll(msgs[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "keystep://enroll") {
		t.Errorf("the invitation has no enrollment link:\n%s", body)
	}
	// A second sync invites no one again.
	if rep := e.fullSync(SyncOptions{}); rep.Invited != 0 {
		t.Errorf("second sync: %+v", rep)
	}
}
