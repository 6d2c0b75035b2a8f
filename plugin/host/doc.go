// Package host is the SDK for a Go identity provider that adds keystep's
// passwordless step by launching the keystep binary as a
// hashicorp/go-plugin plugin, instead of running keystep as a server of
// its own or linking it in.
//
// # The contract
//
// Launch runs the binary (Options.Path) with keystep's magic cookie
// (pluginapi.Handshake), its YAML configuration through a pipe (the
// plugin's file descriptor 3, pluginapi.ConfigFDEnv: no environment holds
// its secrets) and go-plugin's gRPC protocol with AutoMTLS: the
// connection is a unix socket (or loopback TCP) that only this host can
// use. The plugin runs keystep's device API, which phones call, on its own
// listener (the configuration's listen and public_url): the host never
// proxies the phones' traffic. The host speaks the versioned v1 contract
// (plugin/proto/keystep/v1) through a *Client, which implements
// step.Step and step.Accounts exactly as step.Local does in process, plus
// Health and Close. Options.Versions lists the contract versions the host
// speaks; the plugin picks the newest it also serves, and Launch fails
// with ErrIncompatibleVersion (naming both sides' versions) if there is
// none. With Options.Checksum the binary's SHA-256 is checked before each
// start, restarts included, and a mismatch (ErrChecksumMismatch) runs
// nothing. go-plugin hashes the file and then executes the path, so there
// is a window between the check and the run in which a replaced file
// would run unchecked: the binary and the directories above it must be
// writable only by root or the host's own user.
//
// The plugin logs JSON lines on its stderr; each becomes a record of
// Options.Logger with its own level, time and attributes, plus
// plugin=keystep. go-plugin's own messages come with component=go-plugin,
// and the SDK's (starts, exits, restarts) at Info and Warn.
//
// # Errors
//
// An error the plugin answers crosses the boundary as a gRPC status with
// keystep's ErrorInfo and comes back, through wire.FromStatus, as the
// error flows returns in process: errors.Is(err, flows.ErrAccountSuspended),
// flows.ErrNotFound, flows.ErrNoDevice, errors.As into a
// *flows.RateLimitError with its RetryAfter, and so on. When ctx ends,
// every method returns ctx.Err() itself (context.Canceled or
// context.DeadlineExceeded); gRPC carries the deadline to the plugin. Calls
// after Close, and calls that Close cuts off, return ErrClosed (one that
// changes state and had reached the plugin also wraps ErrPluginExited).
//
// # Restarts
//
// If the plugin process dies (a crash, SIGKILL, the OOM killer), the
// Client starts it again, with the same options, on the next call or as
// soon as a call fails because the connection broke (gRPC Unavailable
// without keystep's ErrorInfo, the process having exited). One restart
// runs at a time and concurrent callers share it; it tries up to three
// starts with a growing pause between them, and each step is logged.
// Restarts counts them and PID names the current process.
//
// Whether a call that met the dead plugin is made again after the restart
// depends on the call:
//
//   - Await, Health and GetAccount only read: they are repeated on the new
//     plugin (up to three times; an Await resumes up to five times).
//     Pending sign-ins live in keystep's store, so an Await cut off by a
//     restart re-opens for the same transaction and still returns the
//     decision; its progress callback may then see the current status
//     again.
//   - Begin, SendCode, SubmitCode, Cancel, AddAccount, Invite, Suspend,
//     Restore, Remove, Unregister and IssueOverride change state. They are
//     repeated only if the request never left the host: the connection was
//     refused or was down before the request was written (the SDK watches
//     gRPC's per-call events to know). If the request may have reached the
//     plugin before it died, the call returns an error that wraps
//     ErrPluginExited (and the gRPC status) without repeating it: the
//     sign-in may have begun, the code may have been sent or used. The
//     host decides, for example by beginning a new sign-in; the plugin is
//     restarted for the next call either way.
//
// The sign-ins survive a restart only if the store does: configure a
// data_dir (SQLite) or a database, not a temporary one. Phones reach the
// restarted plugin only if its device API stays at the same address: fix
// the listen port (or the public_url) rather than using port 0, whose port
// changes on each start.
package host
