package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/keystep/keystep/plugin/pluginapi"
	pb "github.com/keystep/keystep/plugin/proto/keystep/v1"
	"github.com/keystep/keystep/plugin/step"
)

// Options says which keystep binary to launch and how.
type Options struct {
	// Path is the keystep binary (required).
	Path string
	// Checksum is the binary's SHA-256 (sha256.Size bytes; Launch
	// fails on any other length). When set, the binary is hashed and
	// compared with it before every start (go-plugin's SecureConfig),
	// restarts included; a mismatch fails with ErrChecksumMismatch and the
	// binary is not run. go-plugin hashes the file and then executes the
	// path: whoever can replace the file in between runs their own
	// binary. The check does not protect against that window, so the
	// binary and its directory must be writable only by root or the
	// host's own user.
	Checksum []byte
	// Config is keystep's YAML configuration, as text; the plugin reads
	// it from a pipe (its file descriptor 3), never from the environment.
	// Pending sign-ins survive a restart
	// only if the store it names outlives the process (a data_dir or a
	// database); phones keep reaching a restarted plugin only if its
	// device API address (listen, public_url) is fixed.
	Config []byte
	// Logger receives the plugin's log lines (JSON on its stderr), each
	// with its own level, time and attributes plus plugin=keystep, and
	// the SDK's own messages (starts, exits, restarts). Nil:
	// slog.Default().
	Logger *slog.Logger
	// Env is added to the plugin's environment, which is otherwise the
	// host's own. The plugin's configuration is Config alone: in plugin
	// mode keystep ignores KEYSTEP_*
	// configuration overrides, the host's and Env's alike.
	Env []string
	// Versions are the contract versions the host speaks, in any order
	// (default: pluginapi.ProtocolV1). The plugin picks the newest it
	// also serves; if there is none, Launch fails with
	// ErrIncompatibleVersion.
	Versions []int
	// StartTimeout bounds each start of the plugin, from running the
	// binary to its first answer to Health (default 1 minute).
	StartTimeout time.Duration
}

// Errors of Launch and of the calls.
var (
	// ErrChecksumMismatch: the binary at Options.Path does not have the
	// SHA-256 in Options.Checksum; it was not run.
	ErrChecksumMismatch = errors.New("keystep plugin: the binary's SHA-256 does not match Options.Checksum")
	// ErrIncompatibleVersion: the plugin and the host have no contract
	// version in common.
	ErrIncompatibleVersion = errors.New("keystep plugin: no protocol version in common")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("keystep plugin: client closed")
	// ErrPluginExited: the plugin process died during a call that changes
	// state (Begin, SendCode, SubmitCode, Cancel, the account changes)
	// after the request had been sent, so the call may or may not have
	// taken effect; it was not repeated. The plugin is restarted for the
	// next call.
	ErrPluginExited = errors.New("keystep plugin: the plugin exited during the call; it may have taken effect")
)

// Restart policy.
const (
	startAttempts = 3               // starts tried per restart
	probeTimeout  = 2 * time.Second // a Health probe of a plugin whose connection broke
	retries       = 3               // repeats of one call after restarts
)

// firstBackoff is the wait before a restart's second start; it doubles
// (a variable for tests).
var firstBackoff = 100 * time.Millisecond

// exitGrace is how long a broken connection waits for go-plugin to see
// the process exit before probing it (a variable for tests).
var exitGrace = 2 * time.Second

// Client is a launched keystep plugin: step.Step and step.Accounts over
// the v1 contract, restarting the plugin when it dies. Its methods are
// safe for concurrent use.
type Client struct {
	o       Options
	log     *slog.Logger
	startFn func(ctx context.Context, gen int) (*instance, error) // start, or a fake's in tests
	// closing ends when Close begins: it stops a restart's starts and
	// the pauses between them.
	closing     context.Context
	stopClosing context.CancelFunc

	mu       sync.Mutex
	cur      *instance // the running plugin (or the dead one until restarted)
	restart  *restart  // the restart in progress, if any
	restarts int
	closed   bool
}

var (
	_ step.Step     = (*Client)(nil)
	_ step.Accounts = (*Client)(nil)
)

