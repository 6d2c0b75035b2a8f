package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// The conformance tests of the federation tables: auth requests, OpenID
// Connect tokens, server keys and linked federated subjects.

var federationFunctional = []struct {
	name string
	fn   func(t *testing.T, s flows.Tx)
}{
	{"AuthRequestRoundTrip", testAuthRequestRoundTrip},
	{"AuthRequestErrors", testAuthRequestErrors},
	{"BindAuthRequest", testBindAuthRequest},
	{"AttachSignIn", testAttachSignIn},
	{"CompleteAuthRequest", testCompleteAuthRequest},
	{"SaveAuthCode", testSaveAuthCode},
	{"RedeemAuthCode", testRedeemAuthCode},
	{"PurgeAuthRequests", testPurgeAuthRequests},
	{"OIDCTokenRoundTrip", testOIDCTokenRoundTrip},
	{"OIDCTokenErrors", testOIDCTokenErrors},
	{"RotateRefreshToken", testRotateRefreshToken},
	{"RotateRefreshTokenAtomic", testRotateRefreshTokenAtomic},
	{"RevokeOIDCToken", testRevokeOIDCToken},
	{"RevokeGrant", testRevokeGrant},
	{"PurgeOIDCTokens", testPurgeOIDCTokens},
	{"KeyRoundTrip", testKeyRoundTrip},
	{"ListKeys", testListKeys},
	{"RetireKey", testRetireKey},
	{"LinkSubject", testLinkSubject},
}

var federationTransactional = []struct {
	name string
	fn   func(t *testing.T, s flows.Store)
}{
	{"RotateRefreshTokenRollback", testTxRotateRefreshRollback},
}

var federationConcurrent = []struct {
	name string
	fn   func(t *testing.T, s flows.Store)
}{
	{"RedeemAuthCode", testConcurrentRedeemAuthCode},
	{"RotateRefreshToken", testConcurrentRotateRefresh},
	{"CompleteAuthRequest", testConcurrentCompleteAuthRequest},
	{"BindAuthRequest", testConcurrentBindAuthRequest},
}

// --- fixtures ---

// authRequest is a fresh OpenID Connect request of acc-1 (an account the
// tests never create: requests do not refer to accounts), made at t0.
func authRequest(id string, expires time.Time) flows.AuthRequest {
	return flows.AuthRequest{
		ID:        id,
		ClientID:  "rp-1",
		Protocol:  "oidc",
		Request:   []byte(`{"scope":"openid profile","state":"st-` + id + `"}`),
		AccountID: "acc-1",
		Subject:   "sub-of-acc-1",
		CreatedAt: t0,
		ExpiresAt: expires,
	}
}

// result is a step's success at t0+d.
func result(d time.Duration) flows.AuthResult {
	return flows.AuthResult{AuthTime: t0.Add(d - time.Second), ACR: "urn:keystep:push", AMR: []string{"mfa", "hwk"}, At: t0.Add(d)}
}

// doneRequest creates a request and completes it at t0+1s.
func doneRequest(t *testing.T, s flows.Tx, id string) {
	t.Helper()
	ctx := t.Context()
	must(t, "create "+id, s.CreateAuthRequest(ctx, authRequest(id, t0.Add(10*time.Minute))))
	must(t, "complete "+id, s.CompleteAuthRequest(ctx, id, result(time.Second)))
}

// token is an access token of grant with a refresh token (hash "rh-"+id),
// issued at t0.
func token(id, grant string) flows.OIDCToken {
	return flows.OIDCToken{
		ID:          id,
		GrantID:     grant,
		ClientID:    "rp-1",
		Subject:     "sub-of-acc-1",
		AccountID:   "acc-1",
		Scopes:      []string{"openid", "profile", "offline_access"},
		Audience:    []string{"rp-1", "https://api.example.com"},
		ACR:         "urn:keystep:push",
		AMR:         []string{"mfa", "hwk"},
		AuthTime:    t0.Add(-time.Second),
		RefreshHash: []byte("rh-" + id),
		RefreshExp:  t0.Add(24 * time.Hour),
		CreatedAt:   t0,
		ExpiresAt:   t0.Add(time.Hour),
	}
}

// serverKey is a key of use created at t0+d.
func serverKey(id string, use flows.KeyUse, d time.Duration) flows.StoredKey {
	return flows.StoredKey{
		ID:        id,
		Use:       use,
		Alg:       "ES256",
		Sealed:    []byte("sealed-" + id),
		Cert:      []byte("der-" + id),
		CreatedAt: t0.Add(d),
		ActiveAt:  t0.Add(d + time.Hour),
	}
}

func keyIDs(ks []flows.StoredKey) []string {
	return ids(ks, func(k flows.StoredKey) string { return k.ID })
}

// --- auth requests ---

func testAuthRequestRoundTrip(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	fresh := authRequest("ar-1", t0.Add(10*time.Minute))
	full := flows.AuthRequest{
		ID: "ar-2", ClientID: "rp-2", Protocol: "saml", Request: []byte(`<AuthnRequest/>`),
		AccountID: "acc-2", Subject: "bob@example.com", SessionHash: []byte("session-hash"), SignInID: "si-9",
		DoneAt: t0.Add(3 * time.Second), AuthTime: t0.Add(2 * time.Second), ACR: "urn:keystep:qr",
		AMR: []string{"mfa"}, CodeHash: []byte("code-hash"), CodeUsedAt: t0.Add(4 * time.Second),
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
	}
	// Empty lists and byte slices read back as nil; times come back in UTC.
	bare := flows.AuthRequest{ID: "ar-3", ClientID: "rp-1", Request: []byte{}, AMR: []string{}, CodeHash: []byte{},
		ExpiresAt: t0.In(time.FixedZone("UTC+2", 2*3600)).Add(time.Minute)}
	wantBare := bare
	wantBare.Request, wantBare.AMR, wantBare.CodeHash, wantBare.ExpiresAt = nil, nil, nil, t0.Add(time.Minute)
	// A second request without a code: the unique index holds set codes only.
	bare2 := flows.AuthRequest{ID: "ar-4", ClientID: "rp-1", CodeHash: []byte{}, ExpiresAt: t0.Add(time.Minute)}
	wantBare2 := bare2
	wantBare2.CodeHash = nil
	for _, c := range []struct{ in, want flows.AuthRequest }{{fresh, fresh}, {full, full}, {bare, wantBare}, {bare2, wantBare2}} {
		must(t, "create "+c.in.ID, s.CreateAuthRequest(ctx, c.in))
		got, err := s.GetAuthRequest(ctx, c.in.ID)
		must(t, "get "+c.in.ID, err)
		wantEqual(t, "auth request "+c.in.ID, got, c.want)
		if got.ExpiresAt.Location() != time.UTC {
			t.Errorf("auth request %s: expiry in %v, want UTC", c.in.ID, got.ExpiresAt.Location())
		}
	}
	if got, _ := s.GetAuthRequest(ctx, "ar-2"); !got.Done() {
		t.Error("a request created done reads back not done")
	}
}

