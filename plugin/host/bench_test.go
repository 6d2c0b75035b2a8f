package host_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/plugin/step"
	"github.com/keystep/keystep/provider"
	"github.com/keystep/keystep/provider/authenticator"
)

// benchUsers is how many enrolled users a benchmark takes turns with, so
// that no account reaches the push limit.
const benchUsers = 8

// benchUser is a user and her phone.
type benchUser struct {
	name  string
	phone *authenticator.Authenticator
}

// enrollBench enrolls each user on a phone of her own, with invitations
// made through acc.
func enrollBench(b *testing.B, acc step.Accounts, hc *http.Client, users []string) []benchUser {
	b.Helper()
	ctx := context.Background()
	out := make([]benchUser, len(users))
	for i, u := range users {
		inv, err := acc.Invite(ctx, step.AccountRef{Username: u})
		if err != nil {
			b.Fatal(err)
		}
		phone, err := authenticator.Open(filepath.Join(b.TempDir(), u+".json"), authenticator.WithHTTPClient(hc))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := phone.Enroll(ctx, inv.Link); err != nil {
			b.Fatal(err)
		}
		out[i] = benchUser{name: u, phone: phone}
	}
	return out
}

// signIn is one sign-in: Begin (with the given methods; nil: push and
// QR, whose PNG the plugin renders), the phone approves with the number
// (listing its pending requests, then approving, through the device
// API), Await.
func signIn(ctx context.Context, s step.Step, u benchUser, methods []flows.Method) error {
	tx, err := s.Begin(ctx, step.BeginRequest{Username: u.name, Client: "Bench IdP", IP: "192.0.2.1", Methods: methods})
	if err != nil {
		return err
	}
	if err := approvePending(ctx, u.phone, tx.ID, tx.Number); err != nil {
		return err
	}
	res, err := s.Await(ctx, tx.ID, nil)
	if err != nil {
		return err
	}
	if !res.Approved() {
		return fmt.Errorf("sign-in %s: %s", tx.ID, res.Status)
	}
	return nil
}

// startLocal runs step.Local over a SQLite store in process, with the
// device API (provider.Server) on loopback HTTP for the phones.
func startLocal(b *testing.B, users []string) *step.Local {
	b.Helper()
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	origin := "http://" + ln.Addr().String()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "keystep.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	svc, err := flows.New(st, flows.Config{Origin: origin, CodeConfig: flows.CodeConfig{
		CodeKey: []byte("host-bench-code-key-0123456789abcdef"), PushLimit: 1000, PushWindow: time.Minute}},
		flows.WithLogger(log))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.Close)
	p, err := provider.New(provider.Options{Flows: svc, AdminToken: "host-bench-admin-token-0123456789", Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(p.Handler())
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	b.Cleanup(ts.Close)
	for _, u := range users {
		if _, err := svc.AddAccount(ctx, "bench", flows.NewAccount{Username: u, Email: u + "@example.com"}); err != nil {
			b.Fatal(err)
		}
	}
	return &step.Local{Flows: svc}
}

// BenchmarkStepPluginVsLocal measures a whole sign-in (Begin, the
// phone's approval through the device API, Await) in process (local)
// and through the launched keystep binary (plugin); the difference is
// what the plugin boundary costs. The -push-only pair leaves QR out, so
// Begin renders no PNG (the largest CPU cost of a sign-in). health is
// one Health round trip through the plugin. Each reports the CPU time
// per sign-in of this process (host-cpu-ns/op) and of the plugin's
// (plugin-cpu-ns/op).
func BenchmarkStepPluginVsLocal(b *testing.B) {
	ctx := context.Background()
	users := make([]string, benchUsers)
	for i := range users {
		users[i] = fmt.Sprintf("user%02d", i)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * benchUsers, IdleConnTimeout: time.Minute}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: time.Minute}

	// run times b.N sign-ins and reports the CPU time they took in this
	// process (host-cpu-ns/op) and in the plugin's (plugin-cpu-ns/op; pid
	// 0: none).
	run := func(b *testing.B, s step.Step, pool []benchUser, pid int, methods []flows.Method) {
		for _, u := range pool { // warm the connections
			if err := signIn(ctx, s, u, methods); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		host0, plugin0 := selfCPU(), processCPU(pid)
		b.ResetTimer()
		for i := range b.N {
			if err := signIn(ctx, s, pool[i%len(pool)], methods); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(selfCPU()-host0)/float64(b.N), "host-cpu-ns/op")
		if pid != 0 {
			b.ReportMetric(float64(processCPU(pid)-plugin0)/float64(b.N), "plugin-cpu-ns/op")
		}
	}

	pushOnly := []flows.Method{flows.MethodPush}
	local := startLocal(b, users)
	localPool := enrollBench(b, local, hc, users)
	b.Run("local", func(b *testing.B) { run(b, local, localPool, 0, nil) })

	c := launch(b, newEnv(b, "", users...))
	pool := enrollBench(b, c, hc, users)
	b.Run("plugin", func(b *testing.B) { run(b, c, pool, c.PID(), nil) })
	b.Run("local-push-only", func(b *testing.B) { run(b, local, localPool, 0, pushOnly) })
	b.Run("plugin-push-only", func(b *testing.B) { run(b, c, pool, c.PID(), pushOnly) })
	b.Run("health", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Health(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is the CPU time process pid has used, from /proc (Linux; 0
// elsewhere or for pid 0), in clock ticks of 10 ms.
func processCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	var ticks int64
	for _, v := range f[11:13] { // utime, stime
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
