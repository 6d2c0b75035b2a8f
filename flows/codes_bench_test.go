package flows_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/keystep/keystep/flows"
)

// BenchmarkSubmitCode measures one code verification through flows: the
// per-address and per-account limits, the reads of the sign-in, account,
// lock and live codes, the keyed hash compared in constant time, and the
// transaction that redeems the code, approves the sign-in, resets the
// failures and appends the audit event. Issuing the override code and
// beginning the sign-in are setup, outside the timer. Users and addresses
// rotate so the rate limits (store-held like the rest) count but never bite.
func BenchmarkSubmitCode(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			st := benchStores[name](b)
			defer st.Close()
			svc, err := flows.New(st, flows.Config{Origin: origin, CodeConfig: flows.CodeConfig{
				CodeKey: testCodeKey, CodeChecksPerIPPerMinute: 10000, CodeChecksPerAccountPerMinute: 10000,
			}})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			const users = 64
			for i := range users {
				if _, err := svc.AddAccount(ctx, "admin", flows.NewAccount{Username: fmt.Sprintf("user%d", i)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				user := fmt.Sprintf("user%d", i%users)
				_, code, err := svc.IssueOverride(ctx, "admin", user, 0, "")
				if err != nil {
					b.Fatal(err)
				}
				ch, err := svc.Begin(ctx, flows.BeginRequest{Username: user, Client: "Payroll", Methods: []flows.Method{flows.MethodOverride}})
				if err != nil {
					b.Fatal(err)
				}
				ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
				b.StartTimer()
				s, err := svc.SubmitCode(ctx, flows.SubmitCodeRequest{SignInID: ch.SignIn.ID, Code: code, IP: ip})
				if err != nil || s.Status != flows.StatusApproved {
					b.Fatalf("submit: %+v, %v", s, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "codes/s")
		})
	}
}