func testAuthRequestErrors(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	ar := authRequest("ar-1", t0.Add(10*time.Minute))
	ar.CodeHash = []byte("code-1")
	must(t, "create", s.CreateAuthRequest(ctx, ar))
	dup := authRequest("ar-1", t0.Add(time.Hour))
	dup.ClientID = "impostor"
	wantErr(t, "same id", s.CreateAuthRequest(ctx, dup), flows.ErrConflict)
	sameCode := authRequest("ar-2", t0.Add(time.Hour))
	sameCode.CodeHash = []byte("code-1")
	wantErr(t, "same code hash", s.CreateAuthRequest(ctx, sameCode), flows.ErrConflict)
	for i, bad := range []flows.AuthRequest{
		{},
		authRequest("", t0.Add(time.Hour)),
		authRequest("ar-3", time.Time{}),
		func() flows.AuthRequest { r := authRequest("ar-4", t0.Add(time.Hour)); r.ClientID = ""; return r }(),
	} {
		wantErr(t, fmt.Sprintf("invalid request %d", i), s.CreateAuthRequest(ctx, bad), flows.ErrInvalid)
	}
	for _, id := range []string{"ar-2", "ar-3", "ar-4", "nothing"} {
		_, err := s.GetAuthRequest(ctx, id)
		wantErr(t, "get "+id, err, flows.ErrNotFound)
	}
	got, err := s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	wantEqual(t, "request after refused creations", got, ar)
}

func testBindAuthRequest(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "create", s.CreateAuthRequest(ctx, authRequest("ar-1", t0.Add(10*time.Minute))))
	// An empty session hash is none.
	other := authRequest("ar-2", t0.Add(10*time.Minute))
	other.SessionHash = []byte{}
	must(t, "create other", s.CreateAuthRequest(ctx, other))
	must(t, "bind", s.BindAuthRequest(ctx, "ar-1", []byte("session-a")))
	got, err := s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	if !bytes.Equal(got.SessionHash, []byte("session-a")) {
		t.Errorf("bound to %q, want session-a", got.SessionHash)
	}
	must(t, "bind to the same session again", s.BindAuthRequest(ctx, "ar-1", []byte("session-a")))
	wantErr(t, "bind to another session", s.BindAuthRequest(ctx, "ar-1", []byte("session-b")), flows.ErrConflict)
	wantErr(t, "bind without a session", s.BindAuthRequest(ctx, "ar-2", nil), flows.ErrInvalid)
	wantErr(t, "bind an unknown request", s.BindAuthRequest(ctx, "nothing", []byte("session-a")), flows.ErrNotFound)
	got, err = s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	if !bytes.Equal(got.SessionHash, []byte("session-a")) {
		t.Errorf("after a refused rebinding: bound to %q, want session-a", got.SessionHash)
	}
	// The other request stayed unbound, and binds to its own session.
	other, err = s.GetAuthRequest(ctx, "ar-2")
	must(t, "get other", err)
	if other.SessionHash != nil {
		t.Errorf("the other request is bound to %q", other.SessionHash)
	}
	must(t, "bind the other to session-b", s.BindAuthRequest(ctx, "ar-2", []byte("session-b")))
}

func testAttachSignIn(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	want := authRequest("ar-1", t0.Add(10*time.Minute))
	must(t, "create", s.CreateAuthRequest(ctx, want))
	must(t, "attach", s.AttachSignIn(ctx, "ar-1", "si-1"))
	want.SignInID = "si-1"
	got, err := s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	wantEqual(t, "request with a sign-in", got, want)
	// A new sign-in (the first was denied, say) replaces it while not done.
	must(t, "attach another", s.AttachSignIn(ctx, "ar-1", "si-2"))
	must(t, "complete", s.CompleteAuthRequest(ctx, "ar-1", result(time.Second)))
	wantErr(t, "attach to a done request", s.AttachSignIn(ctx, "ar-1", "si-3"), flows.ErrAlreadyDecided)
	got, err = s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	if got.SignInID != "si-2" {
		t.Errorf("sign-in of the done request is %q, want si-2", got.SignInID)
	}
	wantErr(t, "attach to an unknown request", s.AttachSignIn(ctx, "nothing", "si-1"), flows.ErrNotFound)
}

func testCompleteAuthRequest(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	want := authRequest("ar-1", t0.Add(10*time.Minute))
	must(t, "create", s.CreateAuthRequest(ctx, want))
	got, err := s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	if got.Done() {
		t.Fatal("a new request is done")
	}
	wantErr(t, "complete without a time", s.CompleteAuthRequest(ctx, "ar-1", flows.AuthResult{AuthTime: t0}), flows.ErrInvalid)
	res := result(time.Second)
	must(t, "complete", s.CompleteAuthRequest(ctx, "ar-1", res))
	want.DoneAt, want.AuthTime, want.ACR, want.AMR = res.At, res.AuthTime, res.ACR, res.AMR
	got, err = s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	wantEqual(t, "completed request", got, want)
	later := flows.AuthResult{AuthTime: t0.Add(time.Minute), ACR: "other", AMR: []string{"otp"}, At: t0.Add(time.Minute)}
	wantErr(t, "second completion", s.CompleteAuthRequest(ctx, "ar-1", later), flows.ErrAlreadyDecided)
	got, err = s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	wantEqual(t, "request after a refused second completion", got, want)
	wantErr(t, "complete an unknown request", s.CompleteAuthRequest(ctx, "nothing", res), flows.ErrNotFound)
	// No AMR is stored as none.
	must(t, "create 2", s.CreateAuthRequest(ctx, authRequest("ar-2", t0.Add(10*time.Minute))))
	must(t, "complete 2", s.CompleteAuthRequest(ctx, "ar-2", flows.AuthResult{AuthTime: t0, AMR: []string{}, At: t0}))
	got, err = s.GetAuthRequest(ctx, "ar-2")
	must(t, "get 2", err)
	if got.AMR != nil || got.ACR != "" || !got.DoneAt.Equal(t0) {
		t.Errorf("request completed with no AMR: %+v", got)
	}
}

