package integration

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

type signingKey struct {
	ID       string    `json:"id"`
	Alg      string    `json:"alg"`
	Use      string    `json:"use"`
	RetireAt time.Time `json:"retire_at"`
	Signing  bool      `json:"signing"`
}

type keyList struct {
	Keys []signingKey `json:"keys"`
}

// jwksKids fetches the server's published key ids.
func jwksKids(t *testing.T, srv server) []string {
	t.Helper()
	resp, err := http.Get(srv.URL + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string   `json:"kid"`
			X5C []string `json:"x5c"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		if len(k.X5C) == 0 {
			t.Errorf("key %s has no x5c", k.Kid)
		}
		kids = append(kids, k.Kid)
	}
	return kids
}

// TestAdminKeysRotate: `keystep admin keys rotate` makes new keys that
// sign at once, keeps the old ones published until they retire, and is
// in the audit log; with the OpenID Provider alone, the use may be left
// out, and no other may be named.
func TestAdminKeysRotate(t *testing.T) {
	srv := startServer(t)
	w := walk{t: t, srv: srv, dir: t.TempDir()}
	var before keyList
	ok(t, &before, w.admin("keys", "list")...)
	if len(before.Keys) != 2 || !before.Keys[0].Signing || !before.Keys[1].Signing || before.Keys[0].Use != "oidc" || before.Keys[1].Use != "oidc" {
		t.Fatalf("a new server should have one signing ES256 and one RS256 oidc key: %+v", before)
	}
	if r := keystep(t, w.admin("keys", "rotate", "--use", "saml")...); r.Code == 0 || !strings.Contains(r.Stderr, "oidc") {
		t.Fatalf("keys rotate --use saml without a SAML IdP: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	var after keyList
	ok(t, &after, w.admin("keys", "rotate")...)
	if len(after.Keys) != 4 {
		t.Fatalf("after rotation: %+v", after)
	}
	kids := jwksKids(t, srv)
	for _, k := range after.Keys {
		old := slices.ContainsFunc(before.Keys, func(b signingKey) bool { return b.ID == k.ID })
		if old == k.Signing || old == k.RetireAt.IsZero() {
			t.Errorf("key %s (old %v): signing %v, retire %v", k.ID, old, k.Signing, k.RetireAt)
		}
		if !slices.Contains(kids, k.ID) {
			t.Errorf("key %s is not in the JWKS %v", k.ID, kids)
		}
	}
	if out := keystep(t, w.admin("audit")...).Stdout; !strings.Contains(out, "keys.rotated") || !strings.Contains(out, "admin:admin") ||
		!strings.Contains(out, "oidc signing keys rotated") || strings.Count(out, "keys.rotated") != 1 {
		t.Errorf("the audit log does not show the rotation (once, of the oidc keys):\n%s", out)
	}
	var again keyList
	ok(t, &again, w.admin("keys", "rotate", "--use", "oidc")...)
	if len(again.Keys) != 6 {
		t.Errorf("after a second rotation, with --use oidc: %+v", again)
	}
}