// instance is one process of the plugin.
type instance struct {
	api *pluginapi.Clients
	pid int
	gen int // 1 for the first launch, then +1 for each restart
	// hasExited reports whether go-plugin saw the process exit; stop
	// stops it (gracefully, then by force) and closes the connection.
	hasExited func() bool
	stop      func()
	// killed is set before the SDK stops the instance, so that calls cut
	// off by it (Canceled, with their ctx live) know why.
	killed atomic.Bool
}

func (i *instance) exited() bool { return i.hasExited() }

// kill stops the instance's process and closes its connection.
func (i *instance) kill() {
	i.killed.Store(true)
	i.stop()
}

// restart is a restart in progress that callers wait on.
type restart struct {
	done chan struct{}
	inst *instance
	err  error
}

// Launch starts the keystep binary as a go-plugin plugin (gRPC, AutoMTLS),
// negotiates the contract version and checks that it answers Health. The
// Client must be closed. ctx bounds the launch only; the plugin runs until
// Close.
func Launch(ctx context.Context, o Options) (*Client, error) {
	if o.Path == "" {
		return nil, errors.New("keystep plugin: Options.Path is required")
	}
	if len(o.Checksum) > 0 && len(o.Checksum) != sha256.Size {
		return nil, fmt.Errorf("keystep plugin: Options.Checksum has %d bytes; a SHA-256 has %d", len(o.Checksum), sha256.Size)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if len(o.Versions) == 0 {
		o.Versions = []int{pluginapi.ProtocolV1}
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = time.Minute
	}
	o.Versions = slices.Clone(o.Versions)
	o.Env = slices.Clone(o.Env)
	o.Checksum = slices.Clone(o.Checksum)
	o.Config = slices.Clone(o.Config)
	c := newClient(o)
	c.startFn = c.start
	inst, err := c.startCtx(ctx, 1)
	if err != nil {
		c.stopClosing()
		return nil, err
	}
	c.cur = inst
	return c, nil
}

// newClient is a Client of o without an instance or a start function.
func newClient(o Options) *Client {
	c := &Client{o: o, log: o.Logger.With("plugin", "keystep")}
	c.closing, c.stopClosing = context.WithCancel(context.Background())
	return c
}

// startCtx starts an instance, giving up (and killing it once started)
// when ctx ends first.
func (c *Client) startCtx(ctx context.Context, gen int) (*instance, error) {
	type result struct {
		inst *instance
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		inst, err := c.startFn(ctx, gen)
		ch <- result{inst, err}
	}()
	select {
	case r := <-ch:
		return r.inst, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.inst != nil {
				r.inst.kill()
			}
		}()
		return nil, ctx.Err()
	}
}

