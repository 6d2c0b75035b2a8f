//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/plugin/pluginapi"
	pb "github.com/keystep/keystep/plugin/proto/keystep/v1"
	"github.com/keystep/keystep/plugin/step"
	"github.com/keystep/keystep/plugin/wire"
	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
	"github.com/keystep/keystep/provider/authenticator"
)

// lockedBuffer is the plugin's stderr as the host gets it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// jsonLines checks that every line of the log is one JSON object with
// slog's keys, and returns them.
func jsonLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for l := range strings.Lines(log) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("log line is not a JSON object: %q", l)
			continue
		}
		if _, ok := m["time"]; !ok || m["level"] == nil || m["msg"] == nil {
			t.Errorf("log line without time, level and msg: %q", l)
		}
		out = append(out, m)
	}
	return out
}

// hasLine reports whether a log line has msg and, if given, err containing errText.
func hasLine(lines []map[string]any, msg, errText string) bool {
	for _, l := range lines {
		if l["msg"] != msg {
			continue
		}
		if e, _ := l["err"].(string); strings.Contains(e, errText) {
			return true
		}
	}
	return false
}

// pluginEnv is the environment of a launched plugin: the host's, without
// keystep serve's overrides, and a private temporary directory, which it
// returns too.
func pluginEnv(t *testing.T, config string) (env []string, tmp string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYSTEP_") && !strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	tmp = t.TempDir()
	return append(env, pluginapi.ConfigEnv+"="+config, "TMPDIR="+tmp), tmp
}

// noFilesIn checks that dir is empty.
func noFilesIn(t *testing.T, dir string) {
	t.Helper()
	if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
		t.Errorf("files left in %s: %v, %v", dir, left, err)
	}
}

// launch starts the binary as the host SDK does, with the config text,
// asking for the given protocol versions. It returns the plugin's
// temporary directory too.
func launch(t *testing.T, bin, config string, versions map[int]goplugin.PluginSet, args ...string) (*goplugin.Client, *lockedBuffer, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var tmp string
	cmd.Env, tmp = pluginEnv(t, config)
	stderr := &lockedBuffer{}
	c := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  pluginapi.Handshake,
		VersionedPlugins: versions,
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		Stderr:           stderr,
		Logger:           hclog.NewNullLogger(),
		SkipHostEnv:      true, // cmd.Env has it, without KEYSTEP_*
	})
	t.Cleanup(c.Kill)
	return c, stderr, tmp
}

