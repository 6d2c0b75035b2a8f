package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevicePushRoute drives `keystep device push-route` against a real
// `keystep serve`: a route is set and cleared on every account, and a
// malformed one is refused before any server is asked.
func TestDevicePushRoute(t *testing.T) {
	for _, k := range []string{"KEYSTEP_LISTEN", "KEYSTEP_PUBLIC_URL", "KEYSTEP_DATA_DIR", "KEYSTEP_STORE_DRIVER", "KEYSTEP_STORE_DSN", "KEYSTEP_ADMIN_TOKEN", "KEYSTEP_DEVICE_STATE"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	srv, url := startServe(t, dataDir)
	defer srv.stop(t)
	c := cli{t: t, server: url, tokenFile: filepath.Join(dataDir, "admin-token"), state: filepath.Join(dir, "device.json")}

	if code, _, errs := c.run(c.device("push-route", "fcm:token")...); code != 1 || !strings.Contains(errs, "no account is enrolled") {
		t.Errorf("push-route with no enrollment: exit %d, %q", code, errs)
	}
	c.must(c.admin("user", "add", "alice", "--email", "alice@example.com")...)
	inv := decode[struct{ Link string }](t, c.must(c.admin("--json", "invite", "alice")...))
	c.must(c.device("enroll", inv.Link)...)

	route := "apns:" + strings.Repeat("0a1b2c3d", 8)
	if out := c.must(c.device("push-route", route)...); !strings.Contains(out, "Push route set for alice at "+url) {
		t.Errorf("push-route: %q", out)
	}
	res := decode[struct {
		PushRoute string `json:"push_route"`
		Accounts  []struct{ Username, State string }
	}](t, c.must(c.device("--json", "push-route", "")...))
	if res.PushRoute != "" || len(res.Accounts) != 1 || res.Accounts[0].Username != "alice" || res.Accounts[0].State != "cleared" {
		t.Errorf("push-route --json \"\": %+v", res)
	}

	before, err := os.ReadFile(c.state)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{c.device("push-route", "apns:not-hex"), 1, "APNs device token"},
		{c.device("push-route", "webpush:https://push.example/x"), 1, "must be empty"},
		{c.device("push-route"), 2, "needs ROUTE"},
		{c.device("push-route", "a", "b"), 2, "needs ROUTE"},
	} {
		if code, out, errs := c.run(tc.args...); code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, %q%q; want exit %d and %q", tc.args, code, out, errs, tc.code, tc.want)
		}
	}
	if after, err := os.ReadFile(c.state); err != nil || string(after) != string(before) {
		t.Errorf("refused commands changed the state file: %v", err)
	}
	// The server saw exactly the two good calls.
	if n := strings.Count(c.must(c.admin("audit")...), "device.push_route_updated"); n != 2 {
		t.Errorf("%d device.push_route_updated events, want 2", n)
	}
}
