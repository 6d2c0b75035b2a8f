package main

import (
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildInfo is what `keystep version --json` prints.
type buildInfo struct {
	Version   string `json:"version"`
	Module    string `json:"module,omitempty"`     // the module's version in the build information
	Revision  string `json:"revision,omitempty"`   // the VCS commit
	Dirty     bool   `json:"dirty"`                // built from a tree with uncommitted changes
	BuildTime string `json:"build_time,omitempty"` // the commit's time (vcs.time), RFC 3339
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// readBuildInfo gathers the version and the build information.
func readBuildInfo() buildInfo {
	// The version is keystepVersion's (plugin.go): -ldflags "-X
	// main.version=…", else the module version, else "(devel)".
	b := buildInfo{Version: keystepVersion(), GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		b.Module = bi.Main.Version
		b.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.modified":
				b.Dirty = s.Value == "true"
			case "vcs.time":
				b.BuildTime = s.Value
			}
		}
	}
	return b
}

// line is the one-line form: "keystep 1.2.3 (abc123def456, dirty, 2026-11-27T10:00:00Z, go1.26.8 linux/amd64)".
func (b buildInfo) line() string {
	var about []string
	if b.Revision != "" {
		rev := b.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		about = append(about, rev)
	}
	if b.Dirty {
		about = append(about, "dirty")
	}
	if b.BuildTime != "" {
		about = append(about, b.BuildTime)
	}
	about = append(about, b.GoVersion+" "+b.Platform)
	return "keystep " + b.Version + " (" + strings.Join(about, ", ") + ")"
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print keystep's version",
		Long: `Print keystep's version on one line: the release set at build time
(-ldflags "-X main.version=…"), else the module version, then the commit,
whether the tree had uncommitted changes, the commit's time, and the Go
version and platform. --json prints them as one JSON object.`,
		Args: nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := output{w: cmd.OutOrStdout(), json: asJSON}
			b := readBuildInfo()
			if o.json {
				return o.object(b)
			}
			o.textf("%s", b.line())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the details as JSON")
	return cmd
}
