// Package integration holds keystep's end-to-end tests: they build the
// real keystep binary and drive it as an admin and a user would.
package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/internal/pgtest"
)

// keystepBin is the binary built once for the whole package.
var keystepBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keystep-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	keystepBin = filepath.Join(dir, "keystep")
	build := exec.Command("go", "build", "-o", keystepBin, "../plugin/cmd/keystep")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build keystep: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if err := pgtest.Shutdown(); err != nil { // the PostgreSQL the tests shared, and its files
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// cleanEnv is the environment without any KEYSTEP_ setting of the caller's.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYSTEP_") {
			env = append(env, kv)
		}
	}
	return env
}

// server is a running `keystep serve`.
type server struct {
	URL  string
	Data string
}

var listening = regexp.MustCompile(`keystep listening on (http://\S+)`)

// startServer runs `keystep serve` on a free port and waits for the line
// that says where it listens.
func startServer(t *testing.T, extra ...string) server {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(keystepBin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", data}, extra...)...)
	cmd.Env = cleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	found := make(chan string, 1)
	var log bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
			if !sent {
				log.WriteString(sc.Text() + "\n")
			}
		}
		if !sent {
			close(found)
		}
	}()
	url, ok := <-found
	if !ok {
		t.Fatalf("keystep serve exited before listening:\n%s", log.String())
	}
	return server{URL: url, Data: data}
}

// result is what one keystep command did.
type result struct {
	Stdout, Stderr string
	Code           int
}

// keystep runs one command of the binary to its end.
func keystep(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(keystepBin, args...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{Stdout: out.String(), Stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	default:
		t.Fatalf("keystep %v: %v", args, err)
	}
	return r
}

// ok runs a command that must succeed and decodes its JSON output into v.
func ok(t *testing.T, v any, args ...string) {
	t.Helper()
	r := keystep(t, args...)
	if r.Code != 0 {
		t.Fatalf("keystep %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(r.Stdout), v); err != nil {
			t.Fatalf("keystep %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, r.Stdout)
		}
	}
}

// refused runs a command that must fail and returns its error output.
func refused(t *testing.T, args ...string) string {
	t.Helper()
	r := keystep(t, args...)
	if r.Code == 0 {
		t.Fatalf("keystep %s succeeded, want a refusal\n%s", strings.Join(args, " "), r.Stdout)
	}
	return r.Stderr
}

// streaming is a running command that prints one JSON object per line.
type streaming struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	errb  *bytes.Buffer
	stdin io.WriteCloser // the command's standard input
}

func startStreaming(t *testing.T, args ...string) *streaming {
	t.Helper()
	cmd := exec.Command(keystepBin, args...)
	cmd.Env = cleanEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &streaming{t: t, cmd: cmd, lines: make(chan string, 16), errb: &bytes.Buffer{}, stdin: stdin}
	cmd.Stderr = s.errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout)
		close(s.lines)
	}()
	return s
}

// next decodes the next line into v.
func (s *streaming) next(v any) {
	s.t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			s.t.Fatalf("%v ended early; stderr:\n%s", s.cmd.Args, s.errb.String())
		}
		if err := json.Unmarshal([]byte(l), v); err != nil {
			s.t.Fatalf("%v printed a non-JSON line %q: %v", s.cmd.Args, l, err)
		}
	case <-time.After(time.Minute): // a hang guard only, never a synchronisation
		s.t.Fatalf("%v printed nothing for a minute; stderr:\n%s", s.cmd.Args, s.errb.String())
	}
}

// wait waits for the command to end and returns its exit code.
func (s *streaming) wait() int {
	s.t.Helper()
	for range s.lines { // drain
	}
	err := s.cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return 0
}

// itoa formats a port for a configuration file.
func itoa(n int) string { return fmt.Sprint(n) }
