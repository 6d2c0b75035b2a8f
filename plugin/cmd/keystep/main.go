// Command keystep runs keystep's server (keystep serve), administers it
// (keystep admin …) and stands in for the phone app (keystep device …).
//
// Exit codes: 0 success, 1 failure or refusal, 2 usage error.
//
// With KEYSTEP_PLUGIN=passwordless-step in its environment it is keystep's
// go-plugin plugin for a host identity provider, whatever its arguments
// (see plugin.go).
package main

import (
	"context"
	"os"
)

func main() {
	if pluginMode() {
		os.Exit(servePlugin(os.Stderr))
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
