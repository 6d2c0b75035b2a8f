// Package daemontest runs a server program for a test: it starts the
// process as a child of the test binary, waits until the program says it
// is ready (a line on its stderr, or an sd_notify READY=1), keeps the tail
// of its output, and signals, kills or starts it again.
//
// Nothing here sleeps to wait for a program: a wait ends on what the
// program says, on its exit, or on a timeout. The one poll is Spec.Listen,
// for programs that print their ready line just before they listen.
package daemontest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec says how to run a program and how it tells that it is ready. Set
// exactly one of ReadyLine and Notify.
type Spec struct {
	// Name names the program in error messages, e.g. "slapd".
	Name string
	// Path is the program to run and Args its arguments, without the
	// program name.
	Path string
	Args []string
	// Dir is the working directory; "" is the test binary's.
	Dir string
	// Env is the environment; nil is the test binary's. Start adds
	// NOTIFY_SOCKET to it when Notify is set.
	Env []string
	// Log gets the program's stdout and stderr. It is required: the
	// errors of Start end with its tail.
	Log *Log

	// ReadyLine is text the program writes on its stderr once it is
	// ready (a substring of one line).
	ReadyLine string
	// Notify makes Start wait for READY=1 over the systemd notification
	// protocol: the program gets NOTIFY_SOCKET, an abstract unix datagram
	// socket that Start listens on.
	Notify bool
	// Listen lists TCP addresses (host:port) that must accept connections
	// once the program said it is ready, for programs that say so just
	// before they call listen(). Start dials each until it answers, with a
	// short backoff between tries.
	Listen []string

	// Timeout bounds the wait for the program to be ready; 0 is a minute.
	Timeout time.Duration
	// DeathSignal is what the program gets should the test binary die
	// without stopping it; 0 is SIGKILL.
	DeathSignal syscall.Signal
	// Credential, if set, runs the program as another user.
	Credential *syscall.Credential
}

// Daemon is a server program, at most one process of which runs at a time:
// Start runs it, Stop ends it, and Start may run it again. The zero value
// is ready to use; a Daemon is safe for concurrent use.
type Daemon struct {
	mu   sync.Mutex
	proc *process // the running process, or nil
}

// process is one run of the program.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the program has exited and its output is read
}

// Start runs the program that spec describes and waits until it is ready.
// When the program exits first, or is not ready within spec.Timeout (it is
// then killed), Start returns an error that ends with the tail of
// spec.Log. Start fails when a process of d runs already.
func (d *Daemon) Start(spec Spec) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc != nil {
		return fmt.Errorf("%s is already running", spec.Name)
	}
	if spec.Log == nil || (spec.ReadyLine == "") == !spec.Notify {
		return fmt.Errorf("daemontest: %s: the Spec needs a Log and one of ReadyLine and Notify", spec.Name)
	}
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	deathSig := spec.DeathSignal
	if deathSig == 0 {
		deathSig = syscall.SIGKILL
	}

	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Env = spec.Env
	cmd.Stdout = spec.Log
	// Should the test binary die without its cleanups, the program gets
	// deathSig; its own process group keeps a terminal's ^C from it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: deathSig, Setpgid: true, Credential: spec.Credential}

	ready := make(chan struct{})
	var stderr io.ReadCloser
	var notify net.PacketConn
	if spec.Notify {
		name := "@keystep-daemontest-" + strconv.Itoa(os.Getpid()) + "-" + rand.Text()
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			return fmt.Errorf("%s: notification socket: %w", spec.Name, err)
		}
		notify = c
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(slices.Clip(cmd.Env), "NOTIFY_SOCKET="+name) // not into spec.Env's array

		cmd.Stderr = spec.Log
	} else {
		var err error
		if stderr, err = cmd.StderrPipe(); err != nil {
			return fmt.Errorf("%s: %w", spec.Name, err)
		}
	}

	// Pdeathsig follows the thread that started the child; keep it on one
	// the runtime will not retire while the child starts.
	runtime.LockOSThread()
	err := cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		if notify != nil {
			_ = notify.Close()
		}
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	if spec.Notify {
		go readNotify(notify, ready)
		go func() {
			_ = cmd.Wait()
			_ = notify.Close()
			close(p.done)
		}()
	} else {
		go func() {
			copyWatching(spec.Log, stderr, spec.ReadyLine, ready)
			_ = cmd.Wait() // after the last read: Wait closes the pipe
			close(p.done)
		}()
	}

	kill := func() {
		_ = cmd.Process.Kill()
		<-p.done
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-ready:
	case <-p.done:
		return fmt.Errorf("%s exited before it was ready (%v):\n%s", spec.Name, cmd.ProcessState, spec.Log.String())
	case <-timer.C:
		kill()
		return fmt.Errorf("%s not ready after %v:\n%s", spec.Name, timeout, spec.Log.String())
	}
	deadline := time.Now().Add(timeout)
	for _, addr := range spec.Listen {
		if err := WaitListening(addr, deadline, p.done); err != nil {
			kill()
			return fmt.Errorf("%s: %s: %v\n%s", spec.Name, addr, err, spec.Log.String())
		}
	}
	d.proc = p
	return nil
}

