package flows_test

import (
	"testing"

	"github.com/keystep/keystep/flows"
)

// TestAwaitRecheck: a decision whose notification never reaches the
// waiter (made by another instance whose events are not shared, as when a
// NOTIFY is lost) is seen at the next re-read, AwaitRecheck later, not at
// the sign-in's expiry.
func TestAwaitRecheck(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	other, err := flows.New(e.store, flows.Config{Origin: origin, CodeConfig: flows.CodeConfig{CodeKey: testCodeKey}}, flows.WithClock(e.clock)) // its own LocalEvents
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan flows.SignIn)
	go func() {
		s, err := e.svc.Await(e.ctx, ch.SignIn.ID)
		if err != nil {
			t.Errorf("await: %v", err)
		}
		done <- s
	}()
	e.clock.BlockUntilWaiters(1) // the waiter waits for its re-read
	if _, err := other.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-done:
		t.Fatalf("await woke with %s without a notification or a re-read", s.Status)
	default:
	}
	e.clock.Advance(flows.AwaitRecheck)
	if s := <-done; s.Status != flows.StatusApproved {
		t.Fatalf("await after the re-read: %s", s.Status)
	}
}
