package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
	"github.com/keystep/keystep/provider/authenticator"
)

const defaultStateFile = "keystep-device.json"

// deviceFlags are the persistent flags of keystep device.
type deviceFlags struct {
	state string
	json  bool
}

func (f *deviceFlags) open() (*authenticator.Authenticator, error) {
	return authenticator.Open(f.state)
}

func (f *deviceFlags) out(cmd *cobra.Command) output {
	return output{w: cmd.OutOrStdout(), json: f.json}
}

func newDeviceCmd() *cobra.Command {
	f := &deviceFlags{}
	cmd := group(&cobra.Command{
		Use:   "device",
		Short: "The reference authenticator: enroll, list, approve, deny and scan like the phone app",
		Long: `The reference authenticator does what the keystep phone app does, from a
terminal: its keys and enrolled accounts live in a state file (mode 0600).`,
	})
	state := defaultStateFile
	if s := os.Getenv("KEYSTEP_DEVICE_STATE"); s != "" {
		state = s
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.state, "state", state, "state `file` with the device's keys (env KEYSTEP_DEVICE_STATE)")
	pf.BoolVar(&f.json, "json", false, "print JSON (one object per line when streaming)")
	cmd.AddCommand(newEnrollCmd(f), newPendingCmd(f), newApproveCmd(f), newDenyCmd(f), newScanCmd(f), newAccountsCmd(f))
	cmd.AddCommand(newBackupCmd(f), newRestoreCmd(f))
	cmd.AddCommand(newPushRouteCmd(f))
	return cmd
}

// problemHints tell the user what to do about a refusal.
var problemHints = map[string]string{
	api.ProblemAccountSuspended:   "contact your IT administrator",
	api.ProblemAccountRemoved:     "your account was removed; if you believe this was done in error, contact your IT administrator",
	api.ProblemDeviceUnregistered: "this device was unregistered; ask your IT administrator for a new invitation",
	api.ProblemWrongNumber:        "start the sign-in again and type the number shown on the sign-in screen",
	api.ProblemExpired:            "it expired: start the sign-in again (or check this computer's clock)",
	api.ProblemAlreadyDecided:     "this sign-in was already decided",
	api.ProblemAlreadyUsed:        "this invitation was already used; ask your IT administrator for a new one",
}

// hinted adds advice to a refusal the user can act on.
func hinted(err error) error {
	if p, ok := adminclient.AsProblem(err); ok {
		if h := problemHints[p.Type]; h != "" {
			return fmt.Errorf("%w — %s", err, h)
		}
	}
	return err
}

// requestLine is a request as `device pending` prints it in JSON.
type requestLine struct {
	Event     string    `json:"event,omitempty"`
	ID        string    `json:"id"`
	Status    string    `json:"status,omitempty"`
	Server    string    `json:"server,omitempty"`
	Username  string    `json:"username,omitempty"`
	Client    string    `json:"client,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	Methods   []string  `json:"methods,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func newRequestLine(e authenticator.Enrollment, r api.SignInRequest) requestLine {
	return requestLine{ID: r.ID, Server: e.Server, Username: e.Username, Client: r.Client, IP: r.IP, UserAgent: r.UserAgent,
		Methods: r.Methods, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}
}

func (r requestLine) text() string {
	from := r.Client
	if r.IP != "" {
		from += " from " + r.IP
	}
	return fmt.Sprintf("%s  %s  for %s at %s, expires %s", r.ID, from, r.Username, r.Server, r.ExpiresAt.Local().Format(time.TimeOnly))
}

func newEnrollCmd(f *deviceFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "enroll LINK",
		Short: "Enroll with an invitation link (keystep://enroll?…)",
		Args:  nArgs("LINK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := f.open()
			if err != nil {
				return err
			}
			e, err := a.Enroll(cmd.Context(), args[0])
			if err != nil {
				return hinted(err)
			}
			o := f.out(cmd)
			if o.json {
				return o.object(map[string]string{"server": e.Server, "device_id": e.DeviceID, "account_id": e.AccountID, "username": e.Username, "display_name": e.DisplayName})
			}
			name := e.Username
			if e.DisplayName != "" {
				name += " (" + e.DisplayName + ")"
			}
			o.textf("Enrolled %s at %s as device %s.", name, e.Server, e.DeviceID)
			return nil
		},
	}
}

func newPendingCmd(f *deviceFlags) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "pending [--wait DUR]",
		Short: "List pending sign-in requests (--wait: print them as they arrive, for DUR or until Ctrl-C)",
		Args:  nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wait < 0 {
				return usagef(cmd, "--wait must not be negative")
			}
			a, err := f.open()
			if err != nil {
				return err
			}
			o := f.out(cmd)
			if wait == 0 {
				rs, err := a.Pending(cmd.Context())
				if len(rs) == 0 && err != nil {
					return hinted(err)
				}
				lines := make([]requestLine, 0, len(rs))
				for _, r := range rs {
					lines = append(lines, newRequestLine(r.Enrollment, r.SignInRequest))
				}
				if o.json {
					if err := o.object(map[string]any{"requests": lines}); err != nil {
						return err
					}
				} else if len(lines) == 0 {
					o.textf("No pending requests.")
				} else {
					for _, l := range lines {
						o.textf("%s", l.text())
					}
				}
				return hinted(err)
			}
			return streamPending(cmd, a, o, wait)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "keep printing requests as they arrive for this `duration`")
	return cmd
}

