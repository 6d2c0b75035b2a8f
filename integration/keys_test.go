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

// byUse splits a key list by use.
func byUse(l keyList) map[string][]signingKey {
	m := map[string][]signingKey{}
	for _, k := range l.Keys {
		m[k.Use] = append(m[k.Use], k)
	}
	return m
}

// TestAdminKeysRotate: `keystep admin keys rotate --use` makes new keys of
// one use that sign at once, keeps the old ones published until they
// retire, leaves the other use alone, and is in the audit log; with both
// the OpenID Provider and the SAML IdP on, the use must be named.
func TestAdminKeysRotate(t *testing.T) {
	srv := startServer(t)
	w := walk{t: t, srv: srv, dir: t.TempDir()}
	var list keyList
	ok(t, &list, w.admin("keys", "list")...)
	before := byUse(list)
	if o := before["oidc"]; len(o) != 2 || !o[0].Signing || !o[1].Signing || o[0].Alg == o[1].Alg {
		t.Fatalf("a new server should have one signing ES256 and one RS256 oidc key: %+v", list)
	}
	if s := before["saml"]; len(s) != 1 || !s[0].Signing || s[0].Alg != "RS256" || len(list.Keys) != 3 {
		t.Fatalf("a new server should have one signing RS256 saml key: %+v", list)
	}
	if r := keystep(t, w.admin("keys", "rotate")...); r.Code == 0 || !strings.Contains(r.Stderr, "oidc, saml") {
		t.Fatalf("keys rotate without --use: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := keystep(t, w.admin("keys", "rotate", "--use", "cookie")...); r.Code == 0 || !strings.Contains(r.Stderr, "oidc, saml") {
		t.Fatalf("keys rotate --use cookie: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	var after keyList
	ok(t, &after, w.admin("keys", "rotate", "--use", "oidc")...)
	if len(after.Keys) != 4 || len(byUse(after)["oidc"]) != 4 {
		t.Fatalf("after rotation: %+v", after)
	}
	kids := jwksKids(t, srv)
	for _, k := range after.Keys {
		old := slices.ContainsFunc(before["oidc"], func(b signingKey) bool { return b.ID == k.ID })
		if old == k.Signing || old == k.RetireAt.IsZero() {
			t.Errorf("key %s (old %v): signing %v, retire %v", k.ID, old, k.Signing, k.RetireAt)
		}
		if !slices.Contains(kids, k.ID) {
			t.Errorf("key %s is not in the JWKS %v", k.ID, kids)
		}
	}
	if slices.Contains(kids, before["saml"][0].ID) {
		t.Errorf("the SAML key %s is in the OIDC JWKS %v", before["saml"][0].ID, kids)
	}
	ok(t, &list, w.admin("keys", "list")...)
	if s := byUse(list)["saml"]; len(s) != 1 || s[0].ID != before["saml"][0].ID || !s[0].Signing {
		t.Errorf("the oidc rotation changed the saml keys: %+v", list)
	}
	if out := keystep(t, w.admin("audit")...).Stdout; !strings.Contains(out, "admin:admin") ||
		!strings.Contains(out, "oidc signing keys rotated") || strings.Count(out, "keys.rotated") != 1 {
		t.Errorf("the audit log does not show the rotation (once, of the oidc keys):\n%s", out)
	}

	ok(t, &after, w.admin("keys", "rotate", "--use", "saml")...)
	if s := byUse(after)["saml"]; len(after.Keys) != 2 || len(s) != 2 || s[0].Signing || !s[1].Signing || s[0].RetireAt.IsZero() {
		t.Errorf("after the saml rotation: %+v", after)
	}
	if out := keystep(t, w.admin("audit")...).Stdout; !strings.Contains(out, "saml signing keys rotated") || strings.Count(out, "keys.rotated") != 2 {
		t.Errorf("the audit log does not show the saml rotation:\n%s", out)
	}
	// Without --json: a table with a USE column.
	if out := keystep(t, append(w.admin()[:5], "keys", "list")...).Stdout; !strings.Contains(out, "USE") || strings.Count(out, "saml ") != 2 || strings.Count(out, "oidc ") != 4 {
		t.Errorf("keys list as a table:\n%s", out)
	}
}