func testSaveAuthCode(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "create", s.CreateAuthRequest(ctx, authRequest("ar-1", t0.Add(10*time.Minute))))
	wantErr(t, "code of a request not done", s.SaveAuthCode(ctx, "ar-1", []byte("code-1")), flows.ErrConflict)
	must(t, "complete", s.CompleteAuthRequest(ctx, "ar-1", result(time.Second)))
	wantErr(t, "empty code", s.SaveAuthCode(ctx, "ar-1", nil), flows.ErrInvalid)
	must(t, "save", s.SaveAuthCode(ctx, "ar-1", []byte("code-1")))
	got, err := s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	if !bytes.Equal(got.CodeHash, []byte("code-1")) || !got.CodeUsedAt.IsZero() {
		t.Errorf("after saving: code %q used at %v, want code-1 unused", got.CodeHash, got.CodeUsedAt)
	}
	wantErr(t, "a second code", s.SaveAuthCode(ctx, "ar-1", []byte("code-2")), flows.ErrConflict)
	wantErr(t, "the same code again", s.SaveAuthCode(ctx, "ar-1", []byte("code-1")), flows.ErrConflict)
	doneRequest(t, s, "ar-2")
	wantErr(t, "another request's code", s.SaveAuthCode(ctx, "ar-2", []byte("code-1")), flows.ErrConflict)
	wantErr(t, "code of an unknown request", s.SaveAuthCode(ctx, "nothing", []byte("code-3")), flows.ErrNotFound)
	got, err = s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	if !bytes.Equal(got.CodeHash, []byte("code-1")) {
		t.Errorf("after refused saves: code %q, want code-1", got.CodeHash)
	}
	other, err := s.GetAuthRequest(ctx, "ar-2")
	must(t, "get other", err)
	if other.CodeHash != nil {
		t.Errorf("the refused code landed on ar-2: %q", other.CodeHash)
	}
	must(t, "save ar-2's own code", s.SaveAuthCode(ctx, "ar-2", []byte("code-3")))
}

func testRedeemAuthCode(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	doneRequest(t, s, "ar-1")
	doneRequest(t, s, "ar-2")
	must(t, "save", s.SaveAuthCode(ctx, "ar-1", []byte("code-1")))
	must(t, "save 2", s.SaveAuthCode(ctx, "ar-2", []byte("code-2")))
	want, err := s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	at := t0.Add(5 * time.Second)
	_, err = s.RedeemAuthCode(ctx, []byte("code-1"), time.Time{})
	wantErr(t, "redeem without a time", err, flows.ErrInvalid)
	got, err := s.RedeemAuthCode(ctx, []byte("code-1"), at)
	must(t, "redeem", err)
	want.CodeUsedAt = at
	wantEqual(t, "redeemed request", got, want)
	stored, err := s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	wantEqual(t, "stored request after redemption", stored, want)
	// The second redemption gets the request with the first one's time.
	again, err := s.RedeemAuthCode(ctx, []byte("code-1"), at.Add(time.Second))
	wantErr(t, "second redemption", err, flows.ErrAlreadyUsed)
	wantEqual(t, "request of the second redemption", again, want)
	stored, err = s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	if !stored.CodeUsedAt.Equal(at) {
		t.Errorf("code used at %v after a refused redemption, want %v", stored.CodeUsedAt, at)
	}
	_, err = s.RedeemAuthCode(ctx, []byte("code-unknown"), at)
	wantErr(t, "unknown code", err, flows.ErrNotFound)
	_, err = s.RedeemAuthCode(ctx, nil, at)
	wantErr(t, "no code", err, flows.ErrNotFound)
	other, err := s.GetAuthRequest(ctx, "ar-2")
	must(t, "get other", err)
	if !other.CodeUsedAt.IsZero() {
		t.Errorf("redeeming ar-1's code used ar-2's at %v", other.CodeUsedAt)
	}
	got, err = s.RedeemAuthCode(ctx, []byte("code-2"), at)
	must(t, "redeem ar-2", err)
	if got.ID != "ar-2" || !got.CodeUsedAt.Equal(at) {
		t.Errorf("redeeming code-2 gave %q used at %v", got.ID, got.CodeUsedAt)
	}
}

func testPurgeAuthRequests(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "create early", s.CreateAuthRequest(ctx, authRequest("ar-early", t0.Add(time.Minute))))
	must(t, "create late", s.CreateAuthRequest(ctx, authRequest("ar-late", t0.Add(time.Hour))))
	must(t, "purge at the first expiry", s.PurgeAuthRequests(ctx, t0.Add(time.Minute)))
	_, err := s.GetAuthRequest(ctx, "ar-early")
	must(t, "a request expiring at the purge time is kept", err)
	must(t, "purge", s.PurgeAuthRequests(ctx, t0.Add(time.Minute+time.Nanosecond)))
	_, err = s.GetAuthRequest(ctx, "ar-early")
	wantErr(t, "purged", err, flows.ErrNotFound)
	_, err = s.GetAuthRequest(ctx, "ar-late")
	must(t, "the later request survived", err)
}

// --- OpenID Connect tokens ---

