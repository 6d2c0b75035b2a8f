package flows_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/postgres"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// benchStores opens each backend for a benchmark.
var benchStores = map[string]func(b *testing.B) flows.Store{
	"sqlite": func(b *testing.B) flows.Store {
		st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		return st
	},
	"postgres": func(b *testing.B) flows.Store {
		st, err := postgres.Open(context.Background(), pgtest.DSN(b))
		if err != nil {
			b.Fatal(err)
		}
		return st
	},
}

// BenchmarkPushSignIn measures one complete push sign-in through flows:
// Begin, the device's ES256 signature over the decision, Decide (which
// verifies it and records the decision), and a waiter in Await woken by it.
func BenchmarkPushSignIn(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			st := benchStores[name](b)
			defer st.Close()
			svc, err := flows.New(st, flows.Config{Origin: origin})
			if err != nil {
				b.Fatal(err)
			}
			e := &env{t: b, ctx: context.Background(), svc: svc, store: st}
			e.addUser("alice")
			p := e.enrollReal("alice")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				ch, err := svc.Begin(e.ctx, flows.BeginRequest{Username: "alice", Client: "Payroll"})
				if err != nil {
					b.Fatal(err)
				}
				woken := make(chan flows.SignInStatus, 1)
				go func() {
					s, err := svc.Await(e.ctx, ch.SignIn.ID)
					if err != nil {
						b.Error(err)
					}
					woken <- s.Status
				}()
				if _, err := svc.Decide(e.ctx, signDecision(b, p, ch)); err != nil {
					b.Fatal(err)
				}
				if st := <-woken; st != flows.StatusApproved {
					b.Fatalf("waiter saw %s", st)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signins/s")
		})
	}
}

// BenchmarkPushSignInParallel is BenchmarkPushSignIn with many users
// signing in at once, to use every core: the throughput of one server.
func BenchmarkPushSignInParallel(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			st := benchStores[name](b)
			defer st.Close()
			svc, err := flows.New(st, flows.Config{Origin: origin})
			if err != nil {
				b.Fatal(err)
			}
			e := &env{t: b, ctx: context.Background(), svc: svc, store: st}
			const users = 64
			phones := make(chan phone, users)
			for i := range users {
				name := fmt.Sprintf("user%d", i)
				e.addUser(name)
				p := e.enrollReal(name)
				p.device.Name = name
				phones <- p
			}
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				p := <-phones
				for pb.Next() {
					ch, err := svc.Begin(e.ctx, flows.BeginRequest{Username: p.device.Name, Client: "Payroll"})
					if err != nil {
						b.Error(err)
						return
					}
					woken := make(chan flows.SignInStatus, 1)
					go func() {
						s, _ := svc.Await(e.ctx, ch.SignIn.ID)
						woken <- s.Status
					}()
					if _, err := svc.Decide(e.ctx, signDecision(b, p, ch)); err != nil {
						b.Error(err)
						return
					}
					if st := <-woken; st != flows.StatusApproved {
						b.Errorf("waiter saw %s", st)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signins/s")
		})
	}
}

// BenchmarkPushSignInCrypto is the cryptography of one sign-in alone: the
// server's ES256 verification of the device's decision.
func BenchmarkPushSignInCrypto(b *testing.B) {
	key, der := newKey(b)
	pub, err := flows.ParsePublicKey(der)
	if err != nil {
		b.Fatal(err)
	}
	msg, _ := flows.DecisionPayload(origin, flows.NewID(), flows.NewSecret(16), flows.DecisionApprove, flows.MethodPush, "42", time.Now())
	sig, _ := flows.SignES256(key, msg)
	for b.Loop() {
		if !flows.VerifyES256(pub, msg, sig) {
			b.Fatal("verify failed")
		}
	}
}

// enrollReal enrolls a device on a service that runs on the real clock.
func (e *env) enrollReal(user string) phone {
	_, link, err := e.svc.Invite(e.ctx, "admin", user)
	if err != nil {
		e.t.Fatal(err)
	}
	req, key := e.enrollRequest(link)
	d, _, err := e.svc.Enroll(e.ctx, req)
	if err != nil {
		e.t.Fatal(err)
	}
	return phone{key: key, device: d}
}

func signDecision(b *testing.B, p phone, ch flows.Challenge) flows.DecisionRequest {
	now := time.Now()
	msg, err := flows.DecisionPayload(origin, ch.SignIn.ID, ch.SignIn.Nonce, flows.DecisionApprove, flows.MethodPush, ch.Number, now)
	if err != nil {
		b.Fatal(err)
	}
	sig, err := flows.SignES256(p.key, msg)
	if err != nil {
		b.Fatal(err)
	}
	return flows.DecisionRequest{SignInID: ch.SignIn.ID, DeviceID: p.device.ID, Decision: flows.DecisionApprove, Method: flows.MethodPush, Number: ch.Number, Time: now, Signature: sig}
}
