package directory

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/internal/sambatest"
	"github.com/keystep/keystep/internal/slapdtest"
)

// The Samba tests need the Debian package samba; without it they fail.
// sambatest provisions the domain once per test binary (5 to 25 s) and
// removes it here.
func TestMain(m *testing.M) { sambatest.Main(m) }

// adUserFilter selects the domain's people without its built-in accounts
// (Administrator, Guest, krbtgt and the dns-<dc> account Samba makes), all
// critical system objects. With the preset's default filter they become
// accounts too: see TestSambaFullSync.
const adUserFilter = "(&(objectCategory=person)(objectClass=user)(!(isCriticalSystemObject=TRUE)))"

// samLimit bounds every wait for the source (a Run's hooks, the clock).
const samLimit = 60 * time.Second

// adEnv is a source over a real Samba AD DC, applying to a real SQLite
// store.
type adEnv struct {
	*syncEnv
	ad *sambatest.Server
	pc *pollClock
}

// newADEnv makes a source on srv: the whole domain, the Active Directory
// preset, objectGUID and sAMAccountName, DirSync; change adjusts it. The
// test directories are small, so the guard lets half the accounts go.
func newADEnv(t *testing.T, srv *sambatest.Server, change func(*SourceConfig)) *adEnv {
	t.Helper()
	// newSyncEnv's store, service, clock and live check, with an Active
	// Directory configuration in place of its slapd one.
	e := newSyncEnv(t, &slapdtest.Server{}, func(c *SourceConfig) {
		*c = SourceConfig{
			Name:         "corp",
			URLs:         []string{srv.LDAPSURL},
			RootCAs:      srv.CAPool,
			ServerName:   srv.ServerName,
			BindDN:       srv.AdminDN,
			BindPassword: srv.AdminPassword,
			BaseDN:       srv.BaseDN,
			UserFilter:   adUserFilter,
			Attributes:   AttributeMap{ID: "objectGUID", Username: "sAMAccountName"},
			Suspension:   Suspension{Preset: PresetActiveDir},
			Incremental:  ModeDirSync,
			PageSize:     100,
			MaxRemovals:  0.5,
		}
		if change != nil {
			change(c)
		}
	})
	pc := &pollClock{Clock: e.clock, interval: e.src.cfg.PollInterval, changed: make(chan struct{})}
	ae := &adEnv{syncEnv: e, ad: srv, pc: pc}
	e.src = ae.newSource()
	e.live.Add(e.src)
	return ae
}

// newSource makes another source with the same configuration on the same
// service and store: keystep restarted.
func (e *adEnv) newSource() *Source {
	e.t.Helper()
	src, err := NewSource(e.src.cfg, e.svc, WithClock(e.pc))
	if err != nil {
		e.t.Fatalf("new source: %v", err)
	}
	return src
}

// dirSync polls DirSync once, as Run does between full syncs.
func (e *adEnv) dirSync() RunReport {
	e.t.Helper()
	rep, err := e.src.dirSync(e.ctx)
	if err != nil {
		e.t.Fatalf("DirSync: %v", err)
	}
	return rep
}

// wantState checks an account's state, and that its reason holds reason.
func (e *adEnv) wantState(what, id string, state flows.AccountState, reason string) flows.Account {
	e.t.Helper()
	a := e.accountByID(id)
	if a.State != state || !strings.Contains(a.StateReason, reason) {
		e.t.Errorf("%s: state %s (%s, %q), want %s with a reason holding %q", what, a.State, a.StateSource, a.StateReason, state, reason)
	}
	return a
}

// link returns the directory link of the account id.
func (e *adEnv) link(id string) flows.DirectoryLink {
	e.t.Helper()
	l, err := e.store.GetDirectoryLinkByAccount(e.ctx, id)
	if err != nil {
		e.t.Fatalf("link of %s: %v", id, err)
	}
	return l
}

// pollClock is the tests' fake clock that also counts the waits of DirSync
// polls: after each poll Run calls RunHooks.Following, then waits
// PollInterval on the clock. A test advances the clock only once that
// wait is registered, or the advance would come before the timer and miss
// it. (clocktest.BlockUntilWaiters counts every timer, and the timers a
// stopped Run leaves behind stay pending, so its count is hard to know.)
type pollClock struct {
	*clocktest.Clock
	interval time.Duration

	mu      sync.Mutex
	waits   int
	changed chan struct{} // closed and replaced at each wait
}