func testOIDCTokenRoundTrip(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	full := token("tok-1", "ar-1")
	revoked := token("tok-2", "ar-1")
	revoked.RevokedAt = t0.Add(time.Minute)
	// No refresh token, empty lists: read back as nil. Two such tokens
	// coexist: the unique index holds set refresh hashes only.
	bare := flows.OIDCToken{ID: "tok-3", GrantID: "ar-2", ClientID: "rp-1", Scopes: []string{}, Audience: []string{},
		AMR: []string{}, RefreshHash: []byte{}, ExpiresAt: t0.In(time.FixedZone("UTC-5", -5*3600)).Add(time.Hour)}
	wantBare := bare
	wantBare.Scopes, wantBare.Audience, wantBare.AMR, wantBare.RefreshHash = nil, nil, nil, nil
	wantBare.ExpiresAt = t0.Add(time.Hour)
	bare2 := flows.OIDCToken{ID: "tok-4", GrantID: "ar-2", ClientID: "rp-1", RefreshHash: []byte{}, ExpiresAt: t0.Add(time.Hour)}
	wantBare2 := bare2
	wantBare2.RefreshHash = nil
	bare3 := flows.OIDCToken{ID: "tok-5", GrantID: "ar-2", ClientID: "rp-1", ExpiresAt: t0.Add(time.Hour)}
	for _, c := range []struct{ in, want flows.OIDCToken }{{full, full}, {revoked, revoked}, {bare, wantBare}, {bare2, wantBare2}, {bare3, bare3}} {
		must(t, "create "+c.in.ID, s.CreateOIDCToken(ctx, c.in))
		got, err := s.GetOIDCToken(ctx, c.in.ID)
		must(t, "get "+c.in.ID, err)
		wantEqual(t, "token "+c.in.ID, got, c.want)
		if got.ExpiresAt.Location() != time.UTC {
			t.Errorf("token %s: expiry in %v, want UTC", c.in.ID, got.ExpiresAt.Location())
		}
	}
	got, err := s.GetOIDCTokenByRefresh(ctx, []byte("rh-tok-1"))
	must(t, "get by refresh", err)
	wantEqual(t, "token by refresh hash", got, full)
	got, err = s.GetOIDCTokenByRefresh(ctx, []byte("rh-tok-2"))
	must(t, "get revoked by refresh", err)
	if !got.Revoked() || got.ID != "tok-2" {
		t.Errorf("revoked token by refresh hash: %+v", got)
	}
}

func testOIDCTokenErrors(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	tok := token("tok-1", "ar-1")
	must(t, "create", s.CreateOIDCToken(ctx, tok))
	dup := token("tok-1", "ar-9")
	dup.RefreshHash = []byte("rh-other")
	wantErr(t, "same id", s.CreateOIDCToken(ctx, dup), flows.ErrConflict)
	sameRefresh := token("tok-2", "ar-1")
	sameRefresh.RefreshHash = tok.RefreshHash
	wantErr(t, "same refresh hash", s.CreateOIDCToken(ctx, sameRefresh), flows.ErrConflict)
	for i, bad := range []flows.OIDCToken{
		{},
		token("", "ar-1"),
		token("tok-3", ""),
		func() flows.OIDCToken { x := token("tok-4", "ar-1"); x.ClientID = ""; return x }(),
		func() flows.OIDCToken { x := token("tok-5", "ar-1"); x.ExpiresAt = time.Time{}; return x }(),
	} {
		wantErr(t, fmt.Sprintf("invalid token %d", i), s.CreateOIDCToken(ctx, bad), flows.ErrInvalid)
	}
	for _, id := range []string{"tok-2", "tok-3", "tok-4", "tok-5", "nothing"} {
		_, err := s.GetOIDCToken(ctx, id)
		wantErr(t, "get "+id, err, flows.ErrNotFound)
	}
	for _, h := range [][]byte{[]byte("rh-other"), []byte("rh-tok-5"), nil} {
		_, err := s.GetOIDCTokenByRefresh(ctx, h)
		wantErr(t, fmt.Sprintf("get by refresh hash %q", h), err, flows.ErrNotFound)
	}
	got, err := s.GetOIDCToken(ctx, "tok-1")
	must(t, "get", err)
	wantEqual(t, "token after refused creations", got, tok)
}

func testRotateRefreshToken(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "create", s.CreateOIDCToken(ctx, token("tok-1", "ar-1")))
	at := t0.Add(30 * time.Minute)
	next := token("tok-2", "ar-1")
	next.CreatedAt, next.ExpiresAt = at, at.Add(time.Hour)
	wantErr(t, "rotate without a time", s.RotateRefreshToken(ctx, []byte("rh-tok-1"), next, time.Time{}), flows.ErrInvalid)
	must(t, "rotate", s.RotateRefreshToken(ctx, []byte("rh-tok-1"), next, at))
	old, err := s.GetOIDCToken(ctx, "tok-1")
	must(t, "get old", err)
	want := token("tok-1", "ar-1")
	want.RevokedAt = at
	wantEqual(t, "rotated token", old, want)
	got, err := s.GetOIDCTokenByRefresh(ctx, []byte("rh-tok-2"))
	must(t, "get next by refresh", err)
	wantEqual(t, "next token", got, next)
	// The old refresh token is refused from now on, and nothing is stored.
	third := token("tok-3", "ar-1")
	wantErr(t, "rotate the old refresh token again", s.RotateRefreshToken(ctx, []byte("rh-tok-1"), third, at.Add(time.Second)), flows.ErrAlreadyUsed)
	_, err = s.GetOIDCToken(ctx, "tok-3")
	wantErr(t, "the token of a refused rotation", err, flows.ErrNotFound)
	old, err = s.GetOIDCToken(ctx, "tok-1")
	must(t, "get old", err)
	if !old.RevokedAt.Equal(at) {
		t.Errorf("a refused rotation moved the revocation to %v, want %v", old.RevokedAt, at)
	}
	wantErr(t, "rotate an unknown refresh token", s.RotateRefreshToken(ctx, []byte("rh-unknown"), third, at), flows.ErrNotFound)
	wantErr(t, "rotate no refresh token", s.RotateRefreshToken(ctx, nil, third, at), flows.ErrNotFound)
	// The new refresh token rotates in turn.
	must(t, "rotate the next", s.RotateRefreshToken(ctx, []byte("rh-tok-2"), third, at.Add(time.Minute)))
	_, err = s.GetOIDCTokenByRefresh(ctx, []byte("rh-tok-3"))
	must(t, "get third", err)
	// A token revoked otherwise cannot be rotated either.
	must(t, "create 4", s.CreateOIDCToken(ctx, token("tok-4", "ar-2")))
	must(t, "revoke 4", s.RevokeOIDCToken(ctx, "tok-4", at))
	wantErr(t, "rotate a revoked token", s.RotateRefreshToken(ctx, []byte("rh-tok-4"), token("tok-5", "ar-2"), at), flows.ErrAlreadyUsed)
	_, err = s.GetOIDCToken(ctx, "tok-5")
	wantErr(t, "the token of a rotation of a revoked token", err, flows.ErrNotFound)
}

