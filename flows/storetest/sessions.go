package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// The conformance tests of web UI sessions: round trip, conflict, touch,
// delete, purge.

var sessionFunctional = []struct {
	name string
	fn   func(t *testing.T, s flows.Tx)
}{
	{"Session", testSession},
	{"SessionErrors", testSessionErrors},
	{"PurgeSessions", testPurgeSessions},
}

func session(id string, created time.Time, lifetime time.Duration) flows.Session {
	return flows.Session{
		ID: id, Kind: "console", Subject: "alice-admin", Data: []byte(`{"csrf":"t"}`),
		CreatedAt: created, LastSeenAt: created, ExpiresAt: created.Add(lifetime),
	}
}

func sameSession(t *testing.T, what string, got, want flows.Session) {
	t.Helper()
	if got.ID != want.ID || got.Kind != want.Kind || got.Subject != want.Subject || !bytes.Equal(got.Data, want.Data) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.LastSeenAt.Equal(want.LastSeenAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("%s: CreatedAt in %v, want UTC", what, got.CreatedAt.Location())
	}
}

func testSession(t *testing.T, s flows.Tx) {
	ctx := context.Background()
	want := session("3f2a0c", t0, 8*time.Hour) // t0 has nanoseconds
	want.LastSeenAt = t0.Add(time.Nanosecond)
	must(t, "create", s.CreateSession(ctx, want))
	got, err := s.GetSession(ctx, want.ID)
	must(t, "get", err)
	sameSession(t, "round trip", got, want)

	// Another session with the same id is refused and changes nothing.
	other := session(want.ID, t0.Add(time.Hour), time.Hour)
	other.Subject = "mallory"
	if err := s.CreateSession(ctx, other); !errors.Is(err, flows.ErrConflict) {
		t.Fatalf("create with a taken id: %v, want ErrConflict", err)
	}
	got, err = s.GetSession(ctx, want.ID)
	must(t, "get after conflict", err)
	sameSession(t, "after a conflict", got, want)

	// A session without data reads back without data.
	bare := session("bare", t0, time.Hour)
	bare.Data = nil
	must(t, "create bare", s.CreateSession(ctx, bare))
	got, err = s.GetSession(ctx, "bare")
	must(t, "get bare", err)
	sameSession(t, "bare", got, bare)

	// Touch moves LastSeenAt only, to the nanosecond.
	seen := t0.Add(90*time.Second + 7)
	must(t, "touch", s.TouchSession(ctx, want.ID, seen))
	got, err = s.GetSession(ctx, want.ID)
	must(t, "get after touch", err)
	want.LastSeenAt = seen
	sameSession(t, "after touch", got, want)

	// Delete ends it; deleting again is no error.
	must(t, "delete", s.DeleteSession(ctx, want.ID))
	if _, err := s.GetSession(ctx, want.ID); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("get a deleted session: %v, want ErrNotFound", err)
	}
	must(t, "delete again", s.DeleteSession(ctx, want.ID))
	if err := s.TouchSession(ctx, want.ID, seen); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("touch a deleted session: %v, want ErrNotFound", err)
	}
	// The other session is untouched.
	got, err = s.GetSession(ctx, "bare")
	must(t, "get bare after delete", err)
	sameSession(t, "bare after a delete", got, bare)
}

func testSessionErrors(t *testing.T, s flows.Tx) {
	ctx := context.Background()
	if _, err := s.GetSession(ctx, "nothing"); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("get an unknown session: %v, want ErrNotFound", err)
	}
	if err := s.TouchSession(ctx, "nothing", t0); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("touch an unknown session: %v, want ErrNotFound", err)
	}
	must(t, "delete an unknown session", s.DeleteSession(ctx, "nothing"))
	noID := session("", t0, time.Hour)
	if err := s.CreateSession(ctx, noID); !errors.Is(err, flows.ErrInvalid) {
		t.Fatalf("create without an id: %v, want ErrInvalid", err)
	}
	noKind := session("x", t0, time.Hour)
	noKind.Kind = ""
	if err := s.CreateSession(ctx, noKind); !errors.Is(err, flows.ErrInvalid) {
		t.Fatalf("create without a kind: %v, want ErrInvalid", err)
	}
}

func testPurgeSessions(t *testing.T, s flows.Tx) {
	ctx := context.Background()
	must(t, "create short", s.CreateSession(ctx, session("short", t0, time.Hour)))
	must(t, "create edge", s.CreateSession(ctx, session("edge", t0, 2*time.Hour)))
	must(t, "create long", s.CreateSession(ctx, session("long", t0, 8*time.Hour)))
	// Sessions that expired before t0+2h go; one expiring exactly then stays.
	must(t, "purge", s.PurgeSessions(ctx, t0.Add(2*time.Hour)))
	if _, err := s.GetSession(ctx, "short"); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("an expired session survived the purge: %v", err)
	}
	for _, id := range []string{"edge", "long"} {
		if _, err := s.GetSession(ctx, id); err != nil {
			t.Fatalf("purge deleted %s, which had not expired: %v", id, err)
		}
	}
	must(t, "purge later", s.PurgeSessions(ctx, t0.Add(9*time.Hour)))
	for _, id := range []string{"edge", "long"} {
		if _, err := s.GetSession(ctx, id); !errors.Is(err, flows.ErrNotFound) {
			t.Fatalf("%s survived a purge past its end: %v", id, err)
		}
	}
}

func (e eachInTx) CreateSession(ctx context.Context, s flows.Session) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.CreateSession(ctx, s) })
}

func (e eachInTx) GetSession(ctx context.Context, id string) (flows.Session, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.Session, error) { return tx.GetSession(ctx, id) })
}

func (e eachInTx) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.TouchSession(ctx, id, lastSeen) })
}

func (e eachInTx) DeleteSession(ctx context.Context, id string) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.DeleteSession(ctx, id) })
}

func (e eachInTx) PurgeSessions(ctx context.Context, before time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.PurgeSessions(ctx, before) })
}