// streamPending prints requests as they arrive until wait has passed or
// the user interrupts.
func streamPending(cmd *cobra.Command, a *authenticator.Authenticator, o output, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), wait)
	defer cancel()
	seen := map[string]bool{}
	var werr error
	err := a.Stream(ctx, func(ev authenticator.Event) {
		var line requestLine
		switch ev.Kind {
		case authenticator.EventRequest:
			if seen[ev.Request.ID] { // sent again after a reconnection
				return
			}
			seen[ev.Request.ID] = true
			line = newRequestLine(ev.Enrollment, *ev.Request)
			line.Event = "request"
			if !o.json {
				o.textf("request  %s", line.text())
				return
			}
		case authenticator.EventResolved:
			delete(seen, ev.Resolved.ID)
			line = requestLine{Event: "resolved", ID: ev.Resolved.ID, Status: ev.Resolved.Status, Server: ev.Enrollment.Server, Username: ev.Enrollment.Username}
			if !o.json {
				o.textf("resolved %s  %s", line.ID, line.Status)
				return
			}
		case authenticator.EventDisconnected:
			fmt.Fprintf(cmd.ErrOrStderr(), "keystep: %v\n", hinted(ev.Err))
			return
		default:
			return
		}
		if err := o.object(line); err != nil && werr == nil {
			werr = err
			cancel()
		}
	})
	if werr != nil {
		return werr
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return nil // the wait is over, or Ctrl-C
	}
	return hinted(err)
}

func newApproveCmd(f *deviceFlags) *cobra.Command {
	var number string
	cmd := &cobra.Command{
		Use:   "approve ID --number N",
		Short: "Approve a pending request with the number shown on the sign-in screen",
		Args:  nArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if number == "" {
				return usagef(cmd, "--number is required: type the number shown on the sign-in screen")
			}
			a, err := f.open()
			if err != nil {
				return err
			}
			d, err := a.Approve(cmd.Context(), args[0], number)
			if err != nil {
				return hinted(err)
			}
			return printDecision(f.out(cmd), d)
		},
	}
	cmd.Flags().StringVar(&number, "number", "", "the number shown on the sign-in screen (required)")
	return cmd
}

func newDenyCmd(f *deviceFlags) *cobra.Command {
	var report bool
	cmd := &cobra.Command{
		Use:   "deny ID [--report]",
		Short: "Deny a pending request (--report: I did not start this sign-in)",
		Args:  nArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := f.open()
			if err != nil {
				return err
			}
			d, err := a.Deny(cmd.Context(), args[0], report)
			if err != nil {
				return hinted(err)
			}
			if err := printDecision(f.out(cmd), d); err != nil {
				return err
			}
			if report && !f.json {
				fmt.Fprintln(cmd.ErrOrStderr(), "Reported. Someone may be trying to access your account: notify your IT administrator.")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&report, "report", false, "report the request: you did not try to sign in")
	return cmd
}

func newScanCmd(f *deviceFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "scan QR_PAYLOAD",
		Short: "Approve a sign-in by the content of its QR code (keystep://signin?…)",
		Args:  nArgs("QR_PAYLOAD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := f.open()
			if err != nil {
				return err
			}
			s, err := a.Scan(cmd.Context(), args[0])
			if err != nil {
				return hinted(err)
			}
			o := f.out(cmd)
			if o.json {
				line := newRequestLine(s.Request.Enrollment, s.Request.SignInRequest)
				line.Status = s.Decision.Status
				return o.object(line)
			}
			o.textf("Sign-in %s to %s as %s: %s", s.Decision.ID, s.Request.Client, s.Request.Enrollment.Username, s.Decision.Status)
			return nil
		},
	}
}

func printDecision(o output, d api.DecisionResponse) error {
	if o.json {
		return o.object(d)
	}
	msg := "Sign-in " + d.ID + ": " + d.Status
	if d.Reason != "" {
		msg += " (" + d.Reason + ")"
	}
	o.textf("%s", msg)
	return nil
}

// accountLine is an account as `device accounts` prints it in JSON.
type accountLine struct {
	Server      string `json:"server"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name,omitempty"`
	AccountID   string `json:"account_id"`
	DeviceID    string `json:"device_id"`
	State       string `json:"state"`
	Detail      string `json:"detail,omitempty"`
}

func newAccountsCmd(f *deviceFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "accounts",
		Short: "Show the enrolled accounts and their state (removed accounts are dropped)",
		Args:  nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := f.open()
			if err != nil {
				return err
			}
			as, err := a.Accounts(cmd.Context())
			if err != nil && len(as) == 0 {
				return err
			}
			lines := make([]accountLine, 0, len(as))
			failed := 0
			for _, s := range as {
				l := accountLine{Server: s.Enrollment.Server, Username: s.Enrollment.Username, DisplayName: s.Enrollment.DisplayName,
					AccountID: s.Enrollment.AccountID, DeviceID: s.Enrollment.DeviceID, State: s.State}
				switch s.State {
				case "suspended":
					l.Detail = "your account is suspended — contact your IT administrator"
				case authenticator.StateRemoved:
					l.Detail = "your account was removed from the organization; it has been removed from this device"
				case authenticator.StateUnregistered:
					l.Detail = "this device was unregistered and can no longer approve sign-ins; ask your IT administrator for a new invitation"
				case authenticator.StateUnknown:
					l.Detail = s.Err.Error()
					failed++
				}
				lines = append(lines, l)
			}
			o := f.out(cmd)
			if o.json {
				if err := o.object(map[string]any{"accounts": lines}); err != nil {
					return err
				}
			} else if len(lines) == 0 {
				o.textf("No accounts are enrolled on this device.")
			} else {
				tw := tabwriter.NewWriter(o.w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "USERNAME\tSERVER\tSTATE\t")
				for _, l := range lines {
					name := l.Username
					if l.DisplayName != "" {
						name += " (" + l.DisplayName + ")"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, l.Server, l.State, l.Detail)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d servers could not be asked", failed, len(lines))
			}
			return nil
		},
	}
}
