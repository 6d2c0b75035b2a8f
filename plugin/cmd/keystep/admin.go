package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/skip2/go-qrcode"
	"github.com/spf13/cobra"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
)

const (
	defaultServer    = "http://127.0.0.1:8080"
	defaultTokenFile = defaultDataDir + "/" + adminTokenFile
	auditPage        = 1000
)

// adminFlags are the persistent flags of keystep admin.
type adminFlags struct {
	server    string
	tokenFile string
	json      bool
}

func (f *adminFlags) client(cmd *cobra.Command) (*adminclient.Client, error) {
	token, err := f.token(cmd)
	if err != nil {
		return nil, err
	}
	return adminclient.New(f.server, token)
}

// token reads the admin token: --token-file if given, else
// KEYSTEP_ADMIN_TOKEN if set, else the default token file.
func (f *adminFlags) token(cmd *cobra.Command) (string, error) {
	if !cmd.Flags().Changed("token-file") {
		if t, ok := os.LookupEnv("KEYSTEP_ADMIN_TOKEN"); ok && strings.TrimSpace(t) != "" {
			return strings.TrimSpace(t), nil
		}
	}
	t, err := readTokenFile(f.tokenFile)
	if err != nil {
		return "", fmt.Errorf("%w (give --token-file, set KEYSTEP_ADMIN_TOKEN, or run from the directory that holds %s)", err, defaultDataDir)
	}
	return t, nil
}

func (f *adminFlags) out(cmd *cobra.Command) output {
	return output{w: cmd.OutOrStdout(), json: f.json}
}

func newAdminCmd() *cobra.Command {
	f := &adminFlags{}
	cmd := group(&cobra.Command{
		Use:   "admin",
		Short: "Manage users, invitations, devices and the audit log of a keystep server",
	})
	addAdminFlags(cmd.PersistentFlags(), f)
	cmd.AddCommand(newUserCmd(f), newInviteCmd(f), newAdminDeviceCmd(f), newTestSignInCmd(f), newAuditCmd(f), newOverrideCmd(f), newKeysCmd(f))
	return cmd
}

func newUserCmd(f *adminFlags) *cobra.Command {
	cmd := group(&cobra.Command{Use: "user", Short: "Add, list, show, suspend, restore and remove users"})

	var nu api.NewUser
	add := &cobra.Command{
		Use:   "add NAME --email E [--phone P] [--display-name D]",
		Short: "Add a user",
		Args:  nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if nu.Email == "" {
				return usagef(cmd, "--email is required")
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			nu.Username = args[0]
			u, err := c.AddUser(cmd.Context(), nu)
			if err != nil {
				return err
			}
			return printUser(f.out(cmd), u)
		},
	}
	add.Flags().StringVar(&nu.Email, "email", "", "email `address` (required)")
	add.Flags().StringVar(&nu.Phone, "phone", "", "phone `number` in E.164 form, like +15551234567")
	add.Flags().StringVar(&nu.DisplayName, "display-name", "", "the `name` shown on the device")

	var state string
	var all bool
	list := &cobra.Command{
		Use:   "list [--state active|suspended|removed] [--all]",
		Short: "List users (active and suspended; --all adds removed ones)",
		Args:  nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			us, err := c.ListUsers(cmd.Context(), state, all)
			if err != nil {
				return err
			}
			o := f.out(cmd)
			if o.json {
				return o.object(api.UserList{Users: us})
			}
			tw := tabwriter.NewWriter(o.w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "USERNAME\tSTATE\tEMAIL\tDISPLAY NAME\tID")
			for _, u := range us {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Username, u.State, u.Email, u.DisplayName, u.ID)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&state, "state", "", "only users in this `state`")
	list.Flags().BoolVar(&all, "all", false, "include removed users")

	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a user",
		Args:  nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			u, err := c.GetUser(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printUser(f.out(cmd), u)
		},
	}
	cmd.AddCommand(add, list, show, newUnlockCmd(f))

	type changer func(*adminclient.Client, context.Context, string, string) (api.User, error)
	for _, sc := range []struct {
		verb, short string
		do          changer
	}{
		{"suspend", "Suspend a user: sign-ins are refused until restored", (*adminclient.Client).Suspend},
		{"restore", "Restore a suspended user", (*adminclient.Client).Restore},
		{"remove", "Remove a user: every device stops working and the account leaves the app", (*adminclient.Client).Remove},
	} {
		var reason string
		c := &cobra.Command{
			Use:   sc.verb + " NAME [--reason R]",
			Short: sc.short,
			Args:  nArgs("NAME"),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := f.client(cmd)
				if err != nil {
					return err
				}
				u, err := sc.do(c, cmd.Context(), args[0], reason)
				if err != nil {
					return err
				}
				return printUser(f.out(cmd), u)
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
		cmd.AddCommand(c)
	}
	return cmd
}

