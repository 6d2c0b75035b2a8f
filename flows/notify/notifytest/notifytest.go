// Package notifytest has senders for tests: they keep what flows gives
// them, so a test can read the code a user would have received.
package notifytest

import (
	"context"
	"regexp"
	"slices"
	"sync"
	"testing"

	"github.com/keystep/keystep/flows"
)

// Mailbox is a flows.EmailSender that keeps every message.
type Mailbox struct {
	mu   sync.Mutex
	msgs []flows.Email
}

// SendEmail keeps m.
func (b *Mailbox) SendEmail(_ context.Context, m flows.Email) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, m)
	return nil
}

// All returns the messages kept so far.
func (b *Mailbox) All() []flows.Email {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.msgs)
}

// codeRE finds the code in flows' code messages ("…is: 123456").
var codeRE = regexp.MustCompile(`is: ([0-9]+)`)

// LastCode returns the code in the last message; the test fails if there
// is none.
func (b *Mailbox) LastCode(t testing.TB) string {
	t.Helper()
	msgs := b.All()
	if len(msgs) == 0 {
		t.Fatal("no email was sent")
	}
	m := codeRE.FindStringSubmatch(msgs[len(msgs)-1].Text)
	if m == nil {
		t.Fatalf("no code in %q", msgs[len(msgs)-1].Text)
	}
	return m[1]
}

// SMSSink is a flows.SMSSender that delivers nothing anywhere.
type SMSSink struct{}

// SendSMS drops the message.
func (SMSSink) SendSMS(context.Context, flows.SMS) error { return nil }