// start runs the binary once and connects to it. When ctx ends first,
// the process is killed and start returns ctx's error.
func (c *Client) start(ctx context.Context, gen int) (*instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The process lives on its own context, which ctx cancels only while
	// the start runs (go-plugin's start cannot be interrupted otherwise).
	pctx, pcancel := context.WithCancel(context.Background())
	unwatch := context.AfterFunc(ctx, pcancel)
	cmd := exec.CommandContext(pctx, c.o.Path)
	cmd.Env = append(os.Environ(), c.o.Env...)
	// The configuration may hold secrets: it goes through a pipe (the
	// plugin's file descriptor 3), not the environment, which other
	// processes of the same user can read and which children inherit.
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		unwatch()
		pcancel()
		return nil, fmt.Errorf("keystep plugin: configuration pipe: %w", err)
	}
	cmd.ExtraFiles = []*os.File{cfgR}
	cmd.Env = append(cmd.Env, pluginapi.ConfigFDEnv+"=3", pluginapi.ConfigEnv+"=")
	go func() {
		// A write to a plugin that never reads ends when the parent's copy
		// of the reading end is closed below and the child's is gone.
		_, _ = cfgW.Write(c.o.Config)
		cfgW.Close()
	}()
	cfg := &goplugin.ClientConfig{
		HandshakeConfig:  pluginapi.Handshake,
		VersionedPlugins: versionedPlugins(c.o.Versions),
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env has it already, before ours so that ours win
		AutoMTLS:         true,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		StartTimeout:     c.o.StartTimeout,
		Logger:           newHCLogger(c.log.Handler(), baseName(c.o.Path)),
		Stderr:           newLogWriter(c.log.Handler(), slog.LevelWarn, nil),
		SyncStderr:       newLogWriter(c.log.Handler(), slog.LevelWarn, nil),
		SyncStdout:       newLogWriter(c.log.Handler(), slog.LevelInfo, []slog.Attr{slog.String("stream", "stdout")}),
		GRPCDialOptions:  []grpc.DialOption{grpc.WithStatsHandler(sentTracker{})},
	}
	if len(c.o.Checksum) > 0 {
		cfg.SecureConfig = &goplugin.SecureConfig{Checksum: c.o.Checksum, Hash: sha256.New()}
	}
	pc := goplugin.NewClient(cfg)
	defer cfgR.Close() // the child has its own copy once started
	fail := func(err error) (*instance, error) {
		unwatch()
		pc.Kill()
		pcancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.launchError(err)
	}
	rpc, err := pc.Client()
	if err != nil {
		return fail(err)
	}
	raw, err := rpc.Dispense(pluginapi.PluginName)
	if err != nil {
		return fail(err)
	}
	api, ok := raw.(*pluginapi.Clients)
	if !ok {
		return fail(fmt.Errorf("dispensed %T, not *pluginapi.Clients", raw))
	}
	inst := &instance{api: api, gen: gen, hasExited: pc.Exited, stop: func() { pc.Kill(); pcancel() }}
	if rc := pc.ReattachConfig(); rc != nil {
		inst.pid = rc.Pid
	}
	hctx, cancel := context.WithTimeout(ctx, c.o.StartTimeout)
	defer cancel()
	if _, err := api.Health.Check(hctx, &pb.HealthRequest{}, grpc.WaitForReady(true)); err != nil {
		return fail(fmt.Errorf("first health check: %w", err))
	}
	if !unwatch() { // ctx ended: the process is being killed
		return fail(ctx.Err())
	}
	c.log.Info("keystep plugin started", "pid", inst.pid, "protocol", pc.NegotiatedVersion(), "start", gen)
	return inst, nil
}

// launchError makes go-plugin's errors of a start clear.
func (c *Client) launchError(err error) error {
	switch {
	case errors.Is(err, goplugin.ErrChecksumsDoNotMatch):
		return fmt.Errorf("%w (%s)", ErrChecksumMismatch, c.o.Path)
	case strings.Contains(err.Error(), "incompatible API version"):
		return fmt.Errorf("%w: the host speaks %v: %w", ErrIncompatibleVersion, c.o.Versions, err)
	}
	var ue *unknownVersionError
	if errors.As(err, &ue) {
		return fmt.Errorf("%w: %w", ErrIncompatibleVersion, err)
	}
	return fmt.Errorf("keystep plugin %s: %w", c.o.Path, err)
}

// versionedPlugins are pluginapi's plugin sets for the versions asked
// for. A version this SDK has no client for is still offered (so the
// plugin's answer, and the error, are the real negotiation's) but fails
// at Dispense if the plugin picks it.
func versionedPlugins(versions []int) map[int]goplugin.PluginSet {
	known := pluginapi.Versions(nil)
	out := make(map[int]goplugin.PluginSet, len(versions))
	for _, v := range versions {
		if set, ok := known[v]; ok {
			out[v] = set
		} else {
			out[v] = goplugin.PluginSet{pluginapi.PluginName: &unknownVersion{version: v}}
		}
	}
	return out
}

// unknownVersion stands for a contract version this SDK cannot speak.
type unknownVersion struct {
	goplugin.NetRPCUnsupportedPlugin
	version int
}

// unknownVersionError: the plugin picked a version the SDK cannot speak.
type unknownVersionError struct{ version int }

// Error says which version the SDK cannot speak.
func (e *unknownVersionError) Error() string {
	return fmt.Sprintf("the plugin picked protocol version %d, which this SDK cannot speak", e.version)
}

// GRPCServer fails: the SDK serves nothing.
func (p *unknownVersion) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error {
	return &unknownVersionError{p.version}
}

// GRPCClient fails with *unknownVersionError.
func (p *unknownVersion) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, &unknownVersionError{p.version}
}

