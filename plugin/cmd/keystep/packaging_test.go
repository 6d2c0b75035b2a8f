//go:build linux

package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const (
	dockerfile   = "../../../Dockerfile"
	systemdUnit  = "../../../packaging/keystep.service"
	sysusersConf = "../../../packaging/sysusers.d/keystep.conf"
)

// dockerBuild is the build stage's command, which the test runs too.
const dockerBuild = `RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/keystep ./plugin/cmd/keystep`

// TestDockerfileBinary builds keystep exactly as the Dockerfile's build
// stage does, and checks that the binary is static (no interpreter, no
// shared library: it runs on distroless/static or scratch) and says its
// version. Docker is not needed: the image itself is not built here.
func TestDockerfileBinary(t *testing.T) {
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{
		"FROM golang:${GO_VERSION} AS build", "ARG GO_VERSION=1.26", dockerBuild,
		"FROM gcr.io/distroless/static-debian12:nonroot", "COPY --from=build /out/keystep /keystep",
		"COPY --from=build --chown=65532:65532 /out/data /data", "USER 65532:65532", `VOLUME ["/data"]`, "EXPOSE 8080",
		`ENTRYPOINT ["/keystep"]`, `CMD ["serve"]`, "KEYSTEP_LISTEN=0.0.0.0:8080", "KEYSTEP_DATA_DIR=/data",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
	if regexp.MustCompile(`(?m)^USER\s+(root|0)\b`).MatchString(df) {
		t.Error("the Dockerfile runs as root")
	}

	bin := buildKeystep(t, []string{"CGO_ENABLED=0"}, "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -X main.version=0.0.0-docker-test")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an interpreter (PT_INTERP): it is dynamically linked")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Error("the binary has a dynamic section (PT_DYNAMIC)")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries (DT_NEEDED): %v %v", libs, err)
	}
	line, b := versionOf(t, bin)
	if b.Version != "0.0.0-docker-test" || !strings.HasPrefix(line, "keystep 0.0.0-docker-test (") {
		t.Errorf("version: %q %+v", line, b)
	}
	// -trimpath: no path of this machine in the binary.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(filepath.Dir(filepath.Dir(filepath.Dir(wd))))) {
		t.Error("the binary holds the source tree's path: -trimpath did not apply")
	}

	ignore, err := os.ReadFile("../../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "**/*.test", "keystep-data"} {
		if !hasLineEqual(strings.Split(string(ignore), "\n"), want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}

func hasLineEqual(lines []string, s string) bool {
	for _, l := range lines {
		if strings.TrimSpace(l) == s {
			return true
		}
	}
	return false
}

// unitSettings reads a systemd unit's settings: section.key → values.
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "["):
			section = strings.Trim(l, "[]")
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: not a setting: %q", path, l)
			}
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSystemdUnit checks packaging/keystep.service with systemd itself
// (systemd-analyze verify: no unknown key, no bad value; systemd-analyze
// security: its exposure), that the hardening is there, and that
// sysusers.d makes the user it runs as.
func TestSystemdUnit(t *testing.T) {
	s := unitSettings(t, systemdUnit)
	want := map[string]string{
		"Service.User":                       "keystep",
		"Service.Group":                      "keystep",
		"Service.ExecStart":                  "/usr/bin/keystep serve --config /etc/keystep/keystep.yaml",
		"Service.Restart":                    "on-failure",
		"Service.StateDirectory":             "keystep",
		"Service.ConfigurationDirectory":     "keystep",
		"Service.NoNewPrivileges":            "yes",
		"Service.ProtectSystem":              "strict",
		"Service.ProtectHome":                "yes",
		"Service.PrivateTmp":                 "yes",
		"Service.PrivateDevices":             "yes",
		"Service.CapabilityBoundingSet":      "",
		"Service.AmbientCapabilities":        "",
		"Service.RestrictAddressFamilies":    "AF_INET AF_INET6 AF_UNIX",
		"Service.LockPersonality":            "yes",
		"Service.MemoryDenyWriteExecute":     "yes",
		"Service.RestrictNamespaces":         "yes",
		"Service.RestrictSUIDSGID":           "yes",
		"Service.SystemCallArchitectures":    "native",
		"Service.ProtectKernelTunables":      "yes",
		"Service.ProtectKernelModules":       "yes",
		"Service.ProtectControlGroups":       "yes",
		"Service.UMask":                      "0077",
		"Service.StateDirectoryMode":         "0700",
		"Install.WantedBy":                   "multi-user.target",
		"Service.ConfigurationDirectoryMode": "0750",
	}
	for k, v := range want {
		if got, ok := s[k]; !ok || got[0] != v {
			t.Errorf("%s: %s = %q, want %q", systemdUnit, k, got, v)
		}
	}
	if f := s["Service.SystemCallFilter"]; len(f) == 0 || f[0] != "@system-service" {
		t.Errorf("SystemCallFilter = %q", f)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed to check the unit (apt-get install systemd): %v", err)
	}
	// verify needs the commands to exist: this test's own binary stands
	// in for /usr/bin/keystep.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(systemdUnit)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "keystep.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(data, []byte("/usr/bin/keystep"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", "--man=no", unit)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=yes", "--no-pager", unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for keystep\.service: ([0-9.]+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("systemd-analyze security: exposure %s, want at most 2.0\n%s", m[1], out)
	}

	sysusers, err := exec.LookPath("systemd-sysusers")
	if err != nil {
		t.Fatalf("systemd-sysusers is needed to check %s: %v", sysusersConf, err)
	}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, err := filepath.Abs(sysusersConf) // a relative one would be under --root
	if err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(sysusers, "--dry-run", "--root="+root, conf).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Creating user 'keystep'") {
		t.Errorf("systemd-sysusers --dry-run %s: %v\n%s", sysusersConf, err, out)
	}
}