// testRotateRefreshTokenAtomic checks that a rotation whose next token
// cannot be stored leaves the old token unrevoked.
func testRotateRefreshTokenAtomic(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "create", s.CreateOIDCToken(ctx, token("tok-1", "ar-1")))
	must(t, "create other", s.CreateOIDCToken(ctx, token("tok-2", "ar-2")))
	at := t0.Add(time.Minute)
	takenID := token("tok-2", "ar-1")
	takenID.RefreshHash = []byte("rh-fresh")
	takenRefresh := token("tok-3", "ar-1")
	takenRefresh.RefreshHash = []byte("rh-tok-2")
	invalid := token("tok-4", "")
	for _, c := range []struct {
		what string
		next flows.OIDCToken
		err  error
	}{
		{"next with a taken id", takenID, flows.ErrConflict},
		{"next with a taken refresh hash", takenRefresh, flows.ErrConflict},
		{"next with its old refresh hash", token("tok-1", "ar-1"), flows.ErrConflict},
		{"invalid next", invalid, flows.ErrInvalid},
	} {
		wantErr(t, c.what, s.RotateRefreshToken(ctx, []byte("rh-tok-1"), c.next, at), c.err)
		got, err := s.GetOIDCToken(ctx, "tok-1")
		must(t, "get", err)
		wantEqual(t, "the old token after a rotation to "+c.what, got, token("tok-1", "ar-1"))
	}
	_, err := s.GetOIDCToken(ctx, "tok-3")
	wantErr(t, "the refused next token", err, flows.ErrNotFound)
	got, err := s.GetOIDCToken(ctx, "tok-2")
	must(t, "get other", err)
	wantEqual(t, "the other token", got, token("tok-2", "ar-2"))
	// The refresh token is still good for a proper rotation.
	must(t, "rotate", s.RotateRefreshToken(ctx, []byte("rh-tok-1"), token("tok-5", "ar-1"), at))
}

func testRevokeOIDCToken(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "create", s.CreateOIDCToken(ctx, token("tok-1", "ar-1")))
	must(t, "create other", s.CreateOIDCToken(ctx, token("tok-2", "ar-1")))
	at := t0.Add(time.Minute)
	wantErr(t, "revoke without a time", s.RevokeOIDCToken(ctx, "tok-1", time.Time{}), flows.ErrInvalid)
	must(t, "revoke", s.RevokeOIDCToken(ctx, "tok-1", at))
	must(t, "revoke again", s.RevokeOIDCToken(ctx, "tok-1", at.Add(time.Hour)))
	got, err := s.GetOIDCToken(ctx, "tok-1")
	must(t, "get", err)
	want := token("tok-1", "ar-1")
	want.RevokedAt = at
	wantEqual(t, "revoked token (first revocation kept)", got, want)
	wantErr(t, "revoke an unknown token", s.RevokeOIDCToken(ctx, "nothing", at), flows.ErrNotFound)
	other, err := s.GetOIDCToken(ctx, "tok-2")
	must(t, "get other", err)
	if other.Revoked() {
		t.Error("revoking tok-1 revoked tok-2")
	}
}

func testRevokeGrant(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	for _, tok := range []flows.OIDCToken{token("tok-1", "g-1"), token("tok-2", "g-1"), token("tok-3", "g-1"), token("tok-4", "g-2")} {
		must(t, "create "+tok.ID, s.CreateOIDCToken(ctx, tok))
	}
	early := t0.Add(time.Second)
	must(t, "revoke one", s.RevokeOIDCToken(ctx, "tok-3", early))
	at := t0.Add(time.Minute)
	_, err := s.RevokeGrant(ctx, "g-1", time.Time{})
	wantErr(t, "revoke a grant without a time", err, flows.ErrInvalid)
	for i, want := range []int{2, 0} {
		n, err := s.RevokeGrant(ctx, "g-1", at.Add(time.Duration(i)*time.Second))
		must(t, "revoke grant", err)
		if n != want {
			t.Errorf("revocation %d of g-1 revoked %d tokens, want %d", i+1, n, want)
		}
	}
	n, err := s.RevokeGrant(ctx, "g-unknown", at)
	must(t, "revoke an unknown grant", err)
	if n != 0 {
		t.Errorf("an unknown grant had %d tokens", n)
	}
	for id, want := range map[string]time.Time{"tok-1": at, "tok-2": at, "tok-3": early, "tok-4": {}} {
		got, err := s.GetOIDCToken(ctx, id)
		must(t, "get "+id, err)
		if !got.RevokedAt.Equal(want) {
			t.Errorf("%s revoked at %v, want %v", id, got.RevokedAt, want)
		}
	}
}

func testPurgeOIDCTokens(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	cut := t0.Add(2 * time.Hour)
	mk := func(id string, expires, refreshExp time.Time) flows.OIDCToken {
		x := token(id, "g-1")
		x.ExpiresAt, x.RefreshExp = expires, refreshExp
		if refreshExp.IsZero() {
			x.RefreshHash = nil
		}
		return x
	}
	for _, x := range []flows.OIDCToken{
		mk("both-expired", t0.Add(time.Hour), t0.Add(time.Hour)),
		mk("no-refresh-expired", t0.Add(time.Hour), time.Time{}),
		mk("refresh-alive", t0.Add(time.Hour), cut.Add(time.Hour)),
		mk("refresh-at-cut", t0.Add(time.Hour), cut),
		mk("access-alive", cut.Add(time.Minute), t0.Add(time.Hour)),
		mk("access-at-cut", cut, time.Time{}),
	} {
		must(t, "create "+x.ID, s.CreateOIDCToken(ctx, x))
	}
	must(t, "purge", s.PurgeOIDCTokens(ctx, cut))
	for id, kept := range map[string]bool{
		"both-expired": false, "no-refresh-expired": false, "refresh-alive": true,
		"refresh-at-cut": true, "access-alive": true, "access-at-cut": true,
	} {
		_, err := s.GetOIDCToken(ctx, id)
		if kept {
			must(t, id+" is kept", err)
		} else {
			wantErr(t, id+" is purged", err, flows.ErrNotFound)
		}
	}
}

// --- server keys ---

