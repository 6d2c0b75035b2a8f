//go:build unix

package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/internal/slapdtest"
	"github.com/keystep/keystep/plugin/pluginapi"
	pb "github.com/keystep/keystep/plugin/proto/keystep/v1"
	"github.com/keystep/keystep/plugin/wire"
	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
)

// TestPluginDirectory: the plugin syncs its directory sources as keystep
// serve does, and a sign-in the live check cannot confirm reaches the host
// as Unavailable with flows.ErrDirectoryUnavailable.
func TestPluginDirectory(t *testing.T) {
	slapd := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(5, "people")})
	dir := t.TempDir()
	bin := filepath.Join(dir, "keystep")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pw := filepath.Join(dir, "ldap-password")
	if err := os.WriteFile(pw, []byte(slapd.SyncPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	cfg := `listen: 127.0.0.1:0
data_dir: ` + data + `
directory:
  sources:
    - name: corp
      urls: [` + slapd.LDAPSURL + `]
      ca_file: ` + slapd.CAFile + `
      bind_dn: ` + slapd.SyncDN + `
      bind_password_file: ` + pw + `
      base_dn: ` + slapdtest.PeopleDN + `
      suspension: {preset: openldap_ppolicy}
      live_check: {enabled: true}
`
	c, stderr, _ := launch(t, bin, cfg, pluginapi.Versions(nil))
	rpc, err := c.Client()
	if err != nil {
		t.Fatalf("handshake: %v\nplugin log:\n%s", err, stderr)
	}
	raw, err := rpc.Dispense(pluginapi.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	p := raw.(*pluginapi.Clients)
	ctx := context.Background()
	h, err := p.Health.Check(ctx, &pb.HealthRequest{})
	if err != nil {
		t.Fatal(err)
	}
	token, err := readTokenFile(filepath.Join(data, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := adminclient.New(h.GetDeviceApiUrl(), token)
	if err != nil {
		t.Fatal(err)
	}

	// The first full sync is audited; the audit log's long-poll waits for it.
	waitAudit(t, admin, "directory.sync")
	st, err := admin.DirectoryStatus(ctx)
	if err != nil || len(st.Sources) != 1 || st.Sources[0].Health != api.DirectoryOK || st.Sources[0].LastFull.Created != 5 {
		t.Fatalf("directory status: %+v, %v\nplugin log:\n%s", st, err, stderr)
	}

	// The directory goes away: the live check cannot confirm the account
	// (fail-closed), and the host is told so.
	slapd.Kill()
	_, err = p.Step.Begin(ctx, &pb.BeginRequest{Username: "user000001", Client: "Payroll"})
	err = wire.FromStatus(err)
	var re *wire.RemoteError
	if !errors.Is(err, flows.ErrDirectoryUnavailable) || !errors.As(err, &re) || re.Code != codes.Unavailable {
		t.Errorf("begin while the directory is down: %#v", err)
	}

	c.Kill()
	lines := jsonLines(t, stderr.String())
	if !hasLine(lines, "directory source", "") || !hasLine(lines, "stopped", "") {
		t.Errorf("the plugin did not log its source or did not stop gracefully:\n%s", stderr)
	}
}

// waitAudit long-polls the audit log until an event with action appears.
func waitAudit(t *testing.T, admin *adminclient.Client, action string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // turns a hang into a failure
	defer cancel()
	var after int64
	for {
		evs, err := admin.Audit(ctx, after, 1000, "", adminclient.MaxWait)
		if err != nil {
			t.Fatalf("waiting for %s in the audit log: %v", action, err)
		}
		for _, ev := range evs {
			if ev.Action == action {
				return
			}
			after = ev.Seq
		}
	}
}
