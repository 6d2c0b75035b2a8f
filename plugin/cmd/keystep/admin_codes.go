package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
)

func newOverrideCmd(f *adminFlags) *cobra.Command {
	var ttl, reason string
	cmd := &cobra.Command{
		Use:   "override NAME [--ttl DUR] [--reason R]",
		Short: "Issue a one-time override code for a user without their phone (shown once)",
		Long: `Issue an administrative override code: the user signs in with it once, without
their phone. It expires after --ttl (default the server's, 1 hour; at most 7d),
after use, when a new code is issued, or when the account is suspended or
removed. The code is printed once, grouped for reading aloud; the server
keeps only a keyed hash of it.`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl != "" {
				if _, err := parseDuration(ttl); err != nil {
					return usagef(cmd, "--ttl %s", err)
				}
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			oc, err := c.IssueOverride(cmd.Context(), args[0], ttl, reason)
			if err != nil {
				return err
			}
			o := f.out(cmd)
			if o.json {
				return o.object(oc)
			}
			o.textf("Override code for %s, valid once until %s:", oc.User, oc.ExpiresAt.Local().Format(time.RFC1123))
			o.textf("")
			o.textf("    %s", oc.Code)
			o.textf("")
			o.textf("It is shown only now. Read it to the user; it replaces any earlier override code.")
			return nil
		},
	}
	cmd.Flags().StringVar(&ttl, "ttl", "", "how long the code lives, like 30m, 4h or 2d (default the server's)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	return cmd
}

func newUnlockCmd(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock NAME",
		Short: "Unlock a user's sign-in codes after too many wrong codes",
		Args:  nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			u, err := c.UnlockCodes(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printUser(f.out(cmd), u)
		},
	}
}

// printDefences adds the user's code lock and push block to printUser.
func printDefences(tw *tabwriter.Writer, u api.User) {
	switch {
	case u.CodesLocked && u.CodesLockedUntil.IsZero():
		fmt.Fprintf(tw, "codes:\tlocked after %d wrong codes, until unlocked (keystep admin user unlock)\n", u.FailedCodes)
	case u.CodesLocked:
		fmt.Fprintf(tw, "codes:\tlocked after %d wrong codes, until %s (or keystep admin user unlock)\n", u.FailedCodes, u.CodesLockedUntil.Format(time.RFC3339))
	case u.FailedCodes > 0:
		fmt.Fprintf(tw, "codes:\t%d wrong code(s) since the last success\n", u.FailedCodes)
	}
	if !u.PushBlockedUntil.IsZero() {
		fmt.Fprintf(tw, "push:\tblocked after a fraud report until %s\n", u.PushBlockedUntil.Format(time.RFC3339))
	}
}

// codeSentLine is test-signin's JSON line for a code sent.
type codeSentLine struct {
	Event       string    `json:"event"`
	ID          string    `json:"id"`
	Channel     string    `json:"channel"`
	To          string    `json:"to"`
	ExpiresAt   time.Time `json:"expires_at"`
	ResendAfter time.Time `json:"resend_after"`
}

// maxCodeLine bounds the line of standard input read as a code.
const maxCodeLine = 256

// codeTestSignIn runs a test sign-in decided by a code: it starts the
// sign-in, has the server send an SMS or email code (not for override),
// reads the code from standard input, submits it, and succeeds only if the
// sign-in is approved.
func codeTestSignIn(cmd *cobra.Command, f *adminFlags, user, method string) error {
	c, err := f.client(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	o := f.out(cmd)
	ch, err := c.TestSignIn(ctx, user, method)
	if err != nil {
		return err
	}
	if o.json {
		if err := o.object(challengeLine{Event: "challenge", ID: ch.ID, ExpiresAt: ch.ExpiresAt}); err != nil {
			return err
		}
	} else {
		o.textf("Sign-in %s for %s started; it expires at %s.", ch.ID, user, ch.ExpiresAt.Local().Format(time.TimeOnly))
	}
	prompt := "Override code: "
	if method != "override" {
		sent, err := c.SendCode(ctx, ch.ID, method)
		if err != nil {
			return err
		}
		if o.json {
			if err := o.object(codeSentLine{Event: "code_sent", ID: ch.ID, Channel: sent.Channel, To: sent.To, ExpiresAt: sent.ExpiresAt, ResendAfter: sent.ResendAfter}); err != nil {
				return err
			}
		} else {
			o.textf("A code was sent by %s to %s; it expires at %s.", sent.Channel, sent.To, sent.ExpiresAt.Local().Format(time.TimeOnly))
		}
		prompt = "Code sent to " + sent.To + ": "
	}
	in := cmd.InOrStdin()
	if isTerminal(in) {
		fmt.Fprint(cmd.ErrOrStderr(), prompt)
	}
	code, err := readCode(in)
	if err != nil {
		return err
	}
	s, err := c.SubmitCode(ctx, ch.ID, code)
	out := outcomeLine{Event: "outcome", ID: ch.ID, Status: s.Status, Reason: s.Reason}
	if err != nil {
		out.Status, out.Reason = string(flows.StatusPending), codeRefusal(err)
		if p, ok := adminclient.AsProblem(err); ok && p.Type == api.ProblemAlreadyDecided {
			out.Status = "decided"
		}
	}
	if o.json {
		if jerr := o.object(out); jerr != nil {
			return jerr
		}
	} else if err == nil && s.Status == string(flows.StatusApproved) {
		o.textf("approved (by %s code)", s.DecidedBy)
	}
	switch {
	case err != nil:
		return fmt.Errorf("sign-in %s refused the code: %s", ch.ID, out.Reason)
	case s.Status != string(flows.StatusApproved):
		return fmt.Errorf("sign-in %s was %s: %s", ch.ID, s.Status, s.Reason)
	}
	return nil
}

// codeRefusal says why a code was refused, with what to do about it.
func codeRefusal(err error) string {
	p, ok := adminclient.AsProblem(err)
	if !ok {
		return err.Error()
	}
	switch p.Type {
	case api.ProblemLocked:
		return "the account's codes are locked: " + p.Detail + " (keystep admin user unlock NAME lifts it)"
	case api.ProblemWrongCode:
		return p.Detail
	}
	if p.Detail != "" {
		return p.Title + ": " + p.Detail
	}
	return p.Title
}

// readCode reads one line from r as a code.
func readCode(r io.Reader) (string, error) {
	line, err := bufio.NewReaderSize(io.LimitReader(r, maxCodeLine+1), maxCodeLine+1).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the code: %w", err)
	}
	if len(line) > maxCodeLine {
		return "", fmt.Errorf("read the code: the line is longer than %d bytes", maxCodeLine)
	}
	code := strings.TrimSpace(line)
	if code == "" {
		return "", errors.New("no code on standard input")
	}
	return code, nil
}

// isTerminal reports whether r is a terminal (to prompt on stderr).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