func (c *pollClock) After(d time.Duration) <-chan time.Time {
	ch := c.Clock.After(d)
	if d == c.interval {
		c.mu.Lock()
		c.waits++
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
	return ch
}

// count is how many poll waits were registered.
func (c *pollClock) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waits
}

// waitCount waits until n poll waits were registered.
func (c *pollClock) waitCount(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(samLimit)
	for {
		c.mu.Lock()
		have, ch := c.waits, c.changed
		c.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("gave up waiting for DirSync poll %d to wait on the clock (%d so far)", n, have)
		}
	}
}

// adRun is a running Source.Run, followed through its hooks.
type adRun struct {
	e         *adEnv
	cancel    context.CancelFunc
	done      chan struct{} // closed when Run returned, err set
	err       error
	following chan string
	full      chan RunReport
	failed    chan error
	fulls     atomic.Int32 // full syncs run
	base      int          // the clock's poll waits when the Run started
	seen      int          // Following calls taken by the test
}

// run starts src.Run; the test ends it with stop (or at its end).
func (e *adEnv) run(src *Source) *adRun {
	ctx, cancel := context.WithCancel(e.ctx)
	r := &adRun{e: e, cancel: cancel, done: make(chan struct{}), following: make(chan string, 100),
		full: make(chan RunReport, 100), failed: make(chan error, 100), base: e.pc.count()}
	hooks := RunHooks{
		Following: func(mode string) { r.following <- mode },
		FullSynced: func(rep RunReport, err error) {
			r.fulls.Add(1)
			if err != nil {
				if ctx.Err() == nil {
					r.failed <- err
				}
				return
			}
			r.full <- rep
		},
		Failed: func(err error) { r.failed <- err },
	}
	go func() {
		defer close(r.done)
		r.err = src.Run(ctx, hooks)
	}()
	e.t.Cleanup(r.stop)
	return r
}

// stop ends the Run and waits for it to return.
func (r *adRun) stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(samLimit):
		r.e.t.Fatal("Run did not return after its context ended")
	}
	if !errors.Is(r.err, context.Canceled) {
		r.e.t.Errorf("Run returned %v, want context.Canceled", r.err)
	}
}

// await waits for one value of ch, failing on a failed sync.
func await[T any](r *adRun, what string, ch <-chan T) T {
	r.e.t.Helper()
	select {
	case v := <-ch:
		return v
	case err := <-r.failed:
		r.e.t.Fatalf("waiting for %s: the sync failed: %v", what, err)
	case <-r.done:
		r.e.t.Fatalf("waiting for %s: Run returned %v", what, r.err)
	case <-time.After(samLimit):
		r.e.t.Fatalf("gave up waiting for %s", what)
	}
	panic("unreachable")
}

// waitFollowing waits for the end of the next DirSync poll.
func (r *adRun) waitFollowing() {
	r.e.t.Helper()
	if mode := await(r, "a DirSync poll", r.following); mode != ModeDirSync {
		r.e.t.Errorf("Run follows with %q, want %q", mode, ModeDirSync)
	}
	r.seen++
}

// waitFull waits for the next full sync.
func (r *adRun) waitFull() RunReport {
	r.e.t.Helper()
	return await(r, "a full sync", r.full)
}

// waiting waits until Run waits on the clock for its next poll.
func (r *adRun) waiting() {
	r.e.t.Helper()
	r.e.pc.waitCount(r.e.t, r.base+r.seen)
}

// poll lets the next DirSync poll run (the poll interval passes on the
// fake clock) and waits for its end.
func (r *adRun) poll() {
	r.e.t.Helper()
	r.waiting()
	r.e.clock.Advance(r.e.src.cfg.PollInterval)
	r.waitFollowing()
}

