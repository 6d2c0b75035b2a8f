package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
	"github.com/keystep/keystep/provider/authenticator"
)

// adminOf is an admin API client of one instance, with its own token.
func adminOf(b testing.TB, in *instance, hc *http.Client) *adminclient.Client {
	b.Helper()
	token, err := os.ReadFile(filepath.Join(in.srv.Data, "admin-token"))
	if err != nil {
		b.Fatal(err)
	}
	admin, err := adminclient.New(in.srv.URL, string(token), adminclient.WithHTTPClient(hc))
	if err != nil {
		b.Fatal(err)
	}
	return admin
}

// BenchmarkInstancesWake measures how long a sign-in waiter on instance A
// takes to learn of an approval made on instance B: A's admin API
// long-polls the sign-in (flows.Await, woken through LISTEN/NOTIFY), the
// phone approves through the load balancer, which sends it to B. The
// figures are from the start of the approval request (B verifies the
// signature and writes the decision, then notifies) to A's answer, so they
// include B's decision: p50-ms and p99-ms. answered-p50-ms is from B's
// answer to the phone to A's answer (negative: A answered first).
func BenchmarkInstancesWake(b *testing.B) {
	c := newCluster(b)
	a := c.start("A")
	bb := c.start("B")
	c.setRoute(devicePaths(a, bb))
	ctx := context.Background()
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	admin := adminOf(b, a, hc)

	const users = 10
	phones := make([]*authenticator.Authenticator, users)
	for i := range users {
		name := fmt.Sprintf("wake%02d", i)
		if _, err := admin.AddUser(ctx, api.NewUser{Username: name}); err != nil {
			b.Fatal(err)
		}
		inv, err := admin.Invite(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		if phones[i], err = authenticator.Open(filepath.Join(b.TempDir(), name+".json"), authenticator.WithHTTPClient(hc)); err != nil {
			b.Fatal(err)
		}
		if _, err := phones[i].Enroll(ctx, inv.Link); err != nil {
			b.Fatal(err)
		}
	}

	var total, answered []time.Duration
	for i := 0; b.Loop(); i++ {
		name, phone := fmt.Sprintf("wake%02d", i%users), phones[i%users]
		ch, err := admin.TestSignIn(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		reqs, err := phone.Pending(ctx)
		if err != nil || len(reqs) != 1 {
			b.Fatalf("pending: %d, %v", len(reqs), err)
		}
		// A's long-poll is sent before the approval starts; A subscribes
		// within microseconds of reading it, the approval takes
		// milliseconds.
		sent := make(chan struct{})
		woke := make(chan time.Time, 1)
		var once sync.Once
		wctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(sent) }) }})
		go func() {
			s, err := admin.GetSignIn(wctx, ch.ID, time.Minute)
			if err != nil || s.Status != "approved" {
				b.Errorf("long-poll on A: %+v, %v", s, err)
			}
			woke <- time.Now()
		}()
		<-sent
		start := time.Now()
		if _, err := phone.ApproveRequest(ctx, reqs[0], ch.Number); err != nil {
			b.Fatal(err)
		}
		done := time.Now()
		at := <-woke
		total = append(total, at.Sub(start))
		answered = append(answered, at.Sub(done))
	}
	b.StopTimer()
	if b.Failed() {
		return
	}
	b.ReportMetric(percentile(total, 50), "p50-ms")
	b.ReportMetric(percentile(total, 99), "p99-ms")
	b.ReportMetric(percentile(answered, 50), "answered-p50-ms")
	if p99 := percentile(total, 99); p99 >= 50 {
		b.Errorf("approval-to-wake p99 %.1f ms, target under 50 ms", p99)
	}
}

// percentile is the p-th percentile of ds in milliseconds.
func percentile(ds []time.Duration, p int) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, (len(s)*p+99)/100-1)
	return float64(s[max(i, 0)]) / float64(time.Millisecond)
}

// BenchmarkInstancesSignIns measures complete OIDC sign-ins per second (as
// BenchmarkOIDCSignIn) through the load balancer in front of one instance
// and in front of two, which take every request in turn: any step of a
// sign-in may land on either instance.
func BenchmarkInstancesSignIns(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			c := newCluster(b)
			members := []*instance{c.start("A")}
			if n == 2 {
				members = append(members, c.start("B"))
			}
			var turn atomic.Uint64
			c.setRoute(func(*http.Request) *instance { return members[turn.Add(1)%uint64(len(members))] })
			ctx := context.Background()
			// The admin calls go to A itself (each instance has its own
			// admin token); the phones and the browsers use the public URL.
			tr, hc, pool := benchUsersOn(ctx, b, members[0].srv)
			pub := c.public(members[0])
			party, err := rp.NewRelyingPartyOIDC(ctx, pub.URL, clusterClientID, c.secret, clusterRedirectURI,
				[]string{oidc.ScopeOpenID}, rp.WithHTTPClient(hc), rp.WithVerifierOpts(rp.WithSupportedSigningAlgorithms("ES256")))
			if err != nil {
				b.Fatal(err)
			}
			runSignIns(b, 0, pool, func(u *benchUser, state string) error {
				return benchSignIn(ctx, b, pub, party, tr, u, state)
			})
		})
	}
}