// PID is the plugin process's id (0 if unknown); it changes on restart.
func (c *Client) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return 0
	}
	return c.cur.pid
}

// Restarts is how many times the plugin was restarted.
func (c *Client) Restarts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restarts
}

// Close stops the plugin (gracefully, then by force after two seconds)
// and waits for it to exit; a restart in progress is abandoned (the
// process it was starting is killed). Calls in flight fail, with
// ErrClosed where they would otherwise restart the plugin; later calls
// return ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	inst, r := c.cur, c.restart
	c.mu.Unlock()
	c.stopClosing() // ends the restart's start and its pauses
	if r != nil {
		<-r.done // the restart kills what it started, seeing closed
	}
	if inst != nil {
		inst.kill()
	}
	return nil
}

// isClosed reports whether Close was called.
func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// instance returns the running plugin, restarting it first if it has
// exited (or waiting for a restart in progress).
func (c *Client) instance(ctx context.Context) (*instance, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	inst := c.cur
	if c.restart == nil && !inst.exited() {
		c.mu.Unlock()
		return inst, nil
	}
	c.mu.Unlock()
	return c.restartFrom(ctx, inst, "the plugin process has exited")
}

// restartFrom restarts the plugin if old is still the current one (else
// someone restarted it already) and waits for it, or for ctx. Restarts
// are single-flight: one runs at a time, and callers share its result.
func (c *Client) restartFrom(ctx context.Context, old *instance, why string) (*instance, error) {
	r := c.beginRestart(old, why)
	if r == nil {
		return nil, ErrClosed
	}
	select {
	case <-r.done:
		return r.inst, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// beginRestart returns the restart in progress, or the current instance
// as a finished restart if it is not old, or starts one. Nil: closed.
func (c *Client) beginRestart(old *instance, why string) *restart {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	if c.restart != nil {
		return c.restart
	}
	if c.cur != old {
		r := &restart{done: make(chan struct{}), inst: c.cur}
		close(r.done)
		return r
	}
	r := &restart{done: make(chan struct{})}
	c.restart = r
	go c.runRestart(r, old, why)
	return r
}

func (c *Client) runRestart(r *restart, old *instance, why string) {
	defer close(r.done)
	c.log.Warn("restarting the keystep plugin", "reason", why, "old_pid", old.pid)
	old.kill() // a dead one's connection and socket directory; a stuck one's process
	backoff := firstBackoff
	var inst *instance
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if attempt > 1 {
			c.log.Warn("keystep plugin restart failed; trying again", "attempt", attempt-1, "error", err, "backoff", backoff)
			if !c.pause(backoff) {
				break
			}
			backoff *= 2
		}
		if c.isClosed() {
			break
		}
		if inst, err = c.startFn(c.closing, old.gen+1); err == nil || errors.Is(err, ErrChecksumMismatch) || errors.Is(err, ErrIncompatibleVersion) {
			break
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.restart = nil
	if c.closed {
		if err == nil {
			inst.kill()
		}
		inst, err = nil, ErrClosed
	}
	if err != nil {
		c.log.Error("keystep plugin restart failed", "error", err)
		r.err = fmt.Errorf("keystep plugin: restart: %w", err)
		return
	}
	c.cur = inst
	c.restarts++
	r.inst = inst
	c.log.Warn("keystep plugin restarted", "pid", inst.pid, "old_pid", old.pid, "restarts", c.restarts)
}

// pause waits d between two starts of a restart (not synchronisation),
// or until Close; it reports whether it waited the whole time.
func (c *Client) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.closing.Done():
		return false
	}
}

// deadlineSkew is how far ahead of ctx's deadline a DeadlineExceeded from
// the plugin is still taken for ctx's: the plugin's clock runs its own
// timer for the deadline gRPC passes on, and may fire a moment early.
const deadlineSkew = time.Second

// ctxError returns ctx's error if err came of ctx ending: either ctx has
// ended, or the plugin gave up at ctx's deadline (DeadlineExceeded, which
// gRPC passes on) a moment before ctx itself ends, which it then waits
// for. Anything else, Canceled included (what a call gets when Close or a
// restart closes the connection under it), is left to the caller: nil.
func ctxError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if status.Code(err) != codes.DeadlineExceeded {
		return nil
	}
	deadline, ok := ctx.Deadline()
	if !ok || time.Until(deadline) > deadlineSkew {
		return nil
	}
	t := time.NewTimer(time.Until(deadline) + 100*time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// broken reports whether a call's failure on inst says that the plugin is
// gone rather than that it answered with an error: a transport status
// (Unavailable without keystep's ErrorInfo) or a connection that the SDK
// closed under the call.
func broken(inst *instance, err error) bool {
	if err == nil {
		return false
	}
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.Unavailable:
		for _, d := range st.Details() {
			if _, ok := d.(*pb.ErrorInfo); ok {
				return false // keystep's own (a code that could not be delivered)
			}
		}
		return true
	case codes.Canceled:
		return inst.killed.Load() // the connection was closed under the call (a restart)
	}
	return false
}

// heal is called after a call on inst failed with a broken
// connection: it decides whether the plugin is gone (its process exited,
// or it no longer answers Health) and if so restarts it. It returns the
// instance to use next, or an error if there is none (ErrClosed at once
// after Close). An instance the SDK killed (a restart) is gone without
// asking.
func (c *Client) heal(ctx context.Context, inst *instance, cause error) (*instance, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	if !inst.killed.Load() && !c.waitExit(ctx, inst) {
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		_, err := inst.api.Health.Check(pctx, &pb.HealthRequest{})
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil {
			return inst, nil // it answers: the failure was the call's own
		}
		cause = err
	}
	return c.restartFrom(ctx, inst, cause.Error())
}

// waitExit waits a little for go-plugin to see inst's process exit (it
// reaps it after its pipes close), polling because go-plugin has no exit
// notification. It reports whether it exited.
func (c *Client) waitExit(ctx context.Context, inst *instance) bool {
	deadline := time.Now().Add(exitGrace)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !inst.exited() {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// sentKey marks a call's context with the flag that sentTracker sets once
// the request has been handed to a live connection.
type sentKey struct{}

// sentTracker is a gRPC stats handler that records, per call, whether its
// request headers went out on a connection (stats.OutHeader): a call that
// failed before that never reached the plugin.
type sentTracker struct{}

// TagRPC implements stats.Handler.
func (sentTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// HandleRPC sets the call's flag on stats.OutHeader.
func (sentTracker) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.OutHeader); ok {
		if f, ok := ctx.Value(sentKey{}).(*atomic.Bool); ok {
			f.Store(true)
		}
	}
}

// TagConn implements stats.Handler.
func (sentTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn implements stats.Handler.
func (sentTracker) HandleConn(context.Context, stats.ConnStats) {}

// call runs one unary call against the current plugin. After a broken
// connection it restarts the plugin and repeats the call if idempotent,
// or if the request never left the host (the connection was refused);
// otherwise it returns an error wrapping ErrPluginExited. Errors the
// plugin answered go through wire.FromStatus by the caller.
func call[T any](ctx context.Context, c *Client, idempotent bool, fn func(context.Context, *pluginapi.Clients) (T, error)) (T, error) {
	var zero T
	inst, err := c.instance(ctx)
	if err != nil {
		return zero, err
	}
	for attempt := 0; ; attempt++ {
		sent := new(atomic.Bool)
		out, err := fn(context.WithValue(ctx, sentKey{}, sent), inst.api)
		if err == nil {
			return out, nil
		}
		if cerr := ctxError(ctx, err); cerr != nil {
			return zero, cerr
		}
		if !broken(inst, err) {
			return zero, err
		}
		if !idempotent && sent.Load() {
			if c.isClosed() {
				return zero, fmt.Errorf("%w; %w: %w", ErrClosed, ErrPluginExited, err)
			}
			// Restart for the next call, without waiting for it here.
			go func() { _, _ = c.heal(context.Background(), inst, err) }()
			return zero, fmt.Errorf("%w: %w", ErrPluginExited, err)
		}
		if attempt >= retries {
			return zero, fmt.Errorf("keystep plugin: unavailable after %d restarts: %w", attempt, err)
		}
		next, rerr := c.heal(ctx, inst, err)
		if rerr != nil {
			return zero, fmt.Errorf("%w (after: %w)", rerr, err)
		}
		inst = next
	}
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}
