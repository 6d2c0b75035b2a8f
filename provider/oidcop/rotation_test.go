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
		if k.Signing {
			signers[k.Alg] = k.ID
		}
	}
	return signers, len(keys)
}

// TestScheduledRotation: the next key is published a day before it signs,
// and the replaced one stays published a day after, then leaves.
func TestScheduledRotation(t *testing.T) {
	e := newEnv(t)
	first, n := signing(t, e.op)
	if n != 2 || first["ES256"] == "" || first["RS256"] == "" {
		t.Fatalf("first start: %v, %d keys", first, n)
	}
	e.clock.Advance(90*24*time.Hour - 23*time.Hour) // inside the last day of the first keys
	now, n := signing(t, e.op)
	if n != 4 || now["ES256"] != first["ES256"] || now["RS256"] != first["RS256"] {
		t.Fatalf("a day before the rotation: signers %v (want %v), %d keys published (want 4)", now, first, n)
	}
	e.clock.Advance(24 * time.Hour) // the new keys sign
	now, n = signing(t, e.op)
	if n != 4 || now["ES256"] == first["ES256"] || now["RS256"] == first["RS256"] {
		t.Fatalf("after the rotation: signers %v, %d keys published (want the old ones still there)", now, n)
	}
	e.clock.Advance(25 * time.Hour) // past KeepAfter
	if _, n = signing(t, e.op); n != 2 {
		t.Fatalf("a day after the rotation: %d keys published, want 2", n)
	}
}