func testKeyRoundTrip(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	k := serverKey("k-1", flows.KeyUseOIDC, 0)
	retiring := serverKey("k-2", flows.KeyUseOIDC, time.Second)
	retiring.RetireAt = t0.Add(time.Hour)
	bare := flows.StoredKey{ID: "k-3", Use: flows.KeyUseCookie, Alg: "HS256+A256", Sealed: []byte("sealed"), Cert: []byte{}}
	wantBare := bare
	wantBare.Cert = nil
	for _, x := range []flows.StoredKey{k, retiring, bare} {
		must(t, "create "+x.ID, s.CreateKey(ctx, x))
	}
	got, err := s.ListKeys(ctx, flows.KeyUseOIDC, t0)
	must(t, "list oidc", err)
	wantEqual(t, "oidc keys", got, []flows.StoredKey{k, retiring})
	got, err = s.ListKeys(ctx, flows.KeyUseCookie, t0)
	must(t, "list cookie", err)
	wantEqual(t, "cookie keys", got, []flows.StoredKey{wantBare})
	if len(got) == 1 && got[0].CreatedAt.Location() != time.UTC {
		t.Errorf("key created at %v, want UTC", got[0].CreatedAt)
	}

	dup := serverKey("k-1", flows.KeyUseSAML, time.Minute)
	wantErr(t, "same id", s.CreateKey(ctx, dup), flows.ErrConflict)
	for i, bad := range []flows.StoredKey{
		{},
		serverKey("", flows.KeyUseOIDC, 0),
		serverKey("k-4", "", 0),
		func() flows.StoredKey { x := serverKey("k-5", flows.KeyUseOIDC, 0); x.Alg = ""; return x }(),
		func() flows.StoredKey { x := serverKey("k-6", flows.KeyUseOIDC, 0); x.Sealed = nil; return x }(),
	} {
		wantErr(t, fmt.Sprintf("invalid key %d", i), s.CreateKey(ctx, bad), flows.ErrInvalid)
	}
	saml, err := s.ListKeys(ctx, flows.KeyUseSAML, t0)
	must(t, "list saml", err)
	wantEqual(t, "saml keys after refused creations", keyIDs(saml), []string{})
	got, err = s.ListKeys(ctx, flows.KeyUseOIDC, t0)
	must(t, "list oidc", err)
	wantEqual(t, "oidc keys after refused creations", got, []flows.StoredKey{k, retiring})
}

func testListKeys(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	retired := func(k flows.StoredKey, at time.Time) flows.StoredKey { k.RetireAt = at; return k }
	for _, k := range []flows.StoredKey{
		serverKey("k-new", flows.KeyUseOIDC, 2*time.Hour),
		serverKey("k-b", flows.KeyUseOIDC, time.Hour), // same time as k-a: by id
		serverKey("k-a", flows.KeyUseOIDC, time.Hour),
		retired(serverKey("k-old", flows.KeyUseOIDC, 0), t0.Add(3*time.Hour)),
		retired(serverKey("k-gone", flows.KeyUseOIDC, -time.Hour), t0.Add(time.Hour)),
		serverKey("k-saml", flows.KeyUseSAML, 0),
		serverKey("k-cookie", flows.KeyUseCookie, 0),
	} {
		must(t, "create "+k.ID, s.CreateKey(ctx, k))
	}
	cases := []struct {
		use  flows.KeyUse
		now  time.Time
		want []string
	}{
		{flows.KeyUseOIDC, t0, []string{"k-gone", "k-old", "k-a", "k-b", "k-new"}},
		{flows.KeyUseOIDC, t0.Add(time.Hour - time.Nanosecond), []string{"k-gone", "k-old", "k-a", "k-b", "k-new"}},
		{flows.KeyUseOIDC, t0.Add(time.Hour), []string{"k-old", "k-a", "k-b", "k-new"}}, // k-gone retires at that instant
		{flows.KeyUseOIDC, t0.Add(3 * time.Hour), []string{"k-a", "k-b", "k-new"}},
		{flows.KeyUseSAML, t0.Add(3 * time.Hour), []string{"k-saml"}},
		{flows.KeyUseCookie, t0, []string{"k-cookie"}},
		{"other", t0, []string{}},
	}
	for _, c := range cases {
		got, err := s.ListKeys(ctx, c.use, c.now)
		must(t, "list", err)
		wantEqual(t, fmt.Sprintf("%s keys at +%s", c.use, c.now.Sub(t0)), keyIDs(got), c.want)
	}
}

func testRetireKey(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "create", s.CreateKey(ctx, serverKey("k-1", flows.KeyUseOIDC, 0)))
	must(t, "create other", s.CreateKey(ctx, serverKey("k-2", flows.KeyUseOIDC, time.Second)))
	list := func(now time.Time) []string {
		t.Helper()
		ks, err := s.ListKeys(ctx, flows.KeyUseOIDC, now)
		must(t, "list", err)
		return keyIDs(ks)
	}
	wantErr(t, "retire without a time", s.RetireKey(ctx, "k-1", time.Time{}), flows.ErrInvalid)
	wantEqual(t, "keys after a refused retirement", list(t0.Add(100*time.Hour)), []string{"k-1", "k-2"})
	must(t, "retire", s.RetireKey(ctx, "k-1", t0.Add(2*time.Hour)))
	wantEqual(t, "keys before the retirement", list(t0.Add(2*time.Hour-time.Nanosecond)), []string{"k-1", "k-2"})
	wantEqual(t, "keys at the retirement", list(t0.Add(2*time.Hour)), []string{"k-2"})
	// A later time does not postpone the retirement; an earlier one brings it forward.
	must(t, "retire later", s.RetireKey(ctx, "k-1", t0.Add(5*time.Hour)))
	wantEqual(t, "keys after a later retirement", list(t0.Add(3*time.Hour)), []string{"k-2"})
	must(t, "retire earlier", s.RetireKey(ctx, "k-1", t0.Add(time.Hour)))
	wantEqual(t, "keys after an earlier retirement", list(t0.Add(time.Hour)), []string{"k-2"})
	ks, err := s.ListKeys(ctx, flows.KeyUseOIDC, t0)
	must(t, "list", err)
	want := serverKey("k-1", flows.KeyUseOIDC, 0)
	want.RetireAt = t0.Add(time.Hour)
	if len(ks) != 2 {
		t.Fatalf("keys at t0: %v, want k-1 and k-2", keyIDs(ks))
	}
	wantEqual(t, "retired key", ks[0], want)
	wantEqual(t, "the other key", ks[1], serverKey("k-2", flows.KeyUseOIDC, time.Second))
	wantErr(t, "retire an unknown key", s.RetireKey(ctx, "nothing", t0), flows.ErrNotFound)
}

