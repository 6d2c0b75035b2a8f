package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &errOut); code != exitOK {
		t.Fatalf("version: exit %d: %s", code, errOut.String())
	}
	line := out.String()
	if !strings.HasPrefix(line, "keystep ") || strings.Count(line, "\n") != 1 || !strings.Contains(line, runtime.Version()) {
		t.Errorf("version = %q", line)
	}
	out.Reset()
	if code := run(context.Background(), []string{"--version"}, &out, &errOut); code != exitOK || out.String() != line {
		t.Errorf("--version: exit %d, %q; want %q", code, out.String(), line)
	}
	out.Reset()
	if code := run(context.Background(), []string{"version", "--json"}, &out, &errOut); code != exitOK {
		t.Fatalf("version --json: exit %d: %s", code, errOut.String())
	}
	var b buildInfo
	if err := json.Unmarshal(out.Bytes(), &b); err != nil || b.Version == "" || b.GoVersion == "" || b.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("version --json = %s (%v)", out.String(), err)
	}
	if code := run(context.Background(), []string{"version", "extra"}, &out, &errOut); code != exitUsage {
		t.Errorf("version extra: exit %d, want %d", code, exitUsage)
	}
}

// buildKeystep builds the keystep binary with the go build arguments
// given and returns its path.
func buildKeystep(t *testing.T, env []string, args ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "keystep")
	cmd := exec.Command("go", append(append([]string{"build"}, args...), "-o", bin, ".")...)
	cmd.Env = append(cmd.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// versionOf runs `bin version` and `bin version --json`.
func versionOf(t *testing.T, bin string) (string, buildInfo) {
	t.Helper()
	line, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	js, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatalf("%s version --json: %v", bin, err)
	}
	var b buildInfo
	if err := json.Unmarshal(js, &b); err != nil {
		t.Fatalf("version --json: %v: %s", err, js)
	}
	return strings.TrimSuffix(string(line), "\n"), b
}

// TestBinaryVersion builds keystep as a release would (the version given
// with -ldflags) and as a developer does (no version: the module's, with
// the commit, from the build information), and checks what each prints.
func TestBinaryVersion(t *testing.T) {
	release := buildKeystep(t, nil, "-buildvcs=false", "-ldflags", "-X main.version=9.8.7-test")
	line, b := versionOf(t, release)
	if !strings.HasPrefix(line, "keystep 9.8.7-test (") || b.Version != "9.8.7-test" || b.Revision != "" {
		t.Errorf("release build: %q, %+v", line, b)
	}

	dev := buildKeystep(t, nil, "-buildvcs=true")
	line, b = versionOf(t, dev)
	// Go finds the commit only where .git is a directory: not in a git
	// worktree or submodule, whose .git is a file.
	if fi, err := os.Stat("../../../.git"); err != nil || !fi.IsDir() {
		if b.Version != "(devel)" || b.Revision != "" || line != "keystep (devel) ("+runtime.Version()+" "+b.Platform+")" {
			t.Errorf("development build outside a git checkout: %q, %+v", line, b)
		}
		return
	}
	// Go stamps a pseudo-version from the commit ("v0.0.0-<time>-<commit>[+dirty]").
	if b.Version == "" || b.Version != b.Module || !strings.HasPrefix(line, "keystep "+b.Version+" (") {
		t.Errorf("development build: %q, %+v", line, b)
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(b.Revision) || b.BuildTime == "" {
		t.Fatalf("development build: no commit in the build information: %+v", b)
	}
	if !strings.Contains(line, b.Revision[:12]) || strings.Contains(line, "dirty") != b.Dirty {
		t.Errorf("development build line %q does not match %+v", line, b)
	}
	// The commit is one of this repository's.
	if out, err := exec.Command("git", "cat-file", "-e", b.Revision+"^{commit}").CombinedOutput(); err != nil {
		t.Errorf("revision %s is not a commit here: %v %s", b.Revision, err, out)
	}
}