// TestSambaFullSync: the users of a real Active Directory (Samba) become
// accounts keyed on their objectGUID, with sAMAccountName or
// userPrincipalName as username; a second sync changes nothing. The
// built-in accounts: with the preset's default filter, the disabled Guest
// and krbtgt become suspended accounts and Administrator an active one;
// the filter without critical system objects leaves them out.
func TestSambaFullSync(t *testing.T) {
	srv := sambatest.Start(t)
	staff := srv.AddOU(t, "staff")
	_, alice := srv.AddUser(t, "alice", map[string][]string{
		"displayName": {"Alice Archer"}, "mail": {"alice@keystep.test"}, "mobile": {"+1 (555) 010-0001"},
	})
	_, bob := srv.AddUser(t, "bob", nil)
	_, carol := srv.AddUserIn(t, staff, "carol", map[string][]string{"mail": {"not an address"}})

	e := newADEnv(t, srv, nil)
	rep := e.fullSync(SyncOptions{})
	if rep.Entries != 3 || rep.Created != 3 || rep.Skipped != 0 || rep.Conflicts != 0 || rep.Failed != 0 {
		t.Fatalf("full sync: %+v", rep)
	}
	a := e.account("alice")
	if a.ID != alice || a.Email != "alice@keystep.test" || a.Phone != "+15550100001" || a.DisplayName != "Alice Archer" ||
		a.State != flows.AccountActive || a.StateSource != flows.SourceDirectory {
		t.Errorf("alice: %+v (objectGUID %s)", a, alice)
	}
	// No displayName: cn; an email that is no address: none.
	if a := e.account("carol"); a.ID != carol || a.DisplayName != "carol" || a.Email != "" {
		t.Errorf("carol (in OU=staff): %+v (objectGUID %s)", a, carol)
	}
	if a := e.account("bob"); a.ID != bob {
		t.Errorf("bob: %+v (objectGUID %s)", a, bob)
	}
	if l := e.link(alice); l.ExternalID != alice || !strings.EqualFold(l.DN, "CN=alice,"+srv.UsersDN) {
		t.Errorf("alice's link: %+v", l)
	}
	for _, name := range []string{"Administrator", "Guest", "krbtgt"} {
		if _, err := e.store.GetAccountByUsername(e.ctx, name); !errors.Is(err, flows.ErrNotFound) {
			t.Errorf("built-in %s synced despite the filter: %v", name, err)
		}
	}
	if st, err := e.src.Status(e.ctx); err != nil || st.Health != HealthOK || st.LastFull == nil || st.Server != srv.LDAPSURL {
		t.Errorf("status: %+v, %v", st, err)
	}
	if rep := e.fullSync(SyncOptions{}); rep.Unchanged != 3 || rep.Changes() != 0 {
		t.Errorf("second sync: %+v", rep)
	}

	// The preset's defaults: (&(objectCategory=person)(objectClass=user)),
	// objectGUID, sAMAccountName; the built-in accounts come in.
	eb := newADEnv(t, srv, func(c *SourceConfig) { c.UserFilter, c.Attributes = "", AttributeMap{} })
	if eb.src.cfg.UserFilter != defaultADUserFilter || eb.src.cfg.Attributes.ID != "objectGUID" || eb.src.cfg.Attributes.Username != "sAMAccountName" {
		t.Fatalf("the active_directory preset's defaults: %+v", eb.src.cfg)
	}
	rep = eb.fullSync(SyncOptions{})
	builtins := rep.Entries - 3
	if builtins < 3 || rep.Created != rep.Entries || rep.Skipped != 0 {
		t.Fatalf("sync with the default filter: %+v", rep)
	}
	if a := eb.account("Administrator"); a.State != flows.AccountActive {
		t.Errorf("Administrator: %+v", a)
	}
	for _, name := range []string{"Guest", "krbtgt"} { // both disabled
		if a := eb.account(name); a.State != flows.AccountSuspended || a.StateReason != reasonADDisabled {
			t.Errorf("%s: %+v", name, a)
		}
	}
	t.Logf("with the default filter, %d built-in accounts are synced (Guest and krbtgt suspended)", builtins)

	// userPrincipalName, under CN=Users only; keystep directory test on the
	// same: the built-in accounts have no userPrincipalName, so they are
	// skipped, and the server offers DirSync.
	eu := newADEnv(t, srv, func(c *SourceConfig) {
		c.BaseDN, c.Attributes.Username = srv.UsersDN, "userPrincipalName"
	})
	rep = eu.fullSync(SyncOptions{})
	if rep.Entries != 2 || rep.Created != 2 {
		t.Fatalf("sync by userPrincipalName under CN=Users: %+v", rep)
	}
	if a := eu.account("alice@keystep.test"); a.ID != alice || a.Username != "alice@keystep.test" {
		t.Errorf("alice by userPrincipalName: %+v", a)
	}
	et := newADEnv(t, srv, func(c *SourceConfig) {
		c.UserFilter, c.Attributes.Username, c.Incremental = "", "userPrincipalName", ""
	})
	tr, err := et.src.Test(et.ctx, 10)
	if err != nil {
		t.Fatalf("Test: %v", err)
	}
	if tr.Mode != ModeDirSync || tr.Entries != 3+builtins || tr.Skipped != builtins || len(tr.Sample) != 3 ||
		len(tr.Problems) != builtins || !strings.Contains(tr.Problems[0], "no userPrincipalName") {
		t.Errorf("Test: %+v", tr)
	}
	if n, _ := et.store.CountDirectoryLinks(et.ctx, "corp"); n != 0 {
		t.Errorf("Test changed the store: %d links", n)
	}
}

