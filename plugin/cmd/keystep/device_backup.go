package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/keystep/keystep/provider/authenticator"
)

// envBackupPassphrase gives the backup passphrase to scripts.
const envBackupPassphrase = "KEYSTEP_BACKUP_PASSPHRASE"

// maxPassphraseFile bounds a --passphrase-file.
const maxPassphraseFile = 4 << 10

// readPassphrase returns the backup passphrase from --passphrase-file,
// else from KEYSTEP_BACKUP_PASSPHRASE, else by asking on the terminal
// (twice with confirm, so a typo cannot lock a backup away).
func readPassphrase(cmd *cobra.Command, file string, confirm bool) (string, error) {
	if file != "" {
		return readPassphraseFile(file)
	}
	if p, ok := os.LookupEnv(envBackupPassphrase); ok && p != "" {
		return p, nil
	}
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return "", fmt.Errorf("no passphrase: give --passphrase-file FILE, set %s, or run on a terminal to type it", envBackupPassphrase)
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(cmd.ErrOrStderr(), prompt)
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", fmt.Errorf("read passphrase: %w", err)
		}
		return string(b), nil
	}
	p, err := ask("Backup passphrase: ")
	if err != nil || !confirm {
		return p, err
	}
	if err := authenticator.CheckPassphrase(p); err != nil {
		return "", err
	}
	again, err := ask("Type it again: ")
	if err != nil {
		return "", err
	}
	if again != p {
		return "", errors.New("the two passphrases differ; nothing was written")
	}
	return p, nil
}

// readPassphraseFile reads a passphrase file: its content less one final
// line break.
func readPassphraseFile(path string) (string, error) {
	b, err := readSmallFile(path, maxPassphraseFile)
	if err != nil {
		return "", fmt.Errorf("passphrase file: %w", err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return "", fmt.Errorf("passphrase file %s is empty", path)
	}
	return string(b), nil
}

// readSmallFile reads a regular file of at most limit bytes.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// writeNewFile writes b to a file that must not exist yet, with mode 0600;
// on failure it leaves no file behind.
func writeNewFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; a backup never overwrites a file: choose another name or remove it", path)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// backupAccount is an account in the JSON output of backup and restore.
type backupAccount struct {
	Server           string `json:"server"`
	Username         string `json:"username"`
	AccountID        string `json:"account_id"`
	DeviceID         string `json:"device_id,omitempty"`
	ReplacedDeviceID string `json:"replaced_device_id,omitempty"`
	State            string `json:"state,omitempty"` // restore: restored | failed
	Detail           string `json:"detail,omitempty"`
}

func newBackupCmd(f *deviceFlags) *cobra.Command {
	var out, passFile string
	cmd := &cobra.Command{
		Use:   "backup --out FILE [--passphrase-file F]",
		Short: "Write an encrypted backup of this device's accounts and keys (for moving to a new phone)",
		Long: `Writes every account enrolled on this device, with its private key, to FILE
(mode 0600), encrypted under a passphrase of at least 10 characters (Argon2id,
AES-256-GCM). The passphrase is asked twice on a terminal, or read from
--passphrase-file or ` + envBackupPassphrase + `. Keep the file and the passphrase
apart from this device; on the new one, run keystep device restore FILE --state NEW.`,
		Args: nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef(cmd, "--out is required: the file to write the backup to")
			}
			a, err := f.open()
			if err != nil {
				return err
			}
			es, err := a.Enrollments()
			if err != nil {
				return err
			}
			if len(es) == 0 {
				return errors.New("no account is enrolled on this device; there is nothing to back up")
			}
			if _, err := os.Lstat(out); err == nil {
				return fmt.Errorf("%s exists; a backup never overwrites a file: choose another name or remove it", out)
			}
			pass, err := readPassphrase(cmd, passFile, true)
			if err != nil {
				return err
			}
			blob, err := a.Backup(pass)
			if err != nil {
				return err
			}
			if err := writeNewFile(out, blob); err != nil {
				return fmt.Errorf("write backup: %w", err)
			}
			o := f.out(cmd)
			if o.json {
				accts := make([]backupAccount, 0, len(es))
				for _, e := range es {
					accts = append(accts, backupAccount{Server: e.Server, Username: e.Username, AccountID: e.AccountID, DeviceID: e.DeviceID})
				}
				return o.object(map[string]any{"file": out, "accounts": accts})
			}
			o.textf("Backed up %d account(s) to %s.", len(es), out)
			o.textf("Keep it and its passphrase apart from this device. On the new one: keystep device restore %s --state NEW", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the `file` to write (must not exist)")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "read the passphrase from this `file` (env "+envBackupPassphrase+")")
	return cmd
}

func newRestoreCmd(f *deviceFlags) *cobra.Command {
	var passFile string
	cmd := &cobra.Command{
		Use:   "restore FILE --state NEW [--passphrase-file F]",
		Short: "Set this device up from a backup: every account moves to new keys here, and the old device stops working",
		Long: `Restores a backup made with keystep device backup into a state file with no
enrollments yet (--state). For each account it makes a new key and asks the
server, signing with the backed-up key, to move the account to it; the old
device is unregistered by that. A wrong passphrase changes nothing. An account
whose old device was already unregistered (a lost phone) cannot be restored:
ask your IT administrator for a new invitation.`,
		Args: nArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := f.open()
			if err != nil {
				return err
			}
			if es, err := a.Enrollments(); err != nil {
				return err
			} else if len(es) > 0 {
				return fmt.Errorf("%s already holds %d enrollment(s); restore into a new state file with --state", f.state, len(es))
			}
			blob, err := readSmallFile(args[0], authenticator.MaxBackupSize)
			if err != nil {
				return fmt.Errorf("read backup: %w", err)
			}
			pass, err := readPassphrase(cmd, passFile, false)
			if err != nil {
				return err
			}
			res, err := a.Restore(cmd.Context(), blob, pass)
			if len(res) == 0 {
				if errors.Is(err, authenticator.ErrWrongPassphrase) {
					return fmt.Errorf("%w — nothing was changed", err)
				}
				return hinted(err)
			}
			failed := 0
			accts := make([]backupAccount, 0, len(res))
			for _, r := range res {
				l := backupAccount{Server: r.Old.Server, Username: r.Old.Username, AccountID: r.Old.AccountID, ReplacedDeviceID: r.Old.DeviceID}
				if r.Err != nil {
					l.State, l.Detail = "failed", hinted(r.Err).Error()
					failed++
				} else {
					l.State, l.DeviceID = "restored", r.New.DeviceID
				}
				accts = append(accts, l)
			}
			o := f.out(cmd)
			if o.json {
				if err := o.object(map[string]any{"state": f.state, "accounts": accts}); err != nil {
					return err
				}
			} else {
				for _, l := range accts {
					if l.State == "restored" {
						o.textf("Restored %s at %s: device %s replaces %s.", l.Username, l.Server, l.DeviceID, l.ReplacedDeviceID)
					} else {
						o.textf("Not restored: %s", l.Detail)
					}
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d accounts could not be restored", failed, len(accts))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "read the passphrase from this `file` (env "+envBackupPassphrase+")")
	return cmd
}
