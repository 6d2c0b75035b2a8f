package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError is a command line that does not say what to do.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(cmd *cobra.Command, format string, args ...any) error {
	return usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWithInput(ctx, args, os.Stdin, stdout, stderr)
}

// runWithInput is run with standard input read from stdin.
func runWithInput(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetIn(stdin)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command ") {
		fmt.Fprintf(stderr, "keystep: %v\n", err)
		path := "keystep"
		if ue.cmd != nil {
			path = ue.cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", path)
		return exitUsage
	}
	fmt.Fprintf(stderr, "keystep: %v\n", err)
	return exitFailure
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "keystep",
		Short: "Passwordless sign-in step: server, admin tool and reference authenticator",
		Long: `keystep adds a passwordless step to an identity provider: users approve a push
with number matching, or scan a QR code, on their phone.

  keystep serve     run the server (SQLite in ./keystep-data by default)
  keystep admin     manage users, invitations, devices and the audit log
  keystep directory test, run and watch the directory (LDAP / AD) sync
  keystep device    the reference authenticator: a stand-in for the phone app
  keystep config    check a configuration file (keystep config check FILE)
  keystep version   print the version`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{cmd: c, err: err} })
	group(root)
	root.AddCommand(newServeCmd(), newAdminCmd(), newDirectoryCmd(), newDeviceCmd(), newDemoAppCmd(), newVersionCmd(), newConfigCmd())
	root.Version = readBuildInfo().line() // keystep --version
	root.SetVersionTemplate("{{.Version}}\n")
	return root
}

// group makes cmd a command that only holds subcommands: without one, or
// with an unknown one, it is a usage error.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usagef(c, "%s needs a command", c.CommandPath())
		}
		return usagef(c, "unknown command %q for %q", args[0], c.CommandPath())
	}
	return cmd
}

// nArgs checks the number of positional arguments, naming them.
func nArgs(names ...string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != len(names) {
			if len(names) == 0 {
				return usagef(c, "%s takes no arguments", c.CommandPath())
			}
			return usagef(c, "%s needs %s", c.CommandPath(), strings.Join(names, " "))
		}
		return nil
	}
}

// output prints a command's results as text or, with --json, as JSON: one
// object per call, one per line.
type output struct {
	w    io.Writer
	json bool
}

// object prints v as one line of JSON.
func (o output) object(v any) error {
	enc := json.NewEncoder(o.w)
	enc.SetEscapeHTML(false) // links hold '&'
	return enc.Encode(v)
}

// textf prints a line of text.
func (o output) textf(format string, args ...any) {
	fmt.Fprintf(o.w, format+"\n", args...)
}
