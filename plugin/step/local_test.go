package step_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/plugin/step"
)

func newLocal(t *testing.T) *step.Local {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := flows.New(st, flows.Config{Origin: "https://keystep.test",
		CodeConfig: flows.CodeConfig{CodeKey: []byte("keystep-test-code-key-0123456789abcdef")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return &step.Local{Flows: svc}
}

// TestBindingMessage: the text next to the app's name is short, and
// nothing in it can pretend to be something else on the phone.
func TestBindingMessage(t *testing.T) {
	l := newLocal(t)
	ctx := context.Background()
	if _, err := l.AddAccount(ctx, step.NewAccount{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	begin := func(client, msg string) error {
		_, err := l.Begin(ctx, step.BeginRequest{Username: "alice", Client: client, BindingMessage: msg,
			Methods: []flows.Method{flows.MethodOverride}})
		return err
	}
	if err := begin("Payroll", strings.Repeat("é", 64)); err != nil {
		t.Errorf("64 characters (128 bytes) refused: %v", err)
	}
	for name, c := range map[string][2]string{
		"too long":         {"Payroll", strings.Repeat("é", 65)},
		"no client":        {"", "ref 42"},
		"right-to-left":    {"Payroll", "ref\u202eknab"},
		"line separator":   {"Payroll", "ok\u2028Approve PayPal"},
		"zero width space": {"Payroll", "pay\u200bpal"},
		"newline":          {"Payroll", "a\nb"},
	} {
		if err := begin(c[0], c[1]); !errors.Is(err, flows.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// TestRemoveByUsername: the removed account is returned (read back by id).
func TestRemoveByUsername(t *testing.T) {
	l := newLocal(t)
	ctx := context.Background()
	a, err := l.AddAccount(ctx, step.NewAccount{Username: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.Remove(ctx, step.AccountRef{Username: "bob"}, "left")
	if err != nil || got.ID != a.ID || got.State != flows.AccountRemoved {
		t.Errorf("Remove = %+v, %v", got, err)
	}
	if _, err := l.Cancel(ctx, "nope", strings.Repeat("x", 501)); !errors.Is(err, flows.ErrInvalid) {
		t.Errorf("an oversized cancel reason: %v", err)
	}
}
