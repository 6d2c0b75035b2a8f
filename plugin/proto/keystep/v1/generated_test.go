package keystepv1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsCurrent regenerates the Go code from step.proto and
// fails when the committed code differs: edit the .proto, then run
// plugin/proto/generate.sh.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Fatal("protoc is missing: install the Debian package protobuf-compiler")
	}
	dir := t.TempDir()
	cmd := exec.Command("../../generate.sh", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, out)
	}
	for _, name := range []string{"step.pb.go", "step_grpc.pb.go"} {
		want, err := os.ReadFile(filepath.Join(dir, "keystep", "v1", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run plugin/proto/generate.sh", name)
		}
	}
}
