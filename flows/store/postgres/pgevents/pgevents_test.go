package pgevents

import (
	"context"
	"testing"
	"time"

	"github.com/keystep/keystep/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// hang bounds a wait that must end; it is a guard, never a synchronisation.
const hang = 30 * time.Second

func open(t *testing.T, dsn string, opts ...Option) *Events {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	e, err := Open(ctx, dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

func woken(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(hang):
		t.Fatalf("%s: not woken", what)
	}
}

func notWoken(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: woken", what)
	default:
	}
}

// A Publish on one instance wakes the subscribers of that topic on both,
// and only them.
func TestPublishAcrossInstances(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	onA, stopA := a.Subscribe("signin/1")
	defer stopA()
	onB, stopB := b.Subscribe("signin/1")
	defer stopB()
	other, stopOther := b.Subscribe("signin/2")
	defer stopOther()

	a.Publish("signin/1")
	woken(t, onA, "local subscriber") // at once: Publish wakes it itself
	woken(t, onB, "other instance's subscriber")
	// signin/2 is published after signin/1 on the same session: once it
	// arrives, signin/1's notification would have too.
	a.Publish("signin/2")
	woken(t, other, "signin/2 subscriber")
	notWoken(t, onA, "local subscriber, by its own notification coming back")

	b.Publish("signin/1")
	woken(t, onA, "A's subscriber, published on B")
	woken(t, onB, "B's own subscriber")
}

// Unsubscribed channels are no longer woken.
func TestUnsubscribe(t *testing.T) {
	e := open(t, pgtest.DSN(t))
	ch, stop := e.Subscribe("t")
	stop()
	stop() // twice is fine
	e.Publish("t")
	notWoken(t, ch, "after unsubscribe")
}

// When the listening connection drops, every subscriber is woken (a
// notification may have been lost), the connection comes back, and
// notifications flow again.
func TestReconnect(t *testing.T) {
	dsn := pgtest.DSN(t)
	states := make(chan uint32, 8) // the backend pid when connected, 0 when down
	b := open(t, dsn, withState(func(up bool, pid uint32) { states <- pid }))
	a := open(t, dsn)
	first := <-states
	if first == 0 {
		t.Fatal("the listener did not connect")
	}
	sub, stop := b.Subscribe("signin/x")
	defer stop()
	unrelated, stop2 := b.Subscribe("account/y")
	defer stop2()

	var killed bool
	if err := a.db.QueryRowContext(context.Background(), "SELECT pg_terminate_backend($1)", int64(first)).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the listener: %v %v", killed, err)
	}
	if pid := <-states; pid != 0 {
		t.Fatalf("state after the kill: connected to %d", pid)
	}
	woken(t, sub, "subscriber when the connection dropped")
	woken(t, unrelated, "every subscriber when the connection dropped")
	second := <-states
	if second == 0 || second == first {
		t.Fatalf("reconnected to backend %d (was %d)", second, first)
	}
	// The state hook runs after the reconnection's wake-up: drain it, then
	// a new notification arrives.
	for _, ch := range []<-chan struct{}{sub, unrelated} {
		select {
		case <-ch:
		default:
		}
	}
	a.Publish("account/y")
	woken(t, unrelated, "after the reconnection")
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 20: 5 * time.Second} {
		if got := backoff(n); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

// Open fails when the database cannot be reached.
func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if _, err := Open(ctx, "host=/nonexistent-dir port=1 user=x dbname=x sslmode=disable connect_timeout=2"); err == nil {
		t.Fatal("opened an unreachable database")
	}
}

// A quiet listening connection is pinged, and keeps receiving after.
func TestIdlePing(t *testing.T) {
	dsn := pgtest.DSN(t)
	pings := make(chan error, 100)
	b := open(t, dsn, func(e *Events) {
		e.idle = time.Millisecond
		e.pinged = func(err error) {
			select {
			case pings <- err:
			default:
			}
		}
	})
	a := open(t, dsn)
	sub, stop := b.Subscribe("signin/p")
	defer stop()
	for range 3 {
		select {
		case err := <-pings:
			if err != nil {
				t.Fatalf("ping: %v", err)
			}
		case <-time.After(hang):
			t.Fatal("no ping of the quiet connection")
		}
	}
	a.Publish("signin/p")
	woken(t, sub, "after the pings")
}
