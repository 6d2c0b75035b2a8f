package accounts_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/provider/internal/accounts"
)

func TestFind(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := flows.New(st, flows.Config{Origin: "https://keystep.example.com",
		CodeConfig: flows.CodeConfig{CodeKey: []byte("keystep-test-code-key-0123456789abcdef")}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	kim, err := svc.AddAccount(ctx, "admin:test", flows.NewAccount{Username: "kim"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		byID  bool
		value string
		want  string // account id, or "" for ErrUnknown
	}{
		{false, "kim", kim.ID},
		{false, "KIM", kim.ID},
		{false, "\u212aim", ""}, // Kelvin sign K: folds to k in the store, names nobody here
		{false, "kimberly", ""},
		{true, kim.ID, kim.ID},
		{true, "kim", ""},
		{true, "", ""},
	} {
		a, err := accounts.Find(ctx, st, c.byID, c.value)
		switch {
		case c.want == "" && !errors.Is(err, accounts.ErrUnknown):
			t.Errorf("Find(%v, %q) = %+v, %v; want ErrUnknown", c.byID, c.value, a, err)
		case c.want != "" && (err != nil || a.ID != c.want):
			t.Errorf("Find(%v, %q) = %+v, %v; want %s", c.byID, c.value, a, err, c.want)
		}
	}
}