// TestPlugin builds the binary and launches it as a go-plugin plugin.
func TestPlugin(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "keystep")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	config := func(t *testing.T) (string, string) {
		data := filepath.Join(t.TempDir(), "data")
		return "listen: 127.0.0.1:0\ndata_dir: " + data + "\n", data
	}

	t.Run("SignIn", func(t *testing.T) {
		cfg, data := config(t)
		// The cookie wins over the arguments.
		c, stderr, tmp := launch(t, bin, cfg, pluginapi.Versions(nil), "serve", "--bogus")
		rpc, err := c.Client()
		if err != nil {
			t.Fatalf("handshake: %v\nplugin log:\n%s", err, stderr)
		}
		if v := c.NegotiatedVersion(); v != pluginapi.ProtocolV1 {
			t.Errorf("negotiated version %d", v)
		}
		raw, err := rpc.Dispense(pluginapi.PluginName)
		if err != nil {
			t.Fatal(err)
		}
		p := raw.(*pluginapi.Clients)
		ctx := context.Background()

		h, err := p.Health.Check(ctx, &pb.HealthRequest{})
		if err != nil {
			t.Fatal(err)
		}
		url := h.GetDeviceApiUrl()
		if !h.GetServing() || h.GetVersion() == "" || !regexp.MustCompile(`^http://127\.0\.0\.1:[1-9][0-9]*$`).MatchString(url) {
			t.Fatalf("health %v", h)
		}
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz: %s", resp.Status)
		}

		_, err = p.Step.Begin(ctx, &pb.BeginRequest{Username: "nobody", Client: "Payroll"})
		err = wire.FromStatus(err)
		var re *wire.RemoteError
		if !errors.Is(err, flows.ErrNotFound) || !errors.As(err, &re) || re.Code != codes.NotFound {
			t.Errorf("begin for an unknown user: %#v", err)
		}

		// A phone enrolls and approves on the plugin's own device API.
		token, err := readTokenFile(filepath.Join(data, adminTokenFile))
		if err != nil {
			t.Fatal(err)
		}
		admin, err := adminclient.New(url, token)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.AddUser(ctx, api.NewUser{Username: "frank", Email: "frank@example.com"}); err != nil {
			t.Fatal(err)
		}
		inv, err := p.Accounts.Invite(ctx, &pb.AccountRef{Username: "frank"})
		if err != nil {
			t.Fatal(wire.FromStatus(err))
		}
		dev, err := authenticator.Open(filepath.Join(t.TempDir(), "device.json"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dev.Enroll(ctx, inv.GetLink()); err != nil {
			t.Fatal(err)
		}
		tx, err := p.Step.Begin(ctx, wire.BeginRequestToPB(step.BeginRequest{Username: "frank", Client: "Payroll", IP: "192.0.2.7"}))
		if err != nil {
			t.Fatal(wire.FromStatus(err))
		}
		stream, err := p.Step.Await(ctx, &pb.AwaitRequest{Id: tx.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := stream.Recv(); err != nil || r.GetStatus() != string(flows.StatusPending) {
			t.Fatalf("first result %v, %v", r, wire.FromStatus(err))
		}
		if _, err := dev.Approve(ctx, tx.GetId(), tx.GetNumber()); err != nil {
			t.Fatal(err)
		}
		if r, err := stream.Recv(); err != nil || r.GetStatus() != string(flows.StatusApproved) || r.GetMethod() != "push" {
			t.Fatalf("final result %v, %v", r, wire.FromStatus(err))
		}
		if _, err := stream.Recv(); err != io.EOF {
			t.Fatalf("after the final result: %v", err)
		}
		audit, err := admin.Audit(ctx, 0, 1000, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range audit {
			found = found || (ev.Action == flows.AuditSignInStarted && ev.Actor == pluginActor)
		}
		if !found {
			t.Errorf("no sign-in started by %q in the audit log: %+v", pluginActor, audit)
		}

		// The host closes the plugin: the server stops gracefully.
		c.Kill()
		if !c.Exited() {
			t.Error("the plugin did not exit")
		}
		lines := jsonLines(t, stderr.String())
		if !hasLine(lines, "the host closed the plugin", "") || !hasLine(lines, "stopped", "") {
			t.Errorf("the plugin did not stop gracefully:\n%s", stderr)
		}
		if _, err := http.Get(url + "/healthz"); err == nil {
			t.Error("the device API outlived the plugin")
		}
		noFilesIn(t, tmp) // the configuration file and go-plugin's socket are gone
	})

	t.Run("UnknownVersion", func(t *testing.T) {
		cfg, _ := config(t)
		c, stderr, _ := launch(t, bin, cfg, map[int]goplugin.PluginSet{9: {pluginapi.PluginName: &pluginapi.V1{}}})
		_, err := c.Client()
		const want = "incompatible API version with plugin. Plugin version: 1, Client versions: [9]"
		if err == nil || err.Error() != want {
			t.Fatalf("a host asking for version 9: %v, want %q\nplugin log:\n%s", err, want, stderr)
		}
	})

	t.Run("BadConfig", func(t *testing.T) {
		c, stderr, tmp := launch(t, bin, "listen: nowhere\nbogus: 1\n", pluginapi.Versions(nil))
		_, err := c.Client()
		if err == nil {
			t.Fatal("a plugin with a bad configuration started")
		}
		// Kill waits until go-plugin has copied all of the plugin's
		// stderr; Client can return before that.
		c.Kill()
		lines := jsonLines(t, stderr.String())
		if !hasLine(lines, "keystep plugin: configuration", "config KEYSTEP_PLUGIN_CONFIG: line 2: unknown key bogus") {
			t.Errorf("the log does not name the bad key:\n%s", stderr)
		}
		if strings.Contains(stderr.String(), "keystep-plugin-config-") {
			t.Errorf("the log names the temporary file:\n%s", stderr)
		}
		noFilesIn(t, tmp)
	})

	// Nothing but go-plugin's handshake line reaches stdout, and the
	// temporary configuration file is gone once the plugin serves. SIGTERM
	// stops it gracefully.
	t.Run("Stdout", func(t *testing.T) {
		cfg, _ := config(t)
		cmd := exec.Command(bin, "serve")
		env, tmp := pluginEnv(t, cfg)
		// What go-plugin's client sets; the socket in its own directory,
		// which SIGTERM leaves behind.
		cmd.Env = append(env, pluginapi.MagicCookieKey+"="+pluginapi.MagicCookieValue,
			"PLUGIN_PROTOCOL_VERSIONS=1", "PLUGIN_UNIX_SOCKET_DIR="+t.TempDir())
		var stderr lockedBuffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		r := bufio.NewReader(stdout)
		first, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stdout: %q, %v\nplugin log:\n%s", first, err, stderr.String())
		}
		if !regexp.MustCompile(`^1\|1\|unix\|[^|]+\|grpc\|\n$`).MatchString(first) {
			t.Fatalf("the first line on stdout is not the handshake: %q", first)
		}
		noFilesIn(t, tmp)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(r)
		if err != nil || len(rest) != 0 {
			t.Errorf("more on stdout: %q, %v", rest, err)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("exit after SIGTERM: %v\nplugin log:\n%s", err, stderr.String())
		}
		if lines := jsonLines(t, stderr.String()); !hasLine(lines, "stopped", "") {
			t.Errorf("no graceful stop:\n%s", stderr.String())
		}
	})
}
