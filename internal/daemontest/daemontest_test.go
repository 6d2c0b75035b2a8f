package daemontest_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystep/keystep/internal/daemontest"
)

// The test binary is also the program the tests run: with envHelper set,
// TestMain behaves as the mode it names instead of running tests.
const envHelper = "DAEMONTEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(envHelper); mode != "" {
		helper(mode)
		return
	}
	os.Exit(m.Run())
}

// helper is a small server program:
//
//   - line: says "server ready" on stderr after some noise, then waits for
//     SIGTERM, says "bye" and exits 0.
//   - notify: sends READY=1 to $NOTIFY_SOCKET, then as line.
//   - listen: says "server ready", then listens on $DAEMONTEST_ADDR; as line.
//   - exit: says "boom" and exits 3.
//   - never: says nothing and waits to be killed.
//   - stubborn: says "server ready" and ignores SIGTERM.
func helper(mode string) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Println("stdout line")
	switch mode {
	case "line":
		fmt.Fprintf(os.Stderr, "%s\nserver ", strings.Repeat("noise ", 20000))
		fmt.Fprintln(os.Stderr, "ready")
	case "notify":
		c, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_, _ = c.Write([]byte("STATUS=starting\nREADY=1\n"))
		_, _ = c.Write([]byte("STATUS=running\n"))
	case "listen":
		fmt.Fprintln(os.Stderr, "server ready")
		l, err := net.Listen("tcp", os.Getenv("DAEMONTEST_ADDR"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer l.Close()
	case "exit":
		fmt.Fprintln(os.Stderr, "boom")
		os.Exit(3)
	case "never":
		select {}
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		fmt.Fprintln(os.Stderr, "server ready")
		select {}
	}
	<-term
	fmt.Fprintln(os.Stderr, "bye")
}

// helperEnv is the environment of the helper in mode; under the race
// detector, it exits without the detector's second of delay.
func helperEnv(mode string) []string {
	return append(os.Environ(), envHelper+"="+mode, "GORACE=atexit_sleep_ms=0")
}

func spec(t *testing.T, mode string) daemontest.Spec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return daemontest.Spec{
		Name:      "helper",
		Path:      exe,
		Env:       helperEnv(mode),
		Log:       daemontest.NewLog(1 << 20),
		ReadyLine: "server ready",
		Timeout:   time.Minute,
	}
}

func TestReadyLine(t *testing.T) {
	var d daemontest.Daemon
	sp := spec(t, "line")
	if err := d.Start(sp); err != nil {
		t.Fatal(err)
	}
	if !d.Running() || d.PID() == 0 {
		t.Fatalf("Running %v, PID %d after Start", d.Running(), d.PID())
	}
	if err := d.Start(sp); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Start: %v", err)
	}
	d.Stop(syscall.SIGTERM, time.Minute)
	if d.Running() || d.PID() != 0 {
		t.Errorf("Running %v, PID %d after Stop", d.Running(), d.PID())
	}
	// Everything the program wrote is in the log once Stop returns.
	log := sp.Log.String()
	for _, want := range []string{"stdout line", "server ready", "bye"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	d.Stop(syscall.SIGTERM, time.Minute) // not running: nothing to do

	// Started again, with the same log.
	if err := d.Start(sp); err != nil {
		t.Fatal(err)
	}
	d.Stop(syscall.SIGKILL, time.Minute)
	if n := strings.Count(sp.Log.String(), "server ready"); n != 2 {
		t.Errorf("log has %d ready lines after two starts, want 2", n)
	}
}

func TestNotify(t *testing.T) {
	var d daemontest.Daemon
	sp := spec(t, "notify")
	sp.ReadyLine, sp.Notify = "", true
	if err := d.Start(sp); err != nil {
		t.Fatal(err)
	}
	d.Stop(syscall.SIGTERM, time.Minute)
	if log := sp.Log.String(); !strings.Contains(log, "stdout line") || !strings.Contains(log, "bye") {
		t.Errorf("log:\n%s", log)
	}
}

func TestListen(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	var d daemontest.Daemon
	sp := spec(t, "listen")
	sp.Env = append(sp.Env, "DAEMONTEST_ADDR="+addr)
	sp.Listen = []string{addr}
	if err := d.Start(sp); err != nil {
		t.Fatal(err)
	}
	defer d.Stop(syscall.SIGKILL, time.Minute)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("after Start: %v", err)
	}
	_ = c.Close()
}

func TestExitBeforeReady(t *testing.T) {
	var d daemontest.Daemon
	err := d.Start(spec(t, "exit"))
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready (exit status 3)") || !strings.Contains(err.Error(), "\nboom\n") {
		t.Errorf("Start: %v", err)
	}
	if d.Running() {
		t.Error("Running after a failed Start")
	}
}

func TestNotReady(t *testing.T) {
	var d daemontest.Daemon
	sp := spec(t, "never")
	sp.Timeout = 100 * time.Millisecond
	err := d.Start(sp)
	if err == nil || !strings.Contains(err.Error(), "helper not ready after 100ms") {
		t.Errorf("Start: %v", err)
	}
}

func TestStopKillsAfterTimeout(t *testing.T) {
	var d daemontest.Daemon
	if err := d.Start(spec(t, "stubborn")); err != nil {
		t.Fatal(err)
	}
	d.Stop(syscall.SIGTERM, 50*time.Millisecond) // returns only once the process is gone
	if d.Running() {
		t.Error("Running after Stop")
	}
}

func TestBadSpec(t *testing.T) {
	var d daemontest.Daemon
	sp := spec(t, "line")
	sp.Notify = true
	if err := d.Start(sp); err == nil {
		t.Error("Start with both ReadyLine and Notify: no error")
	}
	sp = spec(t, "line")
	sp.Log = nil
	if err := d.Start(sp); err == nil {
		t.Error("Start without a Log: no error")
	}
}

func TestRun(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = helperEnv("exit")
	if err := daemontest.Run(cmd, time.Minute); err == nil || err.Error() != "exit status 3" {
		t.Errorf("Run exit: %v", err)
	}
	cmd = exec.Command(exe)
	cmd.Env = helperEnv("never")
	if err := daemontest.Run(cmd, 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "killed after") {
		t.Errorf("Run never: %v", err)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/prog", []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := daemontest.LookPath("prog", "/nonexistent", dir); err != nil || p != dir+"/prog" {
		t.Errorf("LookPath = %q, %v", p, err)
	}
	if _, err := daemontest.LookPath("keystep-no-such-program", dir); err == nil {
		t.Error("LookPath of a missing program: no error")
	}
}

func TestLog(t *testing.T) {
	l := daemontest.NewLog(4)
	for _, s := range []string{"ab", "cdefgh", "ij"} {
		_, _ = l.Write([]byte(s))
		if got := l.String(); len(got) > 4 {
			t.Errorf("after %q: %q, longer than 4 bytes", s, got)
		}
	}
	if got := l.String(); got != "ghij" {
		t.Errorf("String = %q, want ghij", got)
	}
	var zero daemontest.Log
	_, _ = zero.Write([]byte("x"))
	if zero.String() != "x" {
		t.Errorf("zero Log: %q", zero.String())
	}
}
