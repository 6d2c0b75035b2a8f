package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/plugin/pluginapi"
	pb "github.com/keystep/keystep/plugin/proto/keystep/v1"
	"github.com/keystep/keystep/plugin/step"
)

// fakePlugin is a gRPC server of the v1 Step and Health services on a
// unix socket, standing in for a plugin process: "dying" stops the
// server, closing its connections, as a killed process's would be.
type fakePlugin struct {
	name   string
	srv    *grpc.Server
	path   string
	begins atomic.Int32
	checks atomic.Int32
	dead   atomic.Bool
	// dieIn makes the next Begin or Check (after it has arrived) stop the
	// server instead of answering.
	dieIn atomic.Bool
	// hang makes Begin and Await block until their call ends (a plugin
	// that stopped answering); each hung call is announced on hung.
	hang   atomic.Bool
	hung   chan string
	awaits atomic.Int32
	once   sync.Once

	pb.UnimplementedStepServer
	pb.UnimplementedHealthServer
}

func newFakePlugin(t *testing.T, name string) *fakePlugin {
	t.Helper()
	f := &fakePlugin{name: name, srv: grpc.NewServer(), path: filepath.Join(t.TempDir(), "plugin.sock"), hung: make(chan string, 16)}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	pb.RegisterStepServer(f.srv, f)
	pb.RegisterHealthServer(f.srv, f)
	go func() { _ = f.srv.Serve(ln) }()
	t.Cleanup(f.die)
	return f
}

// die stops the server at once: its connections close, and new ones are
// refused.
func (f *fakePlugin) die() {
	f.once.Do(func() {
		f.dead.Store(true)
		f.srv.Stop()
	})
}

// arrived dies if asked to, and reports whether it did.
func (f *fakePlugin) arrived(ctx context.Context) bool {
	if !f.dieIn.Load() {
		return false
	}
	go f.die()
	<-ctx.Done() // the connection is closed under the call
	return true
}

// hangs blocks until the call ends if the fake is hung, and reports
// whether it did.
func (f *fakePlugin) hangs(ctx context.Context, method string) bool {
	if !f.hang.Load() {
		return false
	}
	f.hung <- method
	<-ctx.Done()
	return true
}

