package flows_test

import (
	"testing"

	"github.com/keystep/keystep/flows"
)

// TestLocalEvents: Publish wakes the topic's subscribers only, wake-ups
// coalesce, PublishAll wakes everyone, and an ended subscription is not
// woken.
func TestLocalEvents(t *testing.T) {
	e := flows.NewLocalEvents()
	a, stopA := e.Subscribe("a")
	b, stopB := e.Subscribe("b")
	defer stopB()
	woken := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	e.Publish("a")
	e.Publish("a")
	if !woken(a) || woken(a) || woken(b) {
		t.Fatal("Publish woke the wrong subscribers, or did not coalesce")
	}
	e.PublishAll()
	if !woken(a) || !woken(b) {
		t.Fatal("PublishAll did not wake everyone")
	}
	stopA()
	stopA()
	e.PublishAll()
	if woken(a) || !woken(b) {
		t.Fatal("an ended subscription was woken, or a live one was not")
	}
}