// copyWatching copies r into log until r ends, and closes ready once what
// it copied holds readyLine within one line.
func copyWatching(log *Log, r io.Reader, readyLine string, ready chan struct{}) {
	const maxLine = 64 << 10 // what is kept of a line too long to be read whole
	var line []byte
	signalled := false
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		chunk := buf[:n]
		_, _ = log.Write(chunk)
		if !signalled {
			line = append(line, chunk...)
			if bytes.Contains(line, []byte(readyLine)) {
				signalled = true
				close(ready)
				line = nil
			} else if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
				line = append(line[:0], line[i+1:]...) // keep only the unfinished line
			} else if len(line) > maxLine {
				line = append(line[:0], line[len(line)-len(readyLine):]...)
			}
		}
		if err != nil {
			return
		}
	}
}

// readNotify reads sd_notify messages from c until it is closed, and closes
// ready at the first READY=1. It goes on reading after that, so that the
// program never blocks on a full socket.
func readNotify(c net.PacketConn, ready chan struct{}) {
	signalled := false
	buf := make([]byte, 4096)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			if l == "READY=1" && !signalled {
				signalled = true
				close(ready)
			}
		}
	}
}

// WaitListening dials addr over TCP until it accepts a connection, the
// deadline passes or exited is closed, with a short backoff between tries.
func WaitListening(addr string, deadline time.Time, exited <-chan struct{}) error {
	backoff := 2 * time.Millisecond
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepting connections: %w", err)
		}
		timer := time.NewTimer(backoff)
		select {
		case <-exited:
			timer.Stop()
			return errors.New("the program exited")
		case <-timer.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// PID returns the process ID of the running program, or 0.
func (d *Daemon) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc == nil {
		return 0
	}
	return d.proc.cmd.Process.Pid
}

// Running reports whether the program runs: it has been started and has
// not been stopped, nor exited on its own.
func (d *Daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc == nil {
		return false
	}
	select {
	case <-d.proc.done:
		return false
	default:
		return true
	}
}

// Stop sends the program sig and waits for it to exit, killing it
// (SIGKILL) if that takes longer than timeout. It does nothing when the
// program is not running.
func (d *Daemon) Stop(sig syscall.Signal, timeout time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.proc
	if p == nil {
		return
	}
	d.proc = nil
	_ = p.cmd.Process.Signal(sig)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Run runs cmd to its end and returns its error; it kills cmd if it takes
// longer than timeout.
func Run(cmd *exec.Cmd, timeout time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("killed after %v", timeout)
	}
}

// LookPath finds the program name in PATH, then in dirs (such as /usr/sbin,
// which a user's PATH often lacks).
func LookPath(name string, dirs ...string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %s", name, strings.Join(dirs, ", "))
}

// Log keeps the last bytes written to it, for failure messages. It is safe
// for concurrent use; the zero Log keeps the last 64 KiB.
type Log struct {
	mu  sync.Mutex
	max int
	b   []byte
}

// NewLog returns a Log that keeps the last max bytes.
func NewLog(max int) *Log { return &Log{max: max} }

// Write appends p, dropping what comes before the last max bytes.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 2*l.limit() { // trim now and then, not on every write
		l.b = append(l.b[:0], l.b[len(l.b)-l.limit():]...)
	}
	return len(p), nil
}

// String returns the last max bytes written.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b[max(0, len(l.b)-l.limit()):])
}

func (l *Log) limit() int {
	if l.max <= 0 {
		return 64 << 10
	}
	return l.max
}