// TestSambaDisableEnable: clearing and setting userAccountControl's
// ACCOUNTDISABLE bit suspends and restores the account, by full sync and
// by DirSync; a suspended user's pending sign-in cannot be approved and
// Begin refuses them.
func TestSambaDisableEnable(t *testing.T) {
	srv := sambatest.Start(t)
	annDN, ann := srv.AddUser(t, "ann", nil)
	benDN, ben := srv.AddUser(t, "ben", nil)
	srv.AddUser(t, "cid", nil)
	e := newADEnv(t, srv, nil)
	e.fullSync(SyncOptions{})
	if rep := e.dirSync(); rep.Entries != 0 { // takes the cookie
		t.Errorf("first DirSync: %+v", rep)
	}
	d, key := e.enroll("ann")
	ch, err := e.begin("ann")
	if err != nil {
		t.Fatal(err)
	}

	// Full sync.
	srv.Disable(t, annDN)
	if rep := e.fullSync(SyncOptions{}); rep.Suspended != 1 || rep.Unchanged != 2 {
		t.Fatalf("full sync after the disable: %+v", rep)
	}
	if a := e.wantState("ann disabled", ann, flows.AccountSuspended, "Active Directory"); a.StateSource != flows.SourceDirectory {
		t.Errorf("ann's state source: %s", a.StateSource)
	}
	if err := e.approve(d, key, ch); err == nil {
		t.Error("a disabled user's pending sign-in was approved")
	}
	if _, err := e.begin("ann"); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Errorf("Begin for a disabled user: %v", err)
	}
	srv.Enable(t, annDN)
	if rep := e.fullSync(SyncOptions{}); rep.Restored != 1 {
		t.Fatalf("full sync after the enable: %+v", rep)
	}
	e.wantState("ann enabled", ann, flows.AccountActive, "")
	if ch, err = e.begin("ann"); err != nil {
		t.Fatalf("Begin after the enable: %v", err)
	}
	if err := e.approve(d, key, ch); err != nil {
		t.Errorf("approve after the enable: %v", err)
	}

	// DirSync (which also brings back ann's changes: applied already).
	srv.Disable(t, benDN)
	if rep := e.dirSync(); rep.Suspended != 1 || rep.Changes() != 1 {
		t.Fatalf("DirSync after the disable: %+v", rep)
	}
	e.wantState("ben disabled", ben, flows.AccountSuspended, reasonADDisabled)
	if _, err := e.begin("ben"); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Errorf("Begin for a disabled user: %v", err)
	}
	srv.Enable(t, benDN)
	if rep := e.dirSync(); rep.Restored != 1 || rep.Changes() != 1 {
		t.Fatalf("DirSync after the enable: %+v", rep)
	}
	e.wantState("ben enabled", ben, flows.AccountActive, "")
	if rep := e.dirSync(); rep.Entries != 0 {
		t.Errorf("DirSync with nothing new: %+v", rep)
	}
	if rep := e.fullSync(SyncOptions{}); rep.Changes() != 0 {
		t.Errorf("full sync after DirSync: %+v", rep)
	}
}

