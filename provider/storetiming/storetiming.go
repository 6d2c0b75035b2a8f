// Package storetiming wraps a flows.Store so that every call, inside a
// transaction or not, is timed and reported by method name, without
// changing what the store does: arguments, results and errors pass through
// untouched.
package storetiming

//go:generate go run gen.go

import (
	"context"
	"time"

	"github.com/keystep/keystep/flows"
)

// Observer is told how long each store call took; op is the method's name
// ("GetSignIn", "InTx", …: see Ops). It is called on the caller's goroutine
// and must be quick.
type Observer interface {
	ObserveStore(op string, d time.Duration)
}

// Wrap returns st with every call timed and reported to o. InTx is timed
// whole (as "InTx"), and the calls made on its Tx each on their own.
// A nil o returns st itself.
func Wrap(st flows.Store, o Observer) flows.Store {
	if o == nil {
		return st
	}
	return timedStore{timedTx: timedTx{Tx: st, o: observer{o}}, st: st}
}

const opInTx = "InTx"

var (
	_ flows.Store = timedStore{}
	_ flows.Tx    = timedTx{}
)

// observer reports one call.
type observer struct{ Observer }

func (o observer) done(op string, start time.Time) { o.ObserveStore(op, time.Since(start)) }

// timedStore is the wrapped store.
type timedStore struct {
	timedTx
	st flows.Store
}

// InTx times the whole transaction, and gives fn a Tx whose calls are timed.
func (s timedStore) InTx(ctx context.Context, fn func(tx flows.Tx) error) error {
	defer s.o.done(opInTx, time.Now())
	return s.st.InTx(ctx, func(tx flows.Tx) error { return fn(timedTx{Tx: tx, o: s.o}) })
}

// Close closes the store.
func (s timedStore) Close() error { return s.st.Close() }

// Unwrap returns the store that was wrapped.
func (s timedStore) Unwrap() flows.Store { return s.st }

// timedTx times each call on its Tx.
type timedTx struct {
	flows.Tx
	o observer
}
