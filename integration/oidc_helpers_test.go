package integration

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/provider/steppage/steptest"
)

// The demo client that `keystep serve` registers when no client is
// configured.
const (
	demoClientID    = "demo"
	demoClientName  = "keystep demo app"
	demoRedirectURI = "http://127.0.0.1:5556/callback"
	acrDevice       = "urn:keystep:acr:device"
)

// demoSecret reads the demo client's secret from the server's data
// directory, where `keystep serve` wrote it with mode 0600.
func demoSecret(t testing.TB, srv server) string {
	t.Helper()
	path := filepath.Join(srv.Data, "demo-client-secret")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("demo client secret: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("demo client secret file has mode %04o, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// writeConfig writes a configuration file (mode 0600) from its lines.
func writeConfig(t testing.TB, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keystep.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var stepNumberRE = regexp.MustCompile(`<strong class="number">(\d+)</strong>`)

// stepNumber reads the number to match from a step page.
func stepNumber(t testing.TB, p *steptest.Page) string {
	t.Helper()
	m := stepNumberRE.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no number on the step page %s (%d):\n%s", p.URL, p.Status, p.Body)
	}
	return m[1]
}

// startStep loads an authorization URL in the browser and follows it to
// the step page.
func startStep(t *testing.T, b *steptest.Browser, srv server, authorizeURL string) *steptest.Page {
	t.Helper()
	p := b.Get(authorizeURL)
	if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, srv.URL+"/step/") {
		t.Fatalf("authorize answered %d → %q, not the step page:\n%s", p.Status, p.Location, p.Body)
	}
	return followToStep(t, b, p)
}

// followToStep follows a redirect to the step page and checks that it
// shows a number.
func followToStep(t *testing.T, b *steptest.Browser, p *steptest.Page) *steptest.Page {
	t.Helper()
	step := b.Follow(p)
	if step.Status != http.StatusOK {
		t.Fatalf("step page %s: %d\n%s", step.URL, step.Status, step.Body)
	}
	return step
}

// approveStep approves the one pending request of the state file's device
// with the number the step page shows, as the user does with `keystep
// device`, and checks the request names client; then it presses Continue
// and returns the answer.
func (w walk) approveStep(b *steptest.Browser, step *steptest.Page, state, client string) *steptest.Page {
	w.t.Helper()
	number := stepNumber(w.t, step)
	var pend pendingList
	ok(w.t, &pend, w.device(state, "pending")...)
	if len(pend.Requests) != 1 {
		w.t.Fatalf("pending requests on %s: %+v, want exactly one", state, pend)
	}
	if pend.Requests[0].Client != client {
		w.t.Errorf("the phone shows the request from %q, want %q", pend.Requests[0].Client, client)
	}
	ok(w.t, nil, w.device(state, "approve", pend.Requests[0].ID, "--number", number)...)
	return b.Submit(step.Form(w.t, "/finish"), nil)
}

// addUser adds a user and returns its account id.
func (w walk) addUser(name, email string) string {
	w.t.Helper()
	var u struct{ ID, Username, State string }
	ok(w.t, &u, w.admin("user", "add", name, "--email", email)...)
	if u.ID == "" || u.Username != name || u.State != "active" {
		w.t.Fatalf("user add %s: %+v", name, u)
	}
	return u.ID
}

// logBuffer keeps a command's output lines for the test to read.
type logBuffer struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced at each new line
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (l *logBuffer) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// waitFor waits for a line, from the from'th on, that holds every one of
// parts, and returns how many lines there are after it.
func (l *logBuffer) waitFor(t testing.TB, from int, parts ...string) int {
	t.Helper()
	guard := time.After(time.Minute) // a hang guard only, never a synchronisation
	for {
		l.mu.Lock()
		for i := from; i < len(l.lines); i++ {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(l.lines[i], p)
			}
			if all {
				l.mu.Unlock()
				return i + 1
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-guard:
			t.Fatalf("no log line with %q within a minute:\n%s", parts, l.String())
		}
	}
}

// len is the number of lines so far.
func (l *logBuffer) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// daemon is a keystep command that serves until the test ends.
type daemon struct {
	addr string     // what its ready line said (the first submatch)
	logs *logBuffer // its standard error
	pid  int
}

// startDaemon runs a keystep command and waits for the line of its
// standard error that ready matches. The command is interrupted when the
// test ends, and its output is logged if the test failed.
func startDaemon(t testing.TB, ready *regexp.Regexp, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(keystepBin, args...)
	cmd.Env = cleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := newLogBuffer()
	found := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			logs.add(sc.Text())
			if sent {
				continue
			}
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, stderr)
		if !sent {
			close(found)
		}
	}()
	name := "keystep " + args[0]
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done: // it closed its standard error: it is exiting
		case <-time.After(30 * time.Second): // a hang guard only
			cmd.Process.Kill()
			<-done
		}
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s:\n%s", name, logs.String())
		}
	})
	select {
	case m, ok := <-found:
		if !ok {
			t.Fatalf("%s exited before it was ready:\n%s", strings.Join(args, " "), logs.String())
		}
		return &daemon{addr: m, logs: logs, pid: cmd.Process.Pid}
	case <-time.After(time.Minute): // a hang guard only, never a synchronisation
		t.Fatalf("%s was not ready within a minute:\n%s", strings.Join(args, " "), logs.String())
	}
	return nil
}

// startLoggedServer is startServer keeping the server's log, which a
// failed test prints.
func startLoggedServer(t testing.TB, extra ...string) (server, *daemon) {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	d := startDaemon(t, listening, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", data}, extra...)...)
	return server{URL: d.addr, Data: data}, d
}