// TestSambaAccountExpires: accountExpires in the past suspends, in the
// future or never (0 and 0x7FFFFFFFFFFFFFFF) does not; an expiry that
// passes without a change in the directory is seen by the next full sync
// (DirSync sees only changes).
func TestSambaAccountExpires(t *testing.T) {
	srv := sambatest.Start(t)
	dn, id := srv.AddUser(t, "exp", nil)
	srv.AddUser(t, "other", nil)
	e := newADEnv(t, srv, nil)
	e.fullSync(SyncOptions{})
	e.dirSync()
	never := func(v string) {
		t.Helper()
		srv.Modify(t, dn, map[string][]string{"accountExpires": {v}})
		if rep := e.dirSync(); rep.Restored != 1 {
			t.Fatalf("DirSync after accountExpires %s: %+v", v, rep)
		}
		e.wantState("accountExpires "+v, id, flows.AccountActive, "")
	}

	srv.SetAccountExpires(t, dn, e.clock.Now().Add(-time.Hour))
	if rep := e.dirSync(); rep.Suspended != 1 {
		t.Fatalf("DirSync after an expiry in the past: %+v", rep)
	}
	e.wantState("expired", id, flows.AccountSuspended, reasonADExpired)
	never("0")
	srv.SetAccountExpires(t, dn, e.clock.Now().Add(-time.Minute))
	if rep := e.dirSync(); rep.Suspended != 1 {
		t.Fatalf("DirSync after an expiry in the past: %+v", rep)
	}
	never(sambatest.NeverExpires)
	if got := srv.Entry(t, dn, "accountExpires").GetAttributeValue("accountExpires"); got != strconv.FormatInt(0x7FFFFFFFFFFFFFFF, 10) {
		t.Errorf("accountExpires %s", got)
	}

	srv.SetAccountExpires(t, dn, e.clock.Now().Add(time.Hour))
	if rep := e.dirSync(); rep.Entries != 1 || rep.Changes() != 0 {
		t.Errorf("DirSync after an expiry in the future: %+v", rep)
	}
	e.wantState("expiring in an hour", id, flows.AccountActive, "")
	e.clock.Advance(2 * time.Hour)
	if rep := e.dirSync(); rep.Entries != 0 {
		t.Errorf("DirSync with nothing changed: %+v", rep)
	}
	e.wantState("expired an hour ago, not yet synced", id, flows.AccountActive, "")
	if rep := e.fullSync(SyncOptions{}); rep.Suspended != 1 || rep.Unchanged != 1 {
		t.Fatalf("full sync after the expiry passed: %+v", rep)
	}
	e.wantState("expired an hour ago", id, flows.AccountSuspended, reasonADExpired)
}

// TestSambaLockout: with the domain's lockout policy on (lockoutThreshold
// 3), three bad passwords lock the user out; Samba sets lockoutTime and
// computes msDS-User-Account-Control-Computed's LOCKOUT bit. A source
// with Lockout suspends the user (by DirSync: lockoutTime changes), one
// without does not; an unlock (lockoutTime 0) restores.
func TestSambaLockout(t *testing.T) {
	srv := sambatest.Start(t)
	srv.Modify(t, srv.BaseDN, map[string][]string{"lockoutThreshold": {"3"}})
	dn, id := srv.AddUser(t, "locky", nil)
	srv.AddUser(t, "other", nil)
	off := newADEnv(t, srv, nil)
	on := newADEnv(t, srv, func(c *SourceConfig) { c.Suspension.Lockout = true })
	off.fullSync(SyncOptions{})
	on.fullSync(SyncOptions{})
	on.dirSync()

	upn := "locky@" + sambatest.DNSDomain
	for i := range 3 {
		if err := srv.CheckBind(upn, "wrong-password"); err == nil || !strings.Contains(err.Error(), "52e") {
			t.Fatalf("bad bind %d: %v, want invalid credentials (52e)", i+1, err)
		}
	}
	if err := srv.CheckBind(upn, sambatest.UserPassword); err == nil || !strings.Contains(err.Error(), "775") {
		t.Fatalf("bind with the right password after 3 bad ones: %v, want locked out (775)", err)
	}
	le := srv.Entry(t, dn, attrLockoutTime, attrUACComputed)
	if le.GetAttributeValue(attrLockoutTime) == "0" || le.GetAttributeValue(attrUACComputed) != "16" {
		t.Fatalf("Samba's lockout: %s=%s, %s=%s", attrLockoutTime, le.GetAttributeValue(attrLockoutTime),
			attrUACComputed, le.GetAttributeValue(attrUACComputed))
	}

	if rep := on.dirSync(); rep.Suspended != 1 {
		t.Fatalf("DirSync after the lockout (lockout on): %+v", rep)
	}
	on.wantState("locked out, lockout on", id, flows.AccountSuspended, reasonADLockedOut)
	if rep := off.fullSync(SyncOptions{}); rep.Changes() != 0 {
		t.Errorf("full sync after the lockout (lockout off): %+v", rep)
	}
	off.wantState("locked out, lockout off", id, flows.AccountActive, "")
	if rep := on.fullSync(SyncOptions{}); rep.Changes() != 0 {
		t.Errorf("full sync after DirSync (lockout on): %+v", rep)
	}

	srv.Modify(t, dn, map[string][]string{attrLockoutTime: {"0"}}) // an administrator's unlock
	if rep := on.dirSync(); rep.Restored != 1 {
		t.Fatalf("DirSync after the unlock: %+v", rep)
	}
	on.wantState("unlocked", id, flows.AccountActive, "")
	if err := srv.CheckBind(upn, sambatest.UserPassword); err != nil {
		t.Errorf("bind after the unlock: %v", err)
	}
}

