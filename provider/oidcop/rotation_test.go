package oidcop_test

import (
	"context"
	"testing"
	"time"

	"github.com/keystep/keystep/provider/oidcop"
)

// signing returns the ids of the keys that sign now, and of all published.
func signing(t *testing.T, op *oidcop.Provider) (signers map[string]string, published int) {
	t.Helper()
	keys, err := op.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	signers = map[string]string{}
	for _, k := range keys {
		if k.Use != "oidc" {
			t.Errorf("key %s has use %q, want oidc", k.ID, k.Use)
		}
		if k.Signing {
			signers[k.Alg] = k.ID
		}
	}
	return signers, len(keys)
}

// TestKeyPolicyDefaults: the OP's keys rotate every 90 days and the next
// one is published a day ahead (the rotation itself is tested in
// provider/internal/keyring).
func TestKeyPolicyDefaults(t *testing.T) {
	e := newEnv(t)
	first, n := signing(t, e.op)
	if n != 2 || first["ES256"] == "" || first["RS256"] == "" {
		t.Fatalf("first start: %v, %d keys", first, n)
	}
	e.clock.Advance(90*24*time.Hour - 25*time.Hour) // before the last day of the first keys
	if _, n = signing(t, e.op); n != 2 {
		t.Fatalf("two days before the rotation: %d keys published, want 2", n)
	}
	e.clock.Advance(2 * time.Hour) // inside the last day
	now, n := signing(t, e.op)
	if n != 4 || now["ES256"] != first["ES256"] || now["RS256"] != first["RS256"] {
		t.Fatalf("a day before the rotation: signers %v (want %v), %d keys published (want 4)", now, first, n)
	}
	e.clock.Advance(24 * time.Hour) // the new keys sign
	if now, _ = signing(t, e.op); now["ES256"] == first["ES256"] || now["RS256"] == first["RS256"] {
		t.Fatalf("after the rotation: signers %v", now)
	}
}
