package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/internal/slapdtest"
	"github.com/keystep/keystep/provider/api"
)

// clearKeystepEnv keeps the tests' configuration from the environment.
func clearKeystepEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"KEYSTEP_LISTEN", "KEYSTEP_PUBLIC_URL", "KEYSTEP_DATA_DIR", "KEYSTEP_STORE_DRIVER",
		"KEYSTEP_STORE_DSN", "KEYSTEP_ADMIN_TOKEN", "KEYSTEP_CODES_KEY_FILE", "KEYSTEP_CODES_METHODS",
		"KEYSTEP_ALERTS_WEBHOOK_URL", "KEYSTEP_ALERTS_WEBHOOK_SECRET_FILE", "KEYSTEP_ALERTS_EMAIL_TO", "KEYSTEP_SERVER"} {
		t.Setenv(k, "")
	}
}

// dirSetup is a slapd with users and a keystep configuration that syncs
// them (source corp, over ldaps:// with the password in a file).
type dirSetup struct {
	slapd   *slapdtest.Server
	dir     string // the test's directory
	dataDir string
	config  string // the configuration file
}

func newDirSetup(t *testing.T, users int, extra string) *dirSetup {
	t.Helper()
	clearKeystepEnv(t)
	slapd := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(users, "people")})
	dir := t.TempDir()
	pw := filepath.Join(dir, "ldap-password")
	if err := os.WriteFile(pw, []byte(slapd.SyncPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &dirSetup{slapd: slapd, dir: dir, dataDir: filepath.Join(dir, "data")}
	d.config = filepath.Join(dir, "keystep.yaml")
	d.writeConfig(t, `
listen: 127.0.0.1:0
data_dir: `+d.dataDir+`
directory:
  sources:
    - name: corp
      urls: [`+slapd.LDAPSURL+`]
      ca_file: `+slapd.CAFile+`
      bind_dn: `+slapd.SyncDN+`
      bind_password_file: `+pw+`
      base_dn: `+slapdtest.PeopleDN+`
      suspension: {preset: openldap_ppolicy}
`+extra)
	return d
}

func (d *dirSetup) writeConfig(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(d.config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// keystep runs a command and returns its exit code and output.
func keystep(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// mustKeystep runs a command that must succeed.
func mustKeystep(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	code, out, errs := keystep(args...)
	if code != 0 {
		t.Fatalf("keystep %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out, errs
}

// createStore makes the SQLite store keystep serve would make.
func (d *dirSetup) createStore(t *testing.T) {
	t.Helper()
	if err := os.MkdirAll(d.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(d.dataDir, sqliteFile))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}

// accounts lists the store's accounts by state.
func (d *dirSetup) accounts(t *testing.T) map[flows.AccountState]int {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(d.dataDir, sqliteFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	as, err := st.ListAccounts(context.Background(), flows.AccountFilter{IncludeRemoved: true})
	if err != nil {
		t.Fatal(err)
	}
	out := map[flows.AccountState]int{}
	for _, a := range as {
		out[a.State]++
	}
	return out
}

// reportLine finds "label  N" in a sync report.
func reportLine(t *testing.T, out, label string, n int) {
	t.Helper()
	if !regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(label) + `\s+` + regexp.QuoteMeta(strconv.Itoa(n)) + `\s*$`).MatchString(out) {
		t.Errorf("the report does not say %s %d:\n%s", label, n, out)
	}
}

// TestDirectoryTestCommand: keystep directory test binds, counts, shows the
// first users with their state, and opens no store.
func TestDirectoryTestCommand(t *testing.T) {
	d := newDirSetup(t, 30, "")
	d.slapd.LockPermanently(t, slapdtest.UserDN("user000002", "people"))

	out, _ := mustKeystep(t, "directory", "test", "--config", d.config)
	t.Logf("keystep directory test:\n%s", out)
	for _, want := range []string{"source:", "corp", "server:", d.slapd.LDAPSURL, "incremental sync:", "syncrepl",
		"users:", "30", "skipped:", "first 10 users:", "USERNAME", "EXTERNAL ID", "user000001", "user000001@example.org",
		"User 000001", "result:", "ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^user000002 .*suspended \(`).MatchString(out) {
		t.Errorf("the locked user is not shown suspended:\n%s", out)
	}
	if strings.Contains(out, "user000011") {
		t.Errorf("more than 10 users shown:\n%s", out)
	}
	if strings.Contains(out, d.slapd.SyncPassword) {
		t.Errorf("the output shows the password")
	}
	// It opened no store: the data directory was not even made.
	if _, err := os.Stat(d.dataDir); !os.IsNotExist(err) {
		t.Errorf("the data directory exists after a test: %v", err)
	}

	// JSON, and one source by name.
	out, _ = mustKeystep(t, "directory", "test", "--config", d.config, "--source", "corp", "--json")
	var res directoryTestResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !res.OK || res.Users != 30 || res.Skipped != 0 || len(res.Sample) != 10 || res.Sample[0].ExternalID == "" || res.Mode != "syncrepl" {
		t.Errorf("json = %+v", res)
	}
	if code, _, errs := keystep("directory", "test", "--config", d.config, "--source", "nope"); code != 1 || !strings.Contains(errs, `no directory source is named "nope" (configured: corp)`) {
		t.Errorf("--source nope: exit %d, %s", code, errs)
	}
	if code, _, errs := keystep("directory", "test"); code != 1 || !strings.Contains(errs, "has no directory sources") {
		t.Errorf("no configuration: exit %d, %s", code, errs)
	}
	if code, _, errs := keystep("directory", "test", "extra"); code != 2 || !strings.Contains(errs, "takes no arguments") {
		t.Errorf("an argument: exit %d, %s", code, errs)
	}

	// A base DN with no users fails: a sync would stop at the guard.
	text, _ := os.ReadFile(d.config)
	d.writeConfig(t, strings.Replace(string(text), "base_dn: "+slapdtest.PeopleDN, "base_dn: "+slapdtest.StaffDN, 1))
	code, out, errs := keystep("directory", "test", "--config", d.config)
	if code != 1 || !strings.Contains(errs, "returned no users") || !strings.Contains(out, "FAILED") {
		t.Errorf("an empty base: exit %d\n%s%s", code, out, errs)
	}
	// A wrong password fails, without showing it.
	if err := os.WriteFile(filepath.Join(d.dir, "ldap-password"), []byte("wrong-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = keystep("directory", "test", "--config", d.config)
	if code != 1 || !strings.Contains(out, "FAILED") || strings.Contains(out+errs, "wrong-password") {
		t.Errorf("a wrong password: exit %d\n%s%s", code, out, errs)
	}
	// A directory that is down fails.
	d.writeConfig(t, string(text))
	if err := os.WriteFile(filepath.Join(d.dir, "ldap-password"), []byte(d.slapd.SyncPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.slapd.Kill()
	code, out, errs = keystep("directory", "test", "--config", d.config)
	if code != 1 || !strings.Contains(errs, "cannot connect") {
		t.Errorf("a directory that is down: exit %d\n%s%s", code, out, errs)
	}
}

// TestDirectorySyncCommand: keystep directory sync, dry and for real, the
// guard and its confirmation, and the progress off a terminal.
func TestDirectorySyncCommand(t *testing.T) {
	d := newDirSetup(t, 30, "      page_size: 4\n")

	// No store yet: a mistake of --data, refused.
	if code, _, errs := keystep("directory", "sync", "--config", d.config); code != 1 || !strings.Contains(errs, "no keystep database") {
		t.Fatalf("no store: exit %d, %s", code, errs)
	}
	d.createStore(t)

	out, _ := mustKeystep(t, "directory", "sync", "--config", d.config, "--dry-run")
	if !strings.Contains(out, "dry run") || !strings.Contains(out, "nothing was changed") {
		t.Errorf("dry run:\n%s", out)
	}
	reportLine(t, out, "entries read", 30)
	reportLine(t, out, "created", 30)
	if n := d.accounts(t); len(n) != 0 {
		t.Fatalf("a dry run made accounts: %v", n)
	}

	out, _ = mustKeystep(t, "directory", "sync", "--config", d.config)
	reportLine(t, out, "created", 30)
	reportLine(t, out, "removed", 0)
	if n := d.accounts(t); n[flows.AccountActive] != 30 {
		t.Fatalf("accounts after the sync: %v", n)
	}

	// Again, with the progress: off a terminal, a line at each tenth.
	out, errs := mustKeystep(t, "directory", "sync", "--config", d.config, "--progress")
	t.Logf("keystep directory sync --progress:\n%s%s", out, errs)
	reportLine(t, out, "unchanged", 30)
	if !strings.Contains(errs, "corp: 100% (30 of about 30 entries") || !strings.Contains(errs, "corp: 20% (") || strings.Contains(errs, "\r") {
		t.Errorf("progress:\n%s", errs)
	}

	// Five users leave: more than 10% of 30. The guard stops the sync.
	for i := 1; i <= 5; i++ {
		d.slapd.Delete(t, slapdtest.UserDN("user00000"+strconv.Itoa(i), "people"))
	}
	for _, dry := range []bool{true, false} {
		args := []string{"directory", "sync", "--config", d.config}
		if dry {
			args = append(args, "--dry-run")
		}
		code, out, errs := keystep(args...)
		t.Logf("keystep %s: exit %d\n%s%s", strings.Join(args[1:], " "), code, out, errs)
		if code != 1 || !strings.Contains(out, "STOPPED by the mass-removal guard") ||
			!strings.Contains(errs, "--source corp --confirm-removals 5") || !strings.Contains(errs, "nothing was changed") {
			t.Errorf("guard (dry %v): exit %d\n%s%s", dry, code, out, errs)
		}
		if n := d.accounts(t); n[flows.AccountActive] != 30 {
			t.Fatalf("the guard let changes through: %v", n)
		}
	}
	// Too few confirmed: still stopped.
	if code, _, _ := keystep("directory", "sync", "--config", d.config, "--confirm-removals", "4"); code != 1 {
		t.Errorf("4 of 5 removals confirmed: exit %d", code)
	}
	out, _ = mustKeystep(t, "directory", "sync", "--config", d.config, "--confirm-removals", "5")
	t.Logf("keystep directory sync --confirm-removals 5:\n%s", out)
	reportLine(t, out, "removed", 5)
	if n := d.accounts(t); n[flows.AccountActive] != 25 || n[flows.AccountRemoved] != 5 {
		t.Fatalf("accounts after the confirmed sync: %v", n)
	}

	// JSON.
	out, _ = mustKeystep(t, "directory", "sync", "--config", d.config, "--json")
	var rep syncReportJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.OK || rep.Report.Unchanged != 25 || rep.Report.Kind != "full" {
		t.Errorf("json: %+v, %v\n%s", rep, err, out)
	}

	if code, _, errs := keystep("directory", "sync", "--config", d.config, "--confirm-removals", "-1"); code != 2 || !strings.Contains(errs, "must not be negative") {
		t.Errorf("a negative confirmation: exit %d, %s", code, errs)
	}
}

func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	bar := &progressBar{w: &b, tty: true, name: "corp"}
	bar.update(directory.Progress{Entries: 500, Elapsed: time.Second})
	bar.update(directory.Progress{Entries: 1000, Expected: 4000, Elapsed: 2 * time.Second})
	bar.update(directory.Progress{Entries: 4000, Expected: 4000, Elapsed: 4 * time.Second})
	bar.done()
	want := "\rcorp: 500 entries read, 500/s" +
		"\rcorp: 1000 entries read, 500/s [######..................]  25%, ETA 6s" +
		"\rcorp: 4000 entries read, 1000/s [########################] 100%" + strings.Repeat(" ", 7) + "\n"
	if b.String() != want {
		t.Errorf("terminal:\n%q\nwant\n%q", b.String(), want)
	}

	b.Reset()
	bar = &progressBar{w: &b, name: "corp"}
	bar.update(directory.Progress{Entries: 500, Elapsed: time.Second}) // size unknown: nothing
	for _, n := range []int{50, 90, 100, 350, 1000, 1200} {
		bar.update(directory.Progress{Entries: n, Expected: 1000, Elapsed: time.Second})
	}
	bar.done()
	want = "corp: 10% (100 of about 1000 entries, 100 entries/s)\n" +
		"corp: 30% (350 of about 1000 entries, 350 entries/s)\n" +
		"corp: 100% (1000 of about 1000 entries, 1000 entries/s)\n"
	if b.String() != want {
		t.Errorf("not a terminal:\n%s\nwant\n%s", b.String(), want)
	}
	var nilBar *progressBar
	nilBar.update(directory.Progress{Entries: 1})
	nilBar.done()
}

// TestServeDirectory: keystep serve syncs the configured source in the
// background, logs where it is (never the password), reports it in
// /healthz and to keystep directory status, starts a sync on keystep
// directory trigger, and stops it cleanly.
func TestServeDirectory(t *testing.T) {
	d := newDirSetup(t, 12, "      incremental: none\n")
	srv := start("serve", "--config", d.config)
	line := srv.err.next(t, regexp.MustCompile(`^.*msg="directory source".*$`))[0] // logged before listening
	url := srv.err.next(t, listening)[1]
	for _, want := range []string{"name=corp", d.slapd.LDAPSURL, `base_dn="` + slapdtest.PeopleDN + `"`, "live_check=false"} {
		if !strings.Contains(line, want) {
			t.Errorf("the source's log line lacks %q: %s", want, line)
		}
	}
	synced := regexp.MustCompile(`msg="directory full sync".*entries=12`)
	srv.err.next(t, synced)

	tokenFile := filepath.Join(d.dataDir, adminTokenFile)
	out, _ := mustKeystep(t, "directory", "status", "--server", url, "--token-file", tokenFile)
	t.Logf("keystep directory status:\n%s", out)
	for _, want := range []string{"source:", "corp", "health:", "ok", "last full sync:", "12 entries, 12 created"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, _ = mustKeystep(t, "directory", "status", "--server", url, "--token-file", tokenFile, "--json")
	var list api.DirectoryStatusList
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Sources) != 1 || list.Sources[0].Health != "ok" {
		t.Errorf("status --json: %+v, %v", list, err)
	}

	resp, err := http.Get(url + api.PathHealth)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Status    string
		Directory map[string]string
	}
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || h.Status != "ok" || h.Directory["corp"] != "ok" {
		t.Errorf("healthz: %d %+v %v", resp.StatusCode, h, err)
	}

	out, _ = mustKeystep(t, "directory", "trigger", "corp", "--server", url, "--token-file", tokenFile)
	if !strings.Contains(out, "a full sync starts now") {
		t.Errorf("trigger: %s", out)
	}
	srv.err.next(t, synced)
	if code, _, errs := keystep("directory", "trigger", "nope", "--server", url, "--token-file", tokenFile); code != 1 || !strings.Contains(errs, `no directory source is named "nope"`) {
		t.Errorf("trigger nope: exit %d, %s", code, errs)
	}

	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exit %d:\n%s", code, srv.err.String())
	}
	if strings.Contains(srv.err.String(), d.slapd.SyncPassword) {
		t.Errorf("the log shows the bind password")
	}
}