// TestSambaDelete: a user deleted from Active Directory (a tombstone under
// CN=Deleted Objects, same objectGUID) is removed by the DirSync of a
// running Run, and by a full sync; their device is unregistered and can
// approve nothing.
func TestSambaDelete(t *testing.T) {
	srv := sambatest.Start(t)
	doraDN, dora := srv.AddUser(t, "dora", nil)
	erinDN, erin := srv.AddUser(t, "erin", nil)
	for _, u := range []string{"u1", "u2", "u3"} {
		srv.AddUser(t, u, nil)
	}
	e := newADEnv(t, srv, nil)
	r := e.run(e.src)
	if rep := r.waitFull(); rep.Created != 5 {
		t.Fatalf("Run's full sync: %+v", rep)
	}
	r.waitFollowing()
	d, key := e.enroll("dora")
	ch, err := e.begin("dora")
	if err != nil {
		t.Fatal(err)
	}

	srv.Delete(t, doraDN)
	r.poll()
	e.wantState("dora deleted (DirSync)", dora, flows.AccountRemoved, "deleted from Active Directory")
	if dev, err := e.store.GetDevice(e.ctx, d.ID); err != nil || dev.State != flows.DeviceUnregistered {
		t.Errorf("the device of a deleted user: %+v, %v", dev, err)
	}
	if err := e.approve(d, key, ch); err == nil {
		t.Error("the device of a deleted user approved a sign-in")
	}
	if _, err := e.begin("dora"); err == nil {
		t.Error("Begin for a deleted user")
	}
	st, err := e.src.Status(e.ctx)
	if err != nil || st.Mode != ModeDirSync || st.Incremental == nil || st.Incremental.Removed != 1 {
		t.Errorf("status after the DirSync removal: %+v, %v", st.Incremental, err)
	}
	r.stop()

	d2, _ := e.enroll("erin")
	srv.Delete(t, erinDN)
	if rep := e.fullSync(SyncOptions{}); rep.Removed != 1 || rep.Entries != 3 {
		t.Fatalf("full sync after a delete: %+v", rep)
	}
	e.wantState("erin deleted (full sync)", erin, flows.AccountRemoved, "no longer in the directory")
	if dev, err := e.store.GetDevice(e.ctx, d2.ID); err != nil || dev.State != flows.DeviceUnregistered {
		t.Errorf("the device of a deleted user: %+v, %v", dev, err)
	}
}

// TestSambaMove: a user moved to another OU within the base DN keeps their
// account and device (objectGUID is the key), by full sync and by DirSync,
// which gets the new DN; a user moved out of the base DN is removed by
// DirSync.
func TestSambaMove(t *testing.T) {
	srv := sambatest.Start(t)
	staff := srv.AddOU(t, "staff")
	leavers := srv.AddOU(t, "leavers")
	moverDN, mover := srv.AddUser(t, "mover", nil)
	leaverDN, leaver := srv.AddUser(t, "leaver", nil)
	for _, u := range []string{"u1", "u2"} {
		srv.AddUser(t, u, nil)
	}
	e := newADEnv(t, srv, nil)
	e.fullSync(SyncOptions{})
	e.dirSync()
	d, key := e.enroll("mover")

	moved := srv.Move(t, moverDN, staff)
	if rep := e.fullSync(SyncOptions{}); rep.Created != 0 || rep.Removed != 0 || rep.Changes() != 0 || rep.Unchanged != 4 {
		t.Fatalf("full sync after the move: %+v", rep)
	}
	e.wantState("moved", mover, flows.AccountActive, "")
	if l := e.link(mover); !strings.EqualFold(l.DN, moved) {
		t.Errorf("link after the move: %s, want %s", l.DN, moved)
	}
	ch, err := e.begin("mover")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.approve(d, key, ch); err != nil {
		t.Errorf("the moved user's device: %v", err)
	}
	e.dirSync() // sees the move, applied already

	back := srv.Move(t, moved, srv.UsersDN)
	if rep := e.dirSync(); rep.Entries != 1 || rep.Changes() != 0 {
		t.Fatalf("DirSync after the move back: %+v", rep)
	}
	if l := e.link(mover); !strings.EqualFold(l.DN, back) {
		t.Errorf("link after the move back (DirSync): %s, want %s", l.DN, back)
	}
	e.wantState("moved back", mover, flows.AccountActive, "")

	// Out of the base DN: DirSync sees the move (name changes) and the
	// look-up under CN=Users finds nothing.
	eu := newADEnv(t, srv, func(c *SourceConfig) { c.BaseDN = srv.UsersDN })
	if rep := eu.fullSync(SyncOptions{}); rep.Created != 4 {
		t.Fatalf("full sync of CN=Users: %+v", rep)
	}
	eu.dirSync()
	srv.Move(t, leaverDN, leavers)
	if rep := eu.dirSync(); rep.Removed != 1 {
		t.Fatalf("DirSync after a move out of the base DN: %+v", rep)
	}
	eu.wantState("moved out of the base DN", leaver, flows.AccountRemoved, "out of the sync's scope")
}

