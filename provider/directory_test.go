package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/internal/slapdtest"
	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
)

// dirEnv is a provider with two directory sources: corp, on a real slapd
// (live check on, fail-closed), and down, whose only server never answers.
type dirEnv struct {
	*env
	slapd      *slapdtest.Server
	corp, down *directory.Source
}

const dirUsers = 25

func newDirEnv(t *testing.T) *dirEnv {
	t.Helper()
	slapd := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(dirUsers, "people")})
	checker := directory.NewLiveChecker()
	t.Cleanup(checker.Close)
	e := newBareEnvWith(t, flows.Config{}, flows.WithAccountChecker(checker))
	corp, err := directory.NewSource(directory.SourceConfig{
		Name: "corp", URLs: []string{slapd.LDAPSURL}, RootCAs: slapd.CAPool,
		BindDN: slapd.SyncDN, BindPassword: slapd.SyncPassword, BaseDN: slapdtest.PeopleDN,
		Suspension: directory.Suspension{Preset: directory.PresetOpenLDAP}, Incremental: directory.ModeNone,
		LiveCheck: directory.LiveCheckConfig{Enabled: true},
	}, e.svc, directory.WithLogger(e.srv.log))
	if err != nil {
		t.Fatal(err)
	}
	down, err := directory.NewSource(directory.SourceConfig{
		Name: "down", URLs: []string{"ldap://127.0.0.1:" + closedPort(t)}, InsecureNoTLS: true,
		BindDN: "cn=keystep,dc=example,dc=org", BindPassword: "not-used", BaseDN: "dc=example,dc=org",
		Incremental: directory.ModeNone, Timeout: 5 * time.Second,
	}, e.svc, directory.WithLogger(e.srv.log))
	if err != nil {
		t.Fatal(err)
	}
	checker.Add(corp)
	checker.Add(down)
	srv, err := New(Options{Flows: e.svc, AdminToken: testToken, Logger: e.srv.log, Clock: e.clock, Directory: []*directory.Source{corp, down}})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(e.ts.Close)
	return &dirEnv{env: e, slapd: slapd, corp: corp, down: down}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

type healthz struct {
	Status    string            `json:"status"`
	Directory map[string]string `json:"directory"`
}

