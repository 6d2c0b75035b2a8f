package host

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/plugin/step"
)

// within fails t unless ch delivers within d (a bound on a failure, not
// synchronisation).
func within[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s did not return within %s", what, d)
		panic("unreachable")
	}
}

// An Await whose connection Close shuts returns ErrClosed at once, not
// DeadlineExceeded at its deadline.
func TestAwaitCutOffByClose(t *testing.T) {
	a, b := newFakePlugin(t, "a"), newFakePlugin(t, "b")
	c := fakeClient(t, a, b, false)
	a.hang.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Await(ctx, "tx", nil)
		done <- err
	}()
	within(t, a.hung, 5*time.Second, "Await's arrival")
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	err := within(t, done, 5*time.Second, "Await after Close")
	if !errors.Is(err, ErrClosed) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Await cut off by Close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Await took %s to return after Close", d)
	}
	if b.awaits.Load() != 0 || c.Restarts() != 0 {
		t.Fatalf("Close restarted the plugin: b saw %d Awaits, Restarts %d", b.awaits.Load(), c.Restarts())
	}
}

// A Begin in flight when Close shuts its connection says both that the
// client was closed and that the Begin may have taken effect.
func TestBeginCutOffByClose(t *testing.T) {
	a, b := newFakePlugin(t, "a"), newFakePlugin(t, "b")
	c := fakeClient(t, a, b, false)
	a.hang.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Begin(ctx, step.BeginRequest{Username: "u"})
		done <- err
	}()
	within(t, a.hung, 5*time.Second, "Begin's arrival")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	err := within(t, done, 5*time.Second, "Begin after Close")
	if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrPluginExited) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Begin cut off by Close: %v", err)
	}
}

// An Await on a hung plugin that is restarted under it resumes on the new
// plugin and returns its decision, instead of waiting out its deadline.
func TestAwaitResumesAfterRestartOfHungPlugin(t *testing.T) {
	a, b := newFakePlugin(t, "a"), newFakePlugin(t, "b")
	c := fakeClient(t, a, b, false)
	a.hang.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	type out struct {
		res step.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := c.Await(ctx, "tx", nil)
		done <- out{res, err}
	}()
	within(t, a.hung, 5*time.Second, "Await's arrival")
	if _, err := c.restartFrom(context.Background(), c.cur, "it hangs"); err != nil {
		t.Fatal(err)
	}
	o := within(t, done, 5*time.Second, "Await across the restart")
	if o.err != nil || o.res.ID != "tx" || o.res.Status != flows.StatusApproved || o.res.Reason != "b" {
		t.Fatalf("Await across the restart = %+v, %v", o.res, o.err)
	}
	if c.Restarts() != 1 || b.awaits.Load() != 1 {
		t.Fatalf("Restarts %d; b saw %d Awaits", c.Restarts(), b.awaits.Load())
	}
}

// A Begin in flight when a restart kills its plugin returns
// ErrPluginExited at once, not DeadlineExceeded at its deadline.
func TestBeginCutOffByRestart(t *testing.T) {
	a, b := newFakePlugin(t, "a"), newFakePlugin(t, "b")
	c := fakeClient(t, a, b, false)
	a.hang.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Begin(ctx, step.BeginRequest{Username: "u"})
		done <- err
	}()
	within(t, a.hung, 5*time.Second, "Begin's arrival")
	if _, err := c.restartFrom(context.Background(), c.cur, "it hangs"); err != nil {
		t.Fatal(err)
	}
	err := within(t, done, 5*time.Second, "Begin across the restart")
	if !errors.Is(err, ErrPluginExited) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrClosed) {
		t.Fatalf("Begin cut off by a restart: %v", err)
	}
	if b.begins.Load() != 0 {
		t.Fatal("the Begin was repeated")
	}
	tx, err := c.Begin(context.Background(), step.BeginRequest{Username: "u"})
	if err != nil || tx.ID != "b-1" {
		t.Fatalf("the next Begin = %+v, %v", tx, err)
	}
}