// TestSambaIncrementalLatency: Run follows Active Directory with DirSync
// polls on a fake clock; the offboarding latency, from the LDAP modify
// that disables a user to Begin refusing them, is measured with the poll
// interval taken out (the test lets the poll run at once). With the live
// check on, Begin refuses with no sync at all.
func TestSambaIncrementalLatency(t *testing.T) {
	srv := sambatest.Start(t)
	dn, id := srv.AddUser(t, "lat", nil)
	liveDN, _ := srv.AddUser(t, "live", nil)
	srv.AddUser(t, "other", nil)
	e := newADEnv(t, srv, nil)
	r := e.run(e.src)
	if rep := r.waitFull(); rep.Created != 3 {
		t.Fatalf("Run's full sync: %+v", rep)
	}
	r.waitFollowing()
	e.enroll("lat")

	const rounds = 5
	var lat []time.Duration
	for range rounds {
		r.waiting()
		start := time.Now()
		srv.Modify(t, dn, map[string][]string{attrUserAccountControl: {"514"}}) // NORMAL_ACCOUNT|ACCOUNTDISABLE
		r.poll()
		_, err := e.begin("lat")
		took := time.Since(start)
		if !errors.Is(err, flows.ErrAccountSuspended) {
			t.Fatalf("Begin after the disable and a poll: %v", err)
		}
		lat = append(lat, took)
		srv.Modify(t, dn, map[string][]string{attrUserAccountControl: {"512"}})
		r.poll()
		e.wantState("enabled again", id, flows.AccountActive, "")
	}
	if r.fulls.Load() != 1 {
		t.Errorf("%d full syncs, want 1", r.fulls.Load())
	}
	slices.Sort(lat)
	t.Logf("AD offboarding latency with DirSync (modify → poll → Begin refuses, poll interval excluded, %d rounds): min %v, median %v, max %v (target 2 s; add up to PollInterval, %v by default, for the wait before the poll)",
		rounds, lat[0].Round(time.Millisecond), lat[rounds/2].Round(time.Millisecond), lat[rounds-1].Round(time.Millisecond), defaultPollInterval)

	// The live check: no sync between the modify and Begin.
	el := newADEnv(t, srv, func(c *SourceConfig) { c.LiveCheck.Enabled = true })
	el.fullSync(SyncOptions{})
	el.enroll("live")
	start := time.Now()
	srv.Disable(t, liveDN)
	_, err := el.begin("live")
	took := time.Since(start)
	if !errors.Is(err, flows.ErrAccountSuspended) {
		t.Fatalf("Begin with the live check after the disable: %v", err)
	}
	if a := el.account("live"); a.State != flows.AccountSuspended || a.StateReason != reasonADDisabled {
		t.Errorf("live-checked account: %+v", a)
	}
	t.Logf("AD offboarding latency with the live check (modify → Begin refuses, no sync): %v", took.Round(time.Millisecond))
}