// TestDirectoryAdminAPI: the status of every source, a sync started
// through the API, and /healthz: degraded (200) while a source fails.
func TestDirectoryAdminAPI(t *testing.T) {
	e := newDirEnv(t)

	// Admins only.
	wantProblem(t, e.adminAs("", "GET", api.PathDirectory, nil), http.StatusUnauthorized, api.ProblemUnauthorized)
	wantProblem(t, e.adminAs("", "POST", syncPath("corp"), nil), http.StatusUnauthorized, api.ProblemUnauthorized)

	// Before any sync.
	list := decode[api.DirectoryStatusList](t, e.admin("GET", api.PathDirectory, nil), http.StatusOK)
	if len(list.Sources) != 2 || list.Sources[0].Source != "corp" || list.Sources[0].Health != api.DirectoryNever ||
		list.Sources[1].Source != "down" || list.Sources[1].Health != api.DirectoryNever {
		t.Fatalf("status before any sync = %+v", list)
	}
	if h := decode[healthz](t, e.admin("GET", api.PathHealth, nil), http.StatusOK); h.Status != "ok" ||
		h.Directory["corp"] != "never" || h.Directory["down"] != "never" {
		t.Fatalf("health before any sync = %+v", h)
	}

	// corp syncs; down fails.
	rep, err := e.corp.FullSync(e.ctx, directory.SyncOptions{})
	if err != nil || rep.Created != dirUsers {
		t.Fatalf("corp sync: %+v, %v", rep, err)
	}
	if _, err := e.down.FullSync(e.ctx, directory.SyncOptions{}); err == nil {
		t.Fatal("the sync of an unreachable directory worked")
	}
	list = decode[api.DirectoryStatusList](t, e.admin("GET", api.PathDirectory, nil), http.StatusOK)
	corp, down := list.Sources[0], list.Sources[1]
	if corp.Health != api.DirectoryOK || corp.LastFull == nil || corp.LastFull.Entries != dirUsers ||
		corp.LastFull.Created != dirUsers || corp.LastFull.Kind != "full" || corp.Server != e.slapd.LDAPSURL {
		t.Errorf("corp = %+v (last full %+v)", corp, corp.LastFull)
	}
	if down.Health != api.DirectoryFailing || down.LastError == "" || down.Failures != 1 || down.LastFull != nil {
		t.Errorf("down = %+v", down)
	}
	if strings.Contains(down.LastError, "not-used") {
		t.Errorf("the status shows the bind password: %q", down.LastError)
	}
	h := decode[healthz](t, e.admin("GET", api.PathHealth, nil), http.StatusOK)
	if h.Status != "degraded" || h.Directory["corp"] != "ok" || h.Directory["down"] != "failing" {
		t.Errorf("health with a failing source = %+v", h)
	}

	// The admin client sees the same.
	c, err := adminclient.New(e.ts.URL, testToken)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := c.DirectoryStatus(e.ctx)
	if err != nil || len(cl.Sources) != 2 || cl.Sources[0].LastFull == nil || cl.Sources[1].Health != api.DirectoryFailing {
		t.Fatalf("client status = %+v, %v", cl, err)
	}

	// A sync started through the API runs in the source's loop.
	ctx, cancel := context.WithCancel(e.ctx)
	synced := make(chan directory.RunReport, 4)
	done := make(chan error, 1)
	go func() {
		done <- e.corp.Run(ctx, directory.RunHooks{FullSynced: func(r directory.RunReport, err error) {
			if err != nil {
				t.Errorf("full sync in Run: %v", err)
			}
			synced <- r
		}})
	}()
	defer func() {
		cancel()
		<-done
	}()
	first := waitReport(t, synced) // Run's own, at start
	started := decode[api.DirectorySyncStarted](t, e.admin("POST", syncPath("corp"), nil), http.StatusAccepted)
	if started.Source != "corp" {
		t.Errorf("started = %+v", started)
	}
	second := waitReport(t, synced)
	if second.Run == first.Run || second.Entries != dirUsers || second.Unchanged != dirUsers {
		t.Errorf("the triggered sync: %+v (first %+v)", second, first)
	}
	if _, err := c.TriggerDirectorySync(e.ctx, "corp", 3); err != nil {
		t.Fatal(err)
	}
	waitReport(t, synced)
	audit, err := e.svc.Audit(e.ctx, flows.AuditFilter{})
	if err != nil || len(audit) == 0 || audit[len(audit)-1].Action != "directory.confirm_removals" || !strings.Contains(audit[len(audit)-1].Detail, "up to 3 removals") {
		t.Errorf("the confirmation is not in the audit log: %+v, %v", audit, err)
	}
	wantProblem(t, e.admin("POST", syncPath("corp"), map[string]int{"confirm_removals": -1}), http.StatusBadRequest, api.ProblemInvalid)

	// Unknown sources, bad bodies.
	wantProblem(t, e.admin("POST", syncPath("nope"), nil), http.StatusNotFound, api.ProblemNotFound)
	if _, err := c.TriggerDirectorySync(e.ctx, "nope", 0); !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("client trigger of an unknown source: %v", err)
	}
	wantProblem(t, e.admin("POST", syncPath("corp"), map[string]int{"confirm": 1}), http.StatusBadRequest, api.ProblemInvalid)
}