// heal on a closed client returns ErrClosed at once, without waiting for
// the process to exit or probing it.
func TestHealAfterClose(t *testing.T) {
	defer func(d time.Duration) { exitGrace = d }(exitGrace)
	exitGrace = time.Minute
	a, b, x := newFakePlugin(t, "a"), newFakePlugin(t, "b"), newFakePlugin(t, "x")
	c := fakeClient(t, a, b, false)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	inst, err := c.heal(ctx, x.instance(t, 1, true), status.Error(codes.Unavailable, "broken"))
	if inst != nil || !errors.Is(err, ErrClosed) {
		t.Fatalf("heal after Close = %v, %v", inst, err)
	}
	if x.checks.Load() != 0 {
		t.Fatal("heal after Close probed the plugin")
	}
}

// Close does not wait for a restart's start to finish: it ends it.
func TestCloseEndsRestartStart(t *testing.T) {
	a := newFakePlugin(t, "a")
	c := fakeClient(t, a, a, false)
	started := make(chan struct{}, 1)
	c.startFn = func(ctx context.Context, _ int) (*instance, error) {
		started <- struct{}{}
		<-ctx.Done() // a start that would take StartTimeout
		return nil, ctx.Err()
	}
	a.die()
	done := make(chan error, 1)
	go func() {
		_, err := c.Health(context.Background())
		done <- err
	}()
	within(t, started, 5*time.Second, "the restart's start")
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	if err := within(t, closed, 5*time.Second, "Close during a start"); err != nil {
		t.Fatal(err)
	}
	if err := within(t, done, 5*time.Second, "Health"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Health across Close: %v", err)
	}
}

// Close does not wait out the pause between a restart's starts.
func TestCloseEndsRestartBackoff(t *testing.T) {
	defer func(d time.Duration) { firstBackoff = d }(firstBackoff)
	firstBackoff = time.Hour
	a := newFakePlugin(t, "a")
	c := fakeClient(t, a, a, false)
	failed := make(chan struct{}, 1)
	c.startFn = func(context.Context, int) (*instance, error) {
		failed <- struct{}{}
		return nil, errors.New("no start")
	}
	a.die()
	done := make(chan error, 1)
	go func() {
		_, err := c.Health(context.Background())
		done <- err
	}()
	within(t, failed, 5*time.Second, "the restart's first start")
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	if err := within(t, closed, 5*time.Second, "Close during a backoff"); err != nil {
		t.Fatal(err)
	}
	if err := within(t, done, 5*time.Second, "Health"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Health across Close: %v", err)
	}
	if len(failed) != 0 {
		t.Fatal("a second start ran after Close")
	}
}

// ctxError takes only ctx's end, or a DeadlineExceeded just before ctx's
// deadline, for ctx's error; a Canceled (a connection closed under the
// call) or an early DeadlineExceeded is the caller's to judge, at once.
func TestCtxError(t *testing.T) {
	far, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, code := range []codes.Code{codes.Canceled, codes.DeadlineExceeded, codes.Unavailable} {
		start := time.Now()
		if err := ctxError(far, status.Error(code, "x")); err != nil {
			t.Fatalf("%v with the deadline 3 s away: %v", code, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("%v with the deadline 3 s away took %s", code, d)
		}
	}
	near, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if err := ctxError(near, status.Error(codes.DeadlineExceeded, "x")); err != context.DeadlineExceeded {
		t.Fatalf("DeadlineExceeded just before the deadline: %v", err)
	}
	ended, cancel3 := context.WithCancel(context.Background())
	cancel3()
	if err := ctxError(ended, status.Error(codes.Canceled, "x")); err != context.Canceled {
		t.Fatalf("Canceled with ctx cancelled: %v", err)
	}
}

// A checksum of the wrong length fails Launch with a clear error.
func TestLaunchChecksumLength(t *testing.T) {
	_, err := Launch(context.Background(), Options{Path: "/nonexistent/keystep", Checksum: []byte{1, 2, 3}})
	if err == nil || !strings.Contains(err.Error(), "Options.Checksum has 3 bytes") {
		t.Fatalf("Launch with a 3-byte checksum: %v", err)
	}
}
