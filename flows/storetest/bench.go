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

// DirectoryPageSize is the page of a directory sync that BenchDirectoryPage
// reads and marks at once.
const DirectoryPageSize = 1000

// BenchDirectoryPage measures the store's share of one page of a full
// directory sync on s, on a source of links linked accounts (rounded up to
// whole pages): GetDirectoryLinks of DirectoryPageSize external ids (Get),
// MarkDirectorySeen of them (Mark), and both one after the other (Page), each
// call outside a transaction. Every mark is by a new run, so it writes every
// link of the page, as each page of a full sync does. The sub-benchmarks
// also report ids per second.
func BenchDirectoryPage(b *testing.B, s flows.Store, links int) {
	ctx := context.Background()
	pages := max(1, (links+DirectoryPageSize-1)/DirectoryPageSize)
	ids := make([][]string, pages)
	for p := range pages {
		err := s.InTx(ctx, func(tx flows.Tx) error {
			for i := range DirectoryPageSize {
				ext := fmt.Sprintf("guid-%08d", p*DirectoryPageSize+i)
				ids[p] = append(ids[p], ext)
				if err := tx.CreateAccount(ctx, account("acc-"+ext, "user-"+ext)); err != nil {
					return err
				}
				if err := tx.PutDirectoryLink(ctx, dirLink(srcLDAP, ext, "acc-"+ext)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatalf("set up page %d: %v", p, err)
		}
	}
	run := 0
	get := func(b *testing.B, page []string) {
		ls, err := s.GetDirectoryLinks(ctx, srcLDAP, page)
		if err != nil {
			b.Fatal(err)
		}
		if len(ls) != len(page) {
			b.Fatalf("%d links for a page of %d ids", len(ls), len(page))
		}
	}
	mark := func(b *testing.B, page []string) {
		run++
		if err := s.MarkDirectorySeen(ctx, srcLDAP, "run-"+strconv.Itoa(run), page); err != nil {
			b.Fatal(err)
		}
	}
	for _, bench := range []struct {
		name string
		fn   func(b *testing.B, page []string)
	}{
		{"Get", get},
		{"Mark", mark},
		{"Page", func(b *testing.B, page []string) { get(b, page); mark(b, page) }},
	} {
		b.Run(bench.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				bench.fn(b, ids[i%pages])
				i++
			}
			b.ReportMetric(float64(i*DirectoryPageSize)/b.Elapsed().Seconds(), "ids/s")
		})
	}
}