// --- federated subjects ---

func testLinkSubject(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	const entra = "https://login.microsoftonline.com/tenant-1/v2.0"
	_, err := s.LinkedAccount(ctx, entra, "oid-1")
	wantErr(t, "an unlinked subject", err, flows.ErrNotFound)
	must(t, "link", s.LinkSubject(ctx, entra, "oid-1", "acc-1"))
	got, err := s.LinkedAccount(ctx, entra, "oid-1")
	must(t, "linked account", err)
	if got != "acc-1" {
		t.Errorf("oid-1 linked to %q, want acc-1", got)
	}
	must(t, "the same link again", s.LinkSubject(ctx, entra, "oid-1", "acc-1"))
	wantErr(t, "relink to another account", s.LinkSubject(ctx, entra, "oid-1", "acc-2"), flows.ErrConflict)
	got, err = s.LinkedAccount(ctx, entra, "oid-1")
	must(t, "linked account", err)
	if got != "acc-1" {
		t.Errorf("after a refused relink oid-1 is linked to %q, want acc-1", got)
	}
	// A subject is one of its issuer's: the same subject of another issuer
	// is another one.
	must(t, "same subject, other issuer", s.LinkSubject(ctx, "https://accounts.example.com", "oid-1", "acc-2"))
	got, err = s.LinkedAccount(ctx, "https://accounts.example.com", "oid-1")
	must(t, "linked account", err)
	if got != "acc-2" {
		t.Errorf("oid-1 of the other issuer linked to %q, want acc-2", got)
	}
	must(t, "another subject to the same account", s.LinkSubject(ctx, entra, "oid-2", "acc-1"))
	for i, c := range [][3]string{{"", "oid-3", "acc-1"}, {entra, "", "acc-1"}, {entra, "oid-3", ""}} {
		wantErr(t, fmt.Sprintf("invalid link %d", i), s.LinkSubject(ctx, c[0], c[1], c[2]), flows.ErrInvalid)
	}
	_, err = s.LinkedAccount(ctx, entra, "oid-3")
	wantErr(t, "the subject of a refused link", err, flows.ErrNotFound)
}

// --- transactions ---

func testTxRotateRefreshRollback(t *testing.T, s flows.Store) {
	ctx := t.Context()
	must(t, "create", s.CreateOIDCToken(ctx, token("tok-1", "ar-1")))
	err := s.InTx(ctx, func(tx flows.Tx) error {
		if err := tx.RotateRefreshToken(ctx, []byte("rh-tok-1"), token("tok-2", "ar-1"), t0.Add(time.Minute)); err != nil {
			return err
		}
		// The transaction sees its own rotation.
		if _, err := tx.GetOIDCTokenByRefresh(ctx, []byte("rh-tok-2")); err != nil {
			return err
		}
		return errRollback
	})
	wantErr(t, "InTx", err, errRollback)
	got, err := s.GetOIDCToken(ctx, "tok-1")
	must(t, "get", err)
	wantEqual(t, "the old token after a rolled-back rotation", got, token("tok-1", "ar-1"))
	_, err = s.GetOIDCToken(ctx, "tok-2")
	wantErr(t, "the next token of a rolled-back rotation", err, flows.ErrNotFound)
}

// --- concurrency ---

// warmUp opens the store's connections with a burst of transactions, so
// that the race that follows is not spread out by connections opening.
func warmUp(t *testing.T, s flows.Store) {
	t.Helper()
	ctx := t.Context()
	for i, err := range Race(50, func(int) error {
		return s.InTx(ctx, func(tx flows.Tx) error { _, err := tx.LinkedAccount(ctx, "warm-up", "nobody"); return err })
	}) {
		if !errors.Is(err, flows.ErrNotFound) {
			t.Fatalf("warm-up call %d: %v", i, err)
		}
	}
}

// testConcurrentRedeemAuthCode redeems one code 200 times at once, half of
// the calls in transactions of their own: one wins, every other gets the
// request and ErrAlreadyUsed.
func testConcurrentRedeemAuthCode(t *testing.T, s flows.Store) {
	ctx := t.Context()
	doneRequest(t, s, "ar-1")
	must(t, "save", s.SaveAuthCode(ctx, "ar-1", []byte("code-1")))
	got := make([]flows.AuthRequest, 200)
	warmUp(t, s)
	errs := Race(200, func(i int) error {
		at := t0.Add(time.Duration(i+1) * time.Millisecond)
		if i%2 == 0 {
			var err error
			got[i], err = s.RedeemAuthCode(ctx, []byte("code-1"), at)
			return err
		}
		return s.InTx(ctx, func(tx flows.Tx) error {
			var err error
			got[i], err = tx.RedeemAuthCode(ctx, []byte("code-1"), at)
			return err
		})
	})
	winner := oneWinner(t, "200 concurrent RedeemAuthCode", errs, flows.ErrAlreadyUsed)
	if winner < 0 {
		return
	}
	wantAt := t0.Add(time.Duration(winner+1) * time.Millisecond)
	stored, err := s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	if !stored.CodeUsedAt.Equal(wantAt) {
		t.Errorf("code used at %v, want the winner's time %v", stored.CodeUsedAt, wantAt)
	}
	for i, r := range got {
		if r.ID != "ar-1" || !r.CodeUsedAt.Equal(wantAt) {
			t.Errorf("call %d (err %v) got request %q used at %v, want ar-1 used at %v", i, errs[i], r.ID, r.CodeUsedAt, wantAt)
		}
	}
}

