//go:build unix

package main

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
	"github.com/keystep/keystep/provider/authenticator"
)

// TestBinaryServeAndSIGTERM builds the keystep binary, starts `keystep
// serve` as its own process, waits for the line that says where it
// listens, and stops it with SIGTERM while a device's request stream is
// open: it must end that stream and exit 0.
func TestBinaryServeAndSIGTERM(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "keystep")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data", data)
	cmd.Env = append(os.Environ(), "KEYSTEP_LISTEN=", "KEYSTEP_PUBLIC_URL=", "KEYSTEP_DATA_DIR=", "KEYSTEP_STORE_DRIVER=", "KEYSTEP_STORE_DSN=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait() // after stderr is drained, as Wait requires
	}()
	defer cmd.Process.Kill()

	var url string
	var log []string
	for url == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve ended before listening:\n%s", strings.Join(log, "\n"))
			}
			log = append(log, l)
			if m := listening.FindStringSubmatch(l); m != nil {
				url = m[1]
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no listening line:\n%s", strings.Join(log, "\n"))
		}
	}
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %s", resp.Status)
	}

	token, err := readTokenFile(filepath.Join(data, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := adminclient.New(url, token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddUser(context.Background(), api.NewUser{Username: "frank", Email: "frank@example.com"}); err != nil {
		t.Fatal(err)
	}
	inv, err := admin.Invite(context.Background(), "frank")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := authenticator.Open(filepath.Join(dir, "device.json"), authenticator.WithStreamRetry(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Enroll(context.Background(), inv.Link); err != nil {
		t.Fatal(err)
	}
	// A request stream is open when the server is told to stop.
	events := make(chan authenticator.Event, 10)
	streamCtx, stopStream := context.WithCancel(context.Background())
	defer stopStream()
	go dev.Stream(streamCtx, func(ev authenticator.Event) { events <- ev })
	select {
	case ev := <-events:
		if ev.Kind != authenticator.EventConnected {
			t.Fatalf("first stream event: %+v", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the request stream did not open")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after SIGTERM")
	}
	select {
	case ev := <-events:
		if ev.Kind != authenticator.EventDisconnected {
			t.Fatalf("stream event after shutdown: %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the open request stream outlived the server")
	}
}
