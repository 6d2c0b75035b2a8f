package flows_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
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

// benchUsers is how many users the sign-in benchmarks take turns with, so
// that no account passes the push limit (benchPushLimit per minute).
const (
	benchUsers     = 64
	benchPushLimit = 1000
)

// benchService opens a store and a service with benchUsers enrolled users.
func benchService(b *testing.B, store string) (*env, []phone) {
	st := benchStores[store](b)
	b.Cleanup(func() { st.Close() })
	svc, err := flows.New(st, flows.Config{Origin: origin, CodeConfig: flows.CodeConfig{
		CodeKey: testCodeKey, PushLimit: benchPushLimit, PushWindow: time.Minute}})
	if err != nil {
		b.Fatal(err)
	}
	e := &env{t: b, ctx: context.Background(), svc: svc, store: st}
	phones := make([]phone, benchUsers)
	for i := range phones {
		name := fmt.Sprintf("user%d", i)
		e.addUser(name)
		phones[i] = e.enrollReal(name)
		phones[i].device.Name = name
	}
	return e, phones
}

// BenchmarkPushSignIn measures one complete push sign-in through flows:
// Begin (with its push-limit count), the device's ES256 signature over the
// decision, Decide (which verifies it and records the decision), and a
// waiter in Await woken by it.
func BenchmarkPushSignIn(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			e, phones := benchService(b, name)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p := phones[i%len(phones)]
				i++
				if err := pushSignIn(e, p.device.Name, p); err != nil {
					b.Fatal(err)
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
			e, phones := benchService(b, name)
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p := phones[next.Add(1)%int64(len(phones))]
					if err := pushSignIn(e, p.device.Name, p); err != nil {
						b.Error(err)
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

// pushSignIn is one complete push sign-in: Begin, a waiter in Await, the
// phone's signed approval, Decide, and the waiter woken with the result.
func pushSignIn(e *env, user string, p phone) error {
	ch, err := e.svc.Begin(e.ctx, flows.BeginRequest{Username: user, Client: "Payroll"})
	if err != nil {
		return err
	}
	woken := make(chan flows.SignIn, 1)
	go func() {
		s, _ := e.svc.Await(e.ctx, ch.SignIn.ID)
		woken <- s
	}()
	now := time.Now()
	msg, err := flows.DecisionPayload(origin, ch.SignIn.ID, ch.SignIn.Nonce, flows.DecisionApprove, flows.MethodPush, ch.Number, now)
	if err != nil {
		return err
	}
	sig, err := flows.SignES256(p.key, msg)
	if err != nil {
		return err
	}
	d := flows.DecisionRequest{SignInID: ch.SignIn.ID, DeviceID: p.device.ID, Decision: flows.DecisionApprove, Method: flows.MethodPush, Number: ch.Number, Time: now, Signature: sig}
	if _, err := e.svc.Decide(e.ctx, d); err != nil {
		return err
	}
	if s := <-woken; s.Status != flows.StatusApproved {
		return fmt.Errorf("waiter saw %s", s.Status)
	}
	return nil
}