// testConcurrentRotateRefresh rotates one refresh token 200 times at once,
// each to a token of its own, half of the calls inside InTx: one wins and
// only its token is stored.
func testConcurrentRotateRefresh(t *testing.T, s flows.Store) {
	ctx := t.Context()
	must(t, "create", s.CreateOIDCToken(ctx, token("tok-old", "ar-1")))
	next := func(i int) flows.OIDCToken { return token(fmt.Sprintf("tok-%d", i), "ar-1") }
	warmUp(t, s)
	errs := Race(200, func(i int) error {
		at := t0.Add(time.Duration(i+1) * time.Millisecond)
		if i%2 == 0 {
			return s.RotateRefreshToken(ctx, []byte("rh-tok-old"), next(i), at)
		}
		return s.InTx(ctx, func(tx flows.Tx) error { return tx.RotateRefreshToken(ctx, []byte("rh-tok-old"), next(i), at) })
	})
	winner := oneWinner(t, "200 concurrent RotateRefreshToken", errs, flows.ErrAlreadyUsed)
	old, err := s.GetOIDCToken(ctx, "tok-old")
	must(t, "get old", err)
	if winner >= 0 && !old.RevokedAt.Equal(t0.Add(time.Duration(winner+1)*time.Millisecond)) {
		t.Errorf("old token revoked at %v, want the winner's time", old.RevokedAt)
	}
	stored := 0
	for i := range 200 {
		_, err := s.GetOIDCTokenByRefresh(ctx, next(i).RefreshHash)
		switch {
		case err == nil:
			stored++
			if i != winner {
				t.Errorf("the token of losing call %d was stored", i)
			}
		case !errors.Is(err, flows.ErrNotFound):
			t.Errorf("get the token of call %d: %v", i, err)
		}
	}
	if stored != 1 {
		t.Errorf("%d next tokens stored, want 1", stored)
	}
}

func testConcurrentCompleteAuthRequest(t *testing.T, s flows.Store) {
	ctx := t.Context()
	must(t, "create", s.CreateAuthRequest(ctx, authRequest("ar-1", t0.Add(10*time.Minute))))
	errs := Race(200, func(i int) error {
		return s.CompleteAuthRequest(ctx, "ar-1", flows.AuthResult{AuthTime: t0, ACR: fmt.Sprintf("call %d", i), At: t0.Add(time.Duration(i + 1))})
	})
	winner := oneWinner(t, "200 concurrent CompleteAuthRequest", errs, flows.ErrAlreadyDecided)
	got, err := s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	if winner >= 0 && (got.ACR != fmt.Sprintf("call %d", winner) || !got.DoneAt.Equal(t0.Add(time.Duration(winner+1)))) {
		t.Errorf("stored completion %q at %v, want the winner's (call %d)", got.ACR, got.DoneAt, winner)
	}
}

func testConcurrentBindAuthRequest(t *testing.T, s flows.Store) {
	ctx := t.Context()
	must(t, "create", s.CreateAuthRequest(ctx, authRequest("ar-1", t0.Add(10*time.Minute))))
	errs := Race(200, func(i int) error {
		return s.BindAuthRequest(ctx, "ar-1", []byte(fmt.Sprintf("session-%d", i)))
	})
	winner := oneWinner(t, "200 concurrent BindAuthRequest", errs, flows.ErrConflict)
	got, err := s.GetAuthRequest(ctx, "ar-1")
	must(t, "get", err)
	if winner >= 0 && string(got.SessionHash) != fmt.Sprintf("session-%d", winner) {
		t.Errorf("bound to %q, want the winner's session-%d", got.SessionHash, winner)
	}
}

// --- every call in its own transaction ---

func (e eachInTx) CreateAuthRequest(ctx context.Context, r flows.AuthRequest) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.CreateAuthRequest(ctx, r) })
}

func (e eachInTx) GetAuthRequest(ctx context.Context, id string) (flows.AuthRequest, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.AuthRequest, error) { return tx.GetAuthRequest(ctx, id) })
}

func (e eachInTx) BindAuthRequest(ctx context.Context, id string, sessionHash []byte) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.BindAuthRequest(ctx, id, sessionHash) })
}

func (e eachInTx) AttachSignIn(ctx context.Context, id, signInID string) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.AttachSignIn(ctx, id, signInID) })
}

func (e eachInTx) CompleteAuthRequest(ctx context.Context, id string, res flows.AuthResult) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.CompleteAuthRequest(ctx, id, res) })
}

func (e eachInTx) SaveAuthCode(ctx context.Context, id string, codeHash []byte) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.SaveAuthCode(ctx, id, codeHash) })
}

// RedeemAuthCode keeps the request a losing call returns with its error.
func (e eachInTx) RedeemAuthCode(ctx context.Context, codeHash []byte, at time.Time) (flows.AuthRequest, error) {
	var r flows.AuthRequest
	err := e.s.InTx(ctx, func(tx flows.Tx) error {
		var err error
		r, err = tx.RedeemAuthCode(ctx, codeHash, at)
		return err
	})
	return r, err
}

func (e eachInTx) PurgeAuthRequests(ctx context.Context, before time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.PurgeAuthRequests(ctx, before) })
}

func (e eachInTx) CreateOIDCToken(ctx context.Context, t flows.OIDCToken) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.CreateOIDCToken(ctx, t) })
}

func (e eachInTx) GetOIDCToken(ctx context.Context, id string) (flows.OIDCToken, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.OIDCToken, error) { return tx.GetOIDCToken(ctx, id) })
}

func (e eachInTx) GetOIDCTokenByRefresh(ctx context.Context, refreshHash []byte) (flows.OIDCToken, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.OIDCToken, error) { return tx.GetOIDCTokenByRefresh(ctx, refreshHash) })
}

func (e eachInTx) RotateRefreshToken(ctx context.Context, oldHash []byte, next flows.OIDCToken, at time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.RotateRefreshToken(ctx, oldHash, next, at) })
}

func (e eachInTx) RevokeOIDCToken(ctx context.Context, id string, at time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.RevokeOIDCToken(ctx, id, at) })
}

func (e eachInTx) RevokeGrant(ctx context.Context, grantID string, at time.Time) (int, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (int, error) { return tx.RevokeGrant(ctx, grantID, at) })
}

func (e eachInTx) PurgeOIDCTokens(ctx context.Context, before time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.PurgeOIDCTokens(ctx, before) })
}

func (e eachInTx) CreateKey(ctx context.Context, k flows.StoredKey) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.CreateKey(ctx, k) })
}

func (e eachInTx) ListKeys(ctx context.Context, use flows.KeyUse, now time.Time) ([]flows.StoredKey, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) ([]flows.StoredKey, error) { return tx.ListKeys(ctx, use, now) })
}

func (e eachInTx) RetireKey(ctx context.Context, id string, at time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.RetireKey(ctx, id, at) })
}

func (e eachInTx) LinkSubject(ctx context.Context, issuer, subject, accountID string) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.LinkSubject(ctx, issuer, subject, accountID) })
}

func (e eachInTx) LinkedAccount(ctx context.Context, issuer, subject string) (string, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (string, error) { return tx.LinkedAccount(ctx, issuer, subject) })
}