// TestDirectoryUnavailableProblem: a sign-in whose live check cannot reach
// the directory (fail-closed) is a 503 directory-unavailable problem that
// does not show the LDAP error, and the admin client maps it back.
func TestDirectoryUnavailableProblem(t *testing.T) {
	e := newDirEnv(t)
	if _, err := e.corp.FullSync(e.ctx, directory.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	e.slapd.Kill()
	p := wantProblem(t, e.admin("POST", strings.Replace(api.PathTestSignIn, "{user}", "user000001", 1), nil),
		http.StatusServiceUnavailable, api.ProblemDirectoryUnavailable)
	if p.Detail != "the directory could not confirm the account; try again in a moment" || p.Title != "Directory unavailable" {
		t.Errorf("problem = %+v", p)
	}
	if !strings.Contains(e.logText(), "live check") {
		t.Errorf("the log does not say why:\n%s", e.logText())
	}
	c, err := adminclient.New(e.ts.URL, testToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.TestSignIn(e.ctx, "user000001"); !errors.Is(err, flows.ErrDirectoryUnavailable) {
		t.Errorf("client: %v", err)
	}
	// The store still answers: keystep is up; the directory is not
	// failing a sync yet, only the live check.
	decode[healthz](t, e.admin("GET", api.PathHealth, nil), http.StatusOK)
}

func TestDirectoryOptions(t *testing.T) {
	e := newBareEnv(t)
	src, err := directory.NewSource(directory.SourceConfig{
		Name: "corp", URLs: []string{"ldaps://dc1.example"}, BindDN: "cn=k,dc=example", BindPassword: "x", BaseDN: "dc=example",
	}, e.svc)
	if err != nil {
		t.Fatal(err)
	}
	for _, srcs := range [][]*directory.Source{{src, src}, {nil}} {
		if _, err := New(Options{Flows: e.svc, AdminToken: testToken, Directory: srcs}); err == nil {
			t.Errorf("New accepted %v", srcs)
		}
	}
}

func syncPath(source string) string {
	return strings.Replace(api.PathDirectorySync, "{source}", source, 1)
}

// waitReport waits for the next full sync of a running source. The
// timeout only turns a hang into a failure.
func waitReport(t *testing.T, ch <-chan directory.RunReport) directory.RunReport {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(time.Minute):
		t.Fatal("no full sync")
		return directory.RunReport{}
	}
}

// FuzzDirectorySync posts arbitrary source names and bodies to the sync
// endpoint: never a 5xx, a problem document on every 4xx, and 202 only for
// the configured source with an empty or empty-object body.
func FuzzDirectorySync(f *testing.F) {
	e := newBareEnv(f)
	src, err := directory.NewSource(directory.SourceConfig{
		Name: "corp", URLs: []string{"ldaps://dc1.example"}, BindDN: "cn=k,dc=example", BindPassword: "x", BaseDN: "dc=example",
	}, e.svc)
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(Options{Flows: e.svc, AdminToken: testToken, Logger: e.srv.log, Clock: e.clock, Directory: []*directory.Source{src}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("corp", []byte(""))
	f.Add("corp", []byte("{}"))
	f.Add("corp", []byte(`{"confirm_removals":3}`))
	f.Add("CORP", []byte("{}"))
	f.Add("../users", []byte("{}"))
	f.Add("%2e%2e", []byte("[]"))
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		req.URL.Path = syncPath(name) // a name that is no path segment is a miss, as on the wire
		req.URL.RawPath = ""
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		b := rec.Body.Bytes()
		switch {
		case rec.Code >= 500:
			t.Fatalf("%q: %d %s", name, rec.Code, b)
		case rec.Code >= 400:
			if _, err := parseProblem(rec.Header(), b); err != nil {
				t.Fatalf("%q: %d: %v: %s", name, rec.Code, err, b)
			}
		case rec.Code >= 300 && rec.Code < 400:
			// The mux redirects a path that is not clean ("..", "//").
		case rec.Code == http.StatusAccepted:
			var req api.DirectorySync
			trimmed := strings.TrimSpace(string(body))
			ok := trimmed == "" || json.Unmarshal(body, &req) == nil && req.ConfirmRemovals >= 0 && req.ConfirmRemovals <= maxConfirmRemovals
			if name != "corp" || !ok {
				t.Fatalf("%q with %q accepted: %s", name, body, b)
			}
		default:
			t.Fatalf("%q: %d %s", name, rec.Code, b)
		}
	})
}

// TestDirectoryMetrics: /metrics (admins only) says which source syncs and
// which fails, from the status in the store.
func TestDirectoryMetrics(t *testing.T) {
	e := newDirEnv(t)
	wantProblem(t, e.adminAs("", "GET", PathMetrics, nil), http.StatusUnauthorized, api.ProblemUnauthorized)
	if _, err := e.corp.FullSync(e.ctx, directory.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.down.FullSync(e.ctx, directory.SyncOptions{}); err == nil {
		t.Fatal("the sync of an unreachable directory worked")
	}
	res := e.admin("GET", PathMetrics, nil)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d %v", res.StatusCode, err)
	}
	text := string(b)
	for _, want := range []string{
		`keystep_directory_up{source="corp"} 1`,
		`keystep_directory_up{source="down"} 0`,
		`keystep_directory_health{health="failing",source="down"} 1`,
		`keystep_directory_health{health="ok",source="down"} 0`,
		`keystep_directory_consecutive_failures{source="down"} 1`,
		`keystep_directory_last_full_sync_entries{source="corp"} ` + strconv.Itoa(dirUsers),
		`keystep_directory_last_full_sync_timestamp_seconds{source="corp"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, `keystep_directory_last_full_sync_timestamp_seconds{source="down"}`) {
		t.Errorf("a source that never synced has a last sync time:\n%s", text)
	}
}
