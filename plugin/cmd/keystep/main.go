// Command keystep runs keystep's server (keystep serve), administers it
// (keystep admin …) and stands in for the phone app (keystep device …).
//
// Exit codes: 0 success, 1 failure or refusal, 2 usage error.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
