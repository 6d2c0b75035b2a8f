package storetest

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// BenchSignIn measures the store-level work of one full sign-in on s: a
// transaction that creates the sign-in and audits it, a read of it, and a
// transaction that decides it and audits that. One op is one sign-in, run
// one after the other; the benchmark also reports sign-ins per second.
func BenchSignIn(b *testing.B, s flows.Store) {
	ctx := context.Background()
	benchSetup(b, s)
	i := 0
	for b.Loop() {
		i++
		if err := oneSignIn(ctx, s, i); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "signins/s")
}

// BenchSignInParallel is BenchSignIn with sign-ins running on
// parallelism×GOMAXPROCS goroutines at once, to measure throughput under
// contention (on the audit chain above all).
func BenchSignInParallel(b *testing.B, s flows.Store, parallelism int) {
	ctx := context.Background()
	benchSetup(b, s)
	var n atomic.Int64
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := oneSignIn(ctx, s, int(n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "signins/s")
}

func benchSetup(b *testing.B, s flows.Store) {
	ctx := context.Background()
	if err := s.CreateAccount(ctx, account("acc-1", "alice")); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateDevice(ctx, device("dev-1", "acc-1", t0)); err != nil {
		b.Fatal(err)
	}
}

// oneSignIn is the store's share of sign-in number i.
func oneSignIn(ctx context.Context, s flows.Store, i int) error {
	id := "si-" + strconv.Itoa(i)
	now := t0.Add(time.Duration(i) * time.Millisecond)
	err := s.InTx(ctx, func(tx flows.Tx) error {
		if err := tx.CreateSignIn(ctx, signIn(id, "acc-1", now, now.Add(2*time.Minute))); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, flows.AuditEvent{Time: now, Actor: "client:portal", Action: flows.AuditSignInStarted,
			AccountID: "acc-1", SignInID: id})
		return err
	})
	if err != nil {
		return fmt.Errorf("begin sign-in: %w", err)
	}
	if _, err := s.GetSignIn(ctx, id); err != nil {
		return fmt.Errorf("read sign-in: %w", err)
	}
	err = s.InTx(ctx, func(tx flows.Tx) error {
		d := flows.SignIn{ID: id, Status: flows.StatusApproved, DecidedAt: now.Add(time.Second),
			DecidedBy: flows.MethodPush, DeviceID: "dev-1", Reason: "number matched"}
		if err := tx.DecideSignIn(ctx, d); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, flows.AuditEvent{Time: now.Add(time.Second), Actor: "device:dev-1",
			Action: flows.AuditSignInApproved, AccountID: "acc-1", DeviceID: "dev-1", SignInID: id})
		return err
	})
	if err != nil {
		return fmt.Errorf("decide sign-in: %w", err)
	}
	return nil
}