func printUser(o output, u api.User) error {
	if o.json {
		return o.object(u)
	}
	tw := tabwriter.NewWriter(o.w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "username:\t%s\n", u.Username)
	fmt.Fprintf(tw, "id:\t%s\n", u.ID)
	if u.DisplayName != "" {
		fmt.Fprintf(tw, "display name:\t%s\n", u.DisplayName)
	}
	fmt.Fprintf(tw, "email:\t%s\n", u.Email)
	if u.Phone != "" {
		fmt.Fprintf(tw, "phone:\t%s\n", u.Phone)
	}
	state := u.State + " (set by " + u.StateSource
	if u.StateReason != "" {
		state += ": " + u.StateReason
	}
	fmt.Fprintf(tw, "state:\t%s, %s)\n", state, u.StateChangedAt.Format(time.RFC3339))
	fmt.Fprintf(tw, "created:\t%s\n", u.CreatedAt.Format(time.RFC3339))
	printDefences(tw, u)
	return tw.Flush()
}

func newInviteCmd(f *adminFlags) *cobra.Command {
	var qr bool
	cmd := &cobra.Command{
		Use:   "invite NAME [--qr]",
		Short: "Make an enrollment invitation (revokes older ones) and print its link",
		Args:  nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			inv, err := c.Invite(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			o := f.out(cmd)
			if o.json {
				return o.object(inv)
			}
			o.textf("Invitation for %s, valid until %s:", inv.User, inv.ExpiresAt.Local().Format(time.RFC1123))
			o.textf("%s", inv.Link)
			if qr {
				code, err := qrcode.New(inv.Link, qrcode.Low)
				if err != nil {
					return fmt.Errorf("QR code: %w", err)
				}
				o.textf("\nScan it with the keystep app:\n%s", code.ToSmallString(false))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&qr, "qr", false, "also show the link as a QR code")
	return cmd
}

func newAdminDeviceCmd(f *adminFlags) *cobra.Command {
	cmd := group(&cobra.Command{Use: "device", Short: "List and unregister a user's devices"})
	list := &cobra.Command{
		Use:   "list NAME",
		Short: "List a user's devices",
		Args:  nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			dl, err := c.ListDevices(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			o := f.out(cmd)
			if o.json {
				return o.object(dl)
			}
			tw := tabwriter.NewWriter(o.w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATE\tENROLLED\tUNREGISTERED")
			for _, d := range dl.Devices {
				unreg := ""
				if !d.UnregisteredAt.IsZero() {
					unreg = d.UnregisteredAt.Format(time.RFC3339) + " (" + d.UnregisterReason + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.ID, d.Name, d.State, d.CreatedAt.Format(time.RFC3339), unreg)
			}
			return tw.Flush()
		},
	}
	var all bool
	var reason string
	unreg := &cobra.Command{
		Use:   "unregister NAME (DEVICE_ID | --all) --reason R",
		Short: "Unregister a device (a lost phone): its signatures are refused from now on",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 && !all || len(args) == 1 && all {
				return nil
			}
			return usagef(cmd, "give NAME and either a DEVICE_ID or --all")
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usagef(cmd, "--reason is required")
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			o := f.out(cmd)
			if all {
				n, err := c.UnregisterAll(cmd.Context(), args[0], reason)
				if err != nil {
					return err
				}
				if o.json {
					return o.object(api.UnregisterAllResult{Unregistered: n})
				}
				o.textf("Unregistered %d device(s) of %s.", n, args[0])
				return nil
			}
			d, err := c.UnregisterDevice(cmd.Context(), args[0], args[1], reason)
			if err != nil {
				return err
			}
			if o.json {
				return o.object(d)
			}
			o.textf("Unregistered device %s of %s.", d.ID, args[0])
			return nil
		},
	}
	unreg.Flags().BoolVar(&all, "all", false, "unregister every device of the user")
	unreg.Flags().StringVar(&reason, "reason", "", "why (required), for the audit log")
	cmd.AddCommand(list, unreg)
	return cmd
}

// challengeLine and outcomeLine are test-signin's JSON lines.
type challengeLine struct {
	Event     string    `json:"event"`
	ID        string    `json:"id"`
	Number    string    `json:"number,omitempty"`
	QRPayload string    `json:"qr_payload,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

type outcomeLine struct {
	Event  string `json:"event"`
	ID     string `json:"id"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

func newTestSignInCmd(f *adminFlags) *cobra.Command {
	var method string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "test-signin NAME [--method push|qr|sms|email|override] [--timeout DUR]",
		Short: "Start a sign-in for a user and wait for the decision (exit 0 only if approved)",
		Long: `Start a sign-in for a user, as a sign-in page would, and wait for the decision;
exit 0 only if it is approved.

With --method push or qr the phone decides. With --method sms or email the
server sends the user a code, and the code is read from standard input; with
--method override the override code is read from standard input.`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var methods []string
			switch method {
			case "":
			case "push", "qr":
				methods = []string{method}
			case "sms", "email", "override":
				return codeTestSignIn(cmd, f, args[0], method)
			default:
				return usagef(cmd, "--method must be push, qr, sms, email or override, not %q", method)
			}
			if timeout < 0 {
				return usagef(cmd, "--timeout must not be negative")
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			ch, err := c.TestSignIn(ctx, args[0], methods...)
			if err != nil {
				return err
			}
			o := f.out(cmd)
			if o.json {
				if err := o.object(challengeLine{Event: "challenge", ID: ch.ID, Number: ch.Number, QRPayload: ch.QRPayload, ExpiresAt: ch.ExpiresAt}); err != nil {
					return err
				}
			} else {
				o.textf("Sign-in %s for %s started; it expires at %s.", ch.ID, args[0], ch.ExpiresAt.Local().Format(time.TimeOnly))
				if ch.Number != "" {
					o.textf("Number to match: %s", ch.Number)
				}
				if ch.QRPayload != "" {
					o.textf("QR payload: %s", ch.QRPayload)
				}
				o.textf("Waiting for the decision…")
			}
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			s, err := c.WaitSignIn(ctx, ch.ID, adminclient.MaxWait)
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				return err
			}
			out := outcomeLine{Event: "outcome", ID: ch.ID, Status: s.Status, Reason: s.Reason}
			if err != nil {
				out.Status, out.Reason = string(flows.StatusPending), "stopped waiting: "+err.Error()
			}
			if o.json {
				if err := o.object(out); err != nil {
					return err
				}
			} else if out.Status == string(flows.StatusApproved) {
				o.textf("approved (by %s on device %s)", s.DecidedBy, s.DeviceID)
			}
			switch {
			case out.Status == string(flows.StatusApproved):
				return nil
			case err != nil:
				return fmt.Errorf("sign-in %s is still pending: %w", ch.ID, err)
			case s.FraudReport:
				return fmt.Errorf("sign-in %s was %s: %s (the user reported it as not theirs)", ch.ID, s.Status, s.Reason)
			case s.Reason != "":
				return fmt.Errorf("sign-in %s was %s: %s", ch.ID, s.Status, s.Reason)
			default:
				return fmt.Errorf("sign-in %s was %s", ch.ID, s.Status)
			}
		},
	}
	cmd.Flags().StringVar(&method, "method", "", "the only method to open: push, qr, sms, email or override (default push and qr)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "stop waiting after this `duration` (default: until the sign-in is decided or expires)")
	return cmd
}

func newAuditCmd(f *adminFlags) *cobra.Command {
	var follow bool
	var after int64
	cmd := &cobra.Command{
		Use:   "audit [--follow] [--after N]",
		Short: "Print the audit log (--follow: wait for new events until interrupted)",
		Args:  nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if after < 0 {
				return usagef(cmd, "--after must not be negative")
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			o := f.out(cmd)
			var wait time.Duration
			for {
				evs, err := c.Audit(ctx, after, auditPage, "", wait)
				if err != nil {
					if follow && ctx.Err() != nil {
						return nil // interrupted
					}
					return err
				}
				for _, ev := range evs {
					if err := printAuditEvent(o, ev); err != nil {
						return err
					}
					after = ev.Seq
				}
				if len(evs) < auditPage { // caught up
					if !follow {
						return nil
					}
					wait = adminclient.MaxWait
				} else {
					wait = 0
				}
			}
		},
	}
	cmd.Flags().BoolVar(&follow, "follow", false, "keep waiting for new events")
	cmd.Flags().Int64Var(&after, "after", 0, "start after this sequence `number`")

	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain (exit 1 if it is broken)",
		Args:  nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			v, err := c.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			o := f.out(cmd)
			if o.json {
				if err := o.object(v); err != nil {
					return err
				}
			} else if v.OK {
				o.textf("audit log OK: %d events, chain intact", v.Events)
			}
			if !v.OK {
				return fmt.Errorf("audit log is BROKEN at event %d: %s (%d events before it check out)", v.BadSeq, v.Problem, v.Events)
			}
			return nil
		},
	}
	cmd.AddCommand(verify)
	return cmd
}

func printAuditEvent(o output, ev api.AuditEvent) error {
	if o.json {
		return o.object(ev)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s %s %s", ev.Seq, ev.Time.Format(time.RFC3339), ev.Actor, ev.Action)
	for _, kv := range [][2]string{{"account", ev.AccountID}, {"device", ev.DeviceID}, {"signin", ev.SignInID}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	if ev.Detail != "" {
		fmt.Fprintf(&b, " detail=%q", ev.Detail)
	}
	o.textf("%s", b.String())
	return nil
}