func (f *fakePlugin) Begin(ctx context.Context, r *pb.BeginRequest) (*pb.Transaction, error) {
	n := f.begins.Add(1)
	if f.arrived(ctx) {
		return nil, status.Error(codes.Unavailable, "dying")
	}
	if f.hangs(ctx, "Begin") {
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return &pb.Transaction{Id: fmt.Sprintf("%s-%d", f.name, n)}, nil
}

// Await answers that the sign-in was approved by f, unless hung.
func (f *fakePlugin) Await(r *pb.AwaitRequest, s grpc.ServerStreamingServer[pb.Result]) error {
	f.awaits.Add(1)
	if f.hangs(s.Context(), "Await") {
		return status.FromContextError(s.Context().Err()).Err()
	}
	return s.Send(&pb.Result{Id: r.GetId(), Status: string(flows.StatusApproved), Reason: f.name})
}

func (f *fakePlugin) Check(ctx context.Context, _ *pb.HealthRequest) (*pb.HealthStatus, error) {
	f.checks.Add(1)
	if f.arrived(ctx) {
		return nil, status.Error(codes.Unavailable, "dying")
	}
	return &pb.HealthStatus{Serving: true, Version: f.name}, nil
}

// instance connects to the fake as the SDK connects to a plugin (with
// the sentTracker); hasExited is the fake's death, seen at once unless
// unnoticed is set.
func (f *fakePlugin) instance(t *testing.T, gen int, unnoticed bool) *instance {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+f.path, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(sentTracker{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &instance{
		api: &pluginapi.Clients{Step: pb.NewStepClient(conn), Health: pb.NewHealthClient(conn), Conn: conn},
		gen: gen, pid: gen,
		hasExited: func() bool { return !unnoticed && f.dead.Load() },
		stop:      func() { conn.Close(); f.die() },
	}
}

// fakeClient is a Client on first, whose restart connects to next.
func fakeClient(t *testing.T, first, next *fakePlugin, unnoticed bool) *Client {
	c := newClient(Options{Path: "fake", Logger: slog.New(slog.DiscardHandler)})
	c.cur = first.instance(t, 1, unnoticed)
	c.startFn = func(_ context.Context, gen int) (*instance, error) { return next.instance(t, gen, false), nil }
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// A call that changes state and reached the plugin before it died is not
// repeated: the host gets ErrPluginExited, and the next call goes to the
// restarted plugin.
func TestSentCallNotRepeated(t *testing.T) {
	a, b := newFakePlugin(t, "a"), newFakePlugin(t, "b")
	c := fakeClient(t, a, b, false)
	a.dieIn.Store(true)
	_, err := c.Begin(context.Background(), step.BeginRequest{Username: "u"})
	if !errors.Is(err, ErrPluginExited) || status.Code(err) != codes.Unavailable {
		t.Fatalf("Begin on a plugin that died during it: %v", err)
	}
	if a.begins.Load() != 1 || b.begins.Load() != 0 {
		t.Fatalf("Begin reached a %d times, b %d times", a.begins.Load(), b.begins.Load())
	}
	tx, err := c.Begin(context.Background(), step.BeginRequest{Username: "u"})
	if err != nil || tx.ID != "b-1" {
		t.Fatalf("the next Begin = %+v, %v", tx, err)
	}
	if c.Restarts() != 1 || c.PID() != 2 {
		t.Fatalf("Restarts %d, PID %d", c.Restarts(), c.PID())
	}
}

// A call whose connection was refused never left the host: it is
// repeated on the restarted plugin, even if it changes state, and even
// before go-plugin has seen the process exit.
func TestRefusedCallRepeated(t *testing.T) {
	defer func(d time.Duration) { exitGrace = d }(exitGrace)
	exitGrace = 20 * time.Millisecond // the death stays unnoticed: the Health probe decides
	a, b := newFakePlugin(t, "a"), newFakePlugin(t, "b")
	c := fakeClient(t, a, b, true)
	a.die()
	tx, err := c.Begin(context.Background(), step.BeginRequest{Username: "u"})
	if err != nil || tx.ID != "b-1" {
		t.Fatalf("Begin after a refused connection = %+v, %v", tx, err)
	}
	if a.begins.Load() != 0 || c.Restarts() != 1 {
		t.Fatalf("a saw %d Begins; Restarts %d", a.begins.Load(), c.Restarts())
	}
}

// An idempotent call is repeated after a restart even if it had reached
// the plugin that died.
func TestIdempotentCallRepeated(t *testing.T) {
	a, b := newFakePlugin(t, "a"), newFakePlugin(t, "b")
	c := fakeClient(t, a, b, false)
	a.dieIn.Store(true)
	h, err := c.Health(context.Background())
	if err != nil || h.Version != "b" {
		t.Fatalf("Health across a death = %+v, %v", h, err)
	}
	if a.checks.Load() != 1 || b.checks.Load() != 1 || c.Restarts() != 1 {
		t.Fatalf("checks a %d b %d; Restarts %d", a.checks.Load(), b.checks.Load(), c.Restarts())
	}
}

// keystep's own Unavailable (a code that could not be delivered) is an
// answer, not a dead plugin.
func TestDeliveryFailedIsNotBroken(t *testing.T) {
	st, err := status.New(codes.Unavailable, "no SMS").WithDetails(&pb.ErrorInfo{Code: "delivery_failed"})
	if err != nil {
		t.Fatal(err)
	}
	inst := &instance{}
	if broken(inst, st.Err()) {
		t.Fatal("delivery_failed taken for a dead plugin")
	}
	if !broken(inst, status.Error(codes.Unavailable, "connection refused")) {
		t.Fatal("a transport Unavailable not taken for a dead plugin")
	}
	if broken(inst, status.Error(codes.Canceled, "stream terminated by RST_STREAM")) {
		t.Fatal("a Canceled call on a live instance taken for a dead plugin")
	}
	inst.killed.Store(true)
	if !broken(inst, status.Error(codes.Canceled, "the client connection is closing")) {
		t.Fatal("a call cut off by a restart not taken for a dead plugin")
	}
}
