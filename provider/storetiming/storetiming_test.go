package storetiming_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/provider/storetiming/internal/txgen"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/provider/storetiming"
)

// recorder remembers the operations it was told of.
type recorder struct {
	mu  sync.Mutex
	ops []string
}

func (r *recorder) ObserveStore(op string, d time.Duration) {
	if d < 0 {
		panic("negative duration")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
}

func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ops) == 0 {
		return ""
	}
	return r.ops[len(r.ops)-1]
}

// nilTx is a Tx whose every method panics (a nil interface inside).
type nilTx struct{ flows.Tx }

// TestEveryMethodIsTimed calls each method of flows.Tx on the wrapper (over
// a Tx that panics) and checks that the observer was told its name: a
// method of flows.Tx left out of tx_methods.go would pass through untimed.
func TestEveryMethodIsTimed(t *testing.T) {
	rec := &recorder{}
	st := storetiming.Wrap(fakeStore{nilTx{}}, rec)
	txType := reflect.TypeFor[flows.Tx]()
	v := reflect.ValueOf(st)
	for i := range txType.NumMethod() {
		name := txType.Method(i).Name
		m := v.MethodByName(name)
		args := make([]reflect.Value, m.Type().NumIn())
		for j := range args {
			args[j] = reflect.Zero(m.Type().In(j))
		}
		args[0] = reflect.ValueOf(context.Background())
		func() {
			defer func() { _ = recover() }()
			m.Call(args)
		}()
		if got := rec.last(); got != name {
			t.Errorf("%s is not timed (last op %q): run go generate ./provider/storetiming/", name, got)
		}
		if !slices.Contains(storetiming.Ops, name) {
			t.Errorf("%s is not in Ops", name)
		}
	}
}

// fakeStore is a Store over a Tx, with transactions that run at once.
type fakeStore struct{ flows.Tx }

func (f fakeStore) InTx(_ context.Context, fn func(flows.Tx) error) error { return fn(f.Tx) }
func (fakeStore) Close() error                                            { return nil }

// TestWrapChangesNothing: over a real store, results and errors pass
// through, a transaction's calls are timed each and as InTx, and a rolled
// back transaction writes nothing.
func TestWrapChangesNothing(t *testing.T) {
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rec := &recorder{}
	st := storetiming.Wrap(raw, rec)
	if storetiming.Wrap(raw, nil) != raw {
		t.Error("Wrap with no observer wrapped")
	}
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	a := flows.Account{ID: flows.NewID(), Username: "alice", State: flows.AccountActive, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetAccount(ctx, "no-such-account"); !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("GetAccount of nothing: %v", err)
	}
	boom := errors.New("boom")
	err = st.InTx(ctx, func(tx flows.Tx) error {
		b := a
		b.ID, b.Username = flows.NewID(), "bob"
		if err := tx.CreateAccount(ctx, b); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: %v", err)
	}
	if _, err := raw.GetAccountByUsername(ctx, "bob"); !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("a rolled back write landed: %v", err)
	}
	got, err := st.GetAccountByUsername(ctx, "alice")
	if err != nil || got.ID != a.ID {
		t.Fatalf("GetAccountByUsername: %+v, %v", got, err)
	}
	want := []string{"CreateAccount", "GetAccount", "CreateAccount", "InTx", "GetAccountByUsername"}
	if !slices.Equal(rec.ops, want) {
		t.Errorf("ops %v, want %v", rec.ops, want)
	}
}

// BenchmarkGetAccount measures what the wrapper adds to one read: compare
// raw with timed (the observer here does nothing; see provider's benchmark
// for the Prometheus histogram's share).
func BenchmarkGetAccount(b *testing.B) {
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "k.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	now := time.Now().UTC()
	a := flows.Account{ID: flows.NewID(), Username: "alice", State: flows.AccountActive, CreatedAt: now, UpdatedAt: now}
	if err := raw.CreateAccount(ctx, a); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		st   flows.Store
	}{{"raw", raw}, {"timed", storetiming.Wrap(raw, nopObserver{})}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.st.GetAccount(ctx, a.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type nopObserver struct{}

func (nopObserver) ObserveStore(string, time.Duration) {}

// memTx answers GetAccount from memory: the wrapper's own cost, without a
// database's noise around it.
type memTx struct {
	flows.Tx
	a flows.Account
}

func (m memTx) GetAccount(context.Context, string) (flows.Account, error) { return m.a, nil }

func BenchmarkWrapperOverhead(b *testing.B) {
	ctx := context.Background()
	raw := fakeStore{memTx{a: flows.Account{ID: "a"}}}
	for _, c := range []struct {
		name string
		st   flows.Store
	}{{"raw", raw}, {"timed", storetiming.Wrap(raw, nopObserver{})}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.st.GetAccount(ctx, "a"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestGeneratedFileIsCurrent fails when tx_methods.go is not what
// go generate writes from flows.Tx today.
func TestGeneratedFileIsCurrent(t *testing.T) {
	want, err := txgen.Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("tx_methods.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("tx_methods.go is stale: run go generate ./provider/storetiming/")
	}
}