// TestSambaGroupScope: with a scope group, members of its nested groups
// are synced too (LDAP_MATCHING_RULE_IN_CHAIN); a user who leaves the
// subgroup is removed at the next full sync. Under Run, a change of the
// scope group's own member list (DirSync returns the group) runs a full
// sync at once; a change of a nested group's members does not (that group
// is not followed), and waits for the next full sync.
func TestSambaGroupScope(t *testing.T) {
	srv := sambatest.Start(t)
	group, _ := srv.AddGroup(t, "keystep-users")
	sub, _ := srv.AddGroup(t, "keystep-sub")
	srv.AddToGroup(t, group, sub)
	directDN, _ := srv.AddUser(t, "direct", nil)
	nestedDN, nested := srv.AddUser(t, "nested", nil)
	outsiderDN, _ := srv.AddUser(t, "outsider", nil)
	srv.AddToGroup(t, group, directDN)
	srv.AddToGroup(t, sub, nestedDN)
	e := newADEnv(t, srv, func(c *SourceConfig) { c.Group = group })

	if rep := e.fullSync(SyncOptions{}); rep.Entries != 2 || rep.Created != 2 {
		t.Fatalf("full sync of the group: %+v", rep)
	}
	e.wantState("nested member", nested, flows.AccountActive, "")
	if _, err := e.store.GetAccountByUsername(e.ctx, "outsider"); !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("a non-member has an account: %v", err)
	}
	srv.RemoveFromGroup(t, sub, nestedDN)
	if rep := e.fullSync(SyncOptions{}); rep.Removed != 1 || rep.Entries != 1 {
		t.Fatalf("full sync after leaving the subgroup: %+v", rep)
	}
	e.wantState("left the subgroup", nested, flows.AccountRemoved, "out of the sync's scope")

	// Run takes DirSync's first cookie, then, as the last full sync is
	// recent, would resume from that cookie without a full sync (what
	// changed since that full sync would wait for the next one). Let the
	// last full sync be old: Run starts with one.
	e.clock.Advance(e.src.cfg.FullSyncInterval)
	r := e.run(e.src)
	r.waitFull()
	r.waitFollowing()

	srv.AddToGroup(t, group, outsiderDN)
	r.poll()
	if rep := r.waitFull(); rep.Created != 1 {
		t.Fatalf("the full sync after the scope group changed: %+v", rep)
	}
	r.waitFollowing()
	out := e.account("outsider")
	if out.State != flows.AccountActive {
		t.Errorf("new member: %+v", out)
	}

	srv.RemoveFromGroup(t, group, outsiderDN)
	r.poll()
	if rep := r.waitFull(); rep.Removed != 1 {
		t.Fatalf("the full sync after a member left the scope group: %+v", rep)
	}
	r.waitFollowing()
	e.wantState("left the scope group", out.ID, flows.AccountRemoved, "out of the sync's scope")

	// A nested group's change: no full sync, no account, until one runs.
	srv.AddToGroup(t, sub, nestedDN)
	r.poll()
	if n := r.fulls.Load(); n != 3 {
		t.Errorf("%d full syncs after a nested group changed, want 3 (no new one)", n)
	}
	if _, err := e.store.GetAccountByUsername(e.ctx, "nested"); !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("the nested member came back before a full sync: %v", err)
	}
	e.src.Trigger()
	if rep := r.waitFull(); rep.Created != 1 {
		t.Fatalf("the triggered full sync: %+v", rep)
	}
	r.waitFollowing()
	if a := e.account("nested"); a.State != flows.AccountActive || a.ID == nested {
		t.Errorf("the nested member back (a new account): %+v", a)
	}
}

// TestSambaResume: a Run stopped and started again (keystep restarted)
// within FullSyncInterval of its last full sync resumes DirSync from the
// stored cookie: no full sync, and the change made while it was stopped is
// applied by DirSync. Past the interval, a full sync runs first.
func TestSambaResume(t *testing.T) {
	srv := sambatest.Start(t)
	dn, id := srv.AddUser(t, "frank", nil)
	for _, u := range []string{"u1", "u2"} {
		srv.AddUser(t, u, nil)
	}
	e := newADEnv(t, srv, nil)
	r := e.run(e.src)
	r.waitFull()
	r.waitFollowing()
	r.stop()

	e.clock.Advance(10 * time.Minute)
	srv.Disable(t, dn)
	r = e.run(e.newSource())
	r.waitFollowing()
	if n := r.fulls.Load(); n != 0 {
		t.Errorf("the restarted Run ran %d full syncs, want none", n)
	}
	e.wantState("disabled while keystep was stopped", id, flows.AccountSuspended, reasonADDisabled)
	st, err := e.src.Status(e.ctx)
	if err != nil || st.Incremental == nil || st.Incremental.Kind != ModeDirSync || st.Incremental.Suspended != 1 {
		t.Errorf("status after the resumed DirSync: %+v, %v", st.Incremental, err)
	}
	r.stop()

	e.clock.Advance(e.src.cfg.FullSyncInterval)
	srv.Enable(t, dn)
	r = e.run(e.newSource())
	if rep := r.waitFull(); rep.Restored != 1 {
		t.Errorf("the full sync of a Run started past FullSyncInterval: %+v", rep)
	}
	r.waitFollowing()
	e.wantState("enabled", id, flows.AccountActive, "")
}
