package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// testSample is how many users keystep directory test shows.
const testSample = 10

// directoryFlags are the flags of the commands that work on the
// configuration and the store directly (test, sync), as keystep serve does.
type directoryFlags struct {
	config string
	data   string
	source string
	json   bool
}

// load reads the configuration as keystep serve does: the file, the
// KEYSTEP_* environment, then --data.
func (f *directoryFlags) load(cmd *cobra.Command) (Config, error) {
	var flags []flagOverride
	if cmd.Flags().Changed("data") {
		flags = append(flags, flagOverride{key: "data_dir", flag: "data", value: f.data})
	}
	return loadConfig(f.config, os.LookupEnv, flags)
}

// sources returns the configured sources, or the one --source names.
func (f *directoryFlags) sources(cfg Config, lookupEnv func(string) (string, bool)) ([]directory.SourceConfig, error) {
	if len(cfg.Directory.Sources) == 0 {
		where := "the configuration"
		if f.config != "" {
			where = f.config
		} else {
			where += " (none given: --config FILE)"
		}
		return nil, fmt.Errorf("%s has no directory sources (directory.sources); see docs/directory.md", where)
	}
	if f.source == "" {
		return cfg.directorySources(lookupEnv)
	}
	// Only the named source's secrets are read: another's missing
	// environment variable is no reason to refuse this one.
	var names []string
	for i, s := range cfg.Directory.Sources {
		if s.Name == f.source {
			sc, err := s.resolve(lookupEnv)
			if err != nil {
				return nil, fmt.Errorf("config: directory.sources: source %d (%s): %w", i+1, s.Name, err)
			}
			return []directory.SourceConfig{sc}, nil
		}
		names = append(names, s.Name)
	}
	return nil, fmt.Errorf("no directory source is named %q (configured: %s)", f.source, strings.Join(names, ", "))
}

func (f *directoryFlags) out(cmd *cobra.Command) output {
	return output{w: cmd.OutOrStdout(), json: f.json}
}

// cliLogger is the log of the directory commands: warnings and errors on
// stderr (the results go to stdout).
func cliLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newDirectoryCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "directory",
		Short: "Test, run and watch the directory (LDAP / Active Directory) sync",
		Long: `The company directory (LDAP / Active Directory) decides who may sign in: keystep
serve keeps the accounts in step with the sources under directory.sources in
the configuration file (docs/directory.md).

  keystep directory test     bind, count the users, show how the first few map (changes nothing)
  keystep directory sync     run a full sync now, in this process, on the configured store
  keystep directory status   each source's sync status, from a running server (admin API)
  keystep directory trigger  ask a running server to start a full sync now`,
	})
	cmd.AddCommand(newDirectoryTestCmd(), newDirectorySyncCmd(), newDirectoryStatusCmd(), newDirectoryTriggerCmd())
	return cmd
}

func newDirectoryTestCmd() *cobra.Command {
	f := &directoryFlags{}
	cmd := &cobra.Command{
		Use:   "test [--source NAME] [--config FILE]",
		Short: "Check a directory source: bind, count the users, show the first few as keystep would map them",
		Long: `Check each directory source (or the one --source names): connect and bind as
keystep would, say which incremental sync the server offers, count the users
the search returns and how many could not be mapped, and show the first ` + fmt.Sprint(testSample) + `
users with the state each would get.

It changes nothing and does not open keystep's store. It fails (exit status 1)
when a source cannot be reached, refuses the bind, or returns no users (a full
sync would then stop at the mass-removal guard).`,
		Args: nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			srcs, err := f.sources(cfg, os.LookupEnv)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return directoryTest(ctx, srcs, f.out(cmd), cliLogger(cmd.ErrOrStderr()))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "YAML configuration `file`")
	fl.StringVar(&f.source, "source", "", "test only the source with this `name`")
	fl.BoolVar(&f.json, "json", false, "print JSON, one object per source")
	return cmd
}

// directoryTestResult is one source's test, as --json prints it.
type directoryTestResult struct {
	Source   string                 `json:"source"`
	OK       bool                   `json:"ok"`
	Error    string                 `json:"error,omitempty"`
	Server   string                 `json:"server,omitempty"`
	Mode     string                 `json:"mode,omitempty"`
	Users    int                    `json:"users"`
	Skipped  int                    `json:"skipped"`
	Problems []string               `json:"problems,omitempty"`
	Sample   []flows.DirectoryEntry `json:"sample"`
}

// directoryTest tests each source in turn and prints what it found. It
// fails if any source failed.
func directoryTest(ctx context.Context, srcs []directory.SourceConfig, o output, log *slog.Logger) error {
	svc, err := noStoreService()
	if err != nil {
		return err
	}
	var errs []error
	for i, sc := range srcs {
		if i > 0 && !o.json {
			o.textf("")
		}
		src, err := directory.NewSource(sc, svc, directory.WithLogger(log))
		if err != nil {
			return err
		}
		rep, err := src.Test(ctx, testSample)
		res := directoryTestResult{Source: sc.Name, OK: err == nil, Server: rep.Server, Mode: rep.Mode,
			Users: rep.Entries, Skipped: rep.Skipped, Problems: rep.Problems, Sample: rep.Sample}
		if res.Sample == nil {
			res.Sample = []flows.DirectoryEntry{}
		}
		if err == nil && rep.Entries == 0 {
			err = fmt.Errorf("directory %s: the search returned no users; a full sync would stop at the mass-removal guard (check base_dn, user_filter, group and the bind account's rights)", sc.Name)
			res.OK = false
		}
		if err != nil {
			res.Error = err.Error()
			errs = append(errs, err)
		}
		if o.json {
			if err := o.object(res); err != nil {
				return err
			}
			continue
		}
		printTest(o, src.Config(), res)
	}
	return errors.Join(errs...)
}

// printTest prints one source's test as text.
func printTest(o output, cfg directory.SourceConfig, res directoryTestResult) {
	tw := tabwriter.NewWriter(o.w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "source:\t%s\n", res.Source)
	fmt.Fprintf(tw, "base DN:\t%s\n", cfg.BaseDN)
	if res.Server != "" {
		fmt.Fprintf(tw, "server:\t%s\n", res.Server)
	} else {
		fmt.Fprintf(tw, "servers:\t%s\n", strings.Join(cfg.URLs, " "))
	}
	if res.Mode != "" {
		fmt.Fprintf(tw, "incremental sync:\t%s\n", res.Mode)
	}
	if res.Server != "" {
		fmt.Fprintf(tw, "users:\t%d\n", res.Users)
		fmt.Fprintf(tw, "skipped:\t%d\n", res.Skipped)
	}
	if res.Error != "" {
		fmt.Fprintf(tw, "result:\tFAILED\n")
	} else {
		fmt.Fprintf(tw, "result:\tok\n")
	}
	_ = tw.Flush()
	if len(res.Problems) > 0 {
		o.textf("problems:")
		for _, p := range res.Problems {
			o.textf("  %s", p)
		}
	}
	if len(res.Sample) > 0 {
		o.textf("first %d users:", len(res.Sample))
		tw := tabwriter.NewWriter(o.w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tEMAIL\tPHONE\tDISPLAY NAME\tSTATE\tEXTERNAL ID")
		for _, e := range res.Sample {
			state := string(e.State)
			if e.Reason != "" {
				state += " (" + e.Reason + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Username, dash(e.Email), dash(e.Phone), dash(e.DisplayName), state, e.ExternalID)
		}
		_ = tw.Flush()
	}
}

// dash shows an empty value as "-".
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// syncFlags are keystep directory sync's own flags.
type syncFlags struct {
	dryRun   bool
	progress bool
	confirm  int
}

func newDirectorySyncCmd() *cobra.Command {
	f := &directoryFlags{}
	sf := &syncFlags{}
	cmd := &cobra.Command{
		Use:   "sync [--source NAME] [--dry-run] [--progress] [--confirm-removals N] [--config FILE] [--data DIR]",
		Short: "Run a full directory sync now, in this process, on the configured store",
		Long: `Run a full sync of each directory source (or the one --source names) now, in
this process, on the store the configuration names (as keystep serve opens
it), and print what it changed: new accounts, updates, suspensions,
restorations and removals.

--dry-run reads the directory and says what the sync would change, changing no
account. --progress shows the entries read, the rate and, once a full sync has
run before, the time left.

A sync that would remove more accounts than the source's max_removals allows
(or that finds no users at all) stops before it changes anything and fails.
When the departures are real, confirm them: --confirm-removals N lets up to N
removals through, for this run only.

While keystep serve runs on the same store, prefer keystep directory trigger:
one sync of a source at a time.`,
		Args: nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sf.confirm < 0 {
				return usagef(cmd, "--confirm-removals must not be negative")
			}
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			if sf.confirm > 0 && f.source == "" && len(cfg.Directory.Sources) > 1 {
				return usagef(cmd, "--confirm-removals confirms the removals of one source: name it with --source")
			}
			srcs, err := f.sources(cfg, os.LookupEnv)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var progress io.Writer
			tty := false
			if sf.progress {
				progress = cmd.ErrOrStderr()
				if file, ok := progress.(*os.File); ok {
					tty = term.IsTerminal(int(file.Fd()))
				}
			}
			return directorySync(ctx, cfg, srcs, *sf, f.out(cmd), progress, tty, cliLogger(cmd.ErrOrStderr()))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "YAML configuration `file`")
	fl.StringVar(&f.data, "data", defaultDataDir, "data `directory` (SQLite database, code key)")
	fl.StringVar(&f.source, "source", "", "sync only the source with this `name`")
	fl.BoolVar(&f.json, "json", false, "print JSON, one report per source")
	fl.BoolVar(&sf.dryRun, "dry-run", false, "say what the sync would change, and change nothing")
	fl.BoolVar(&sf.progress, "progress", false, "show the progress on stderr")
	fl.IntVar(&sf.confirm, "confirm-removals", 0, "let up to `N` removals through the mass-removal guard")
	return cmd
}

// directorySync opens the store as keystep serve does and runs a full sync
// of each source in turn, printing each report. A source that fails does
// not stop the next; the error says which failed.
func directorySync(ctx context.Context, cfg Config, srcs []directory.SourceConfig, sf syncFlags, o output, progress io.Writer, tty bool, log *slog.Logger) error {
	svc, closeAll, err := openSyncService(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeAll()
	var errs []error
	for i, sc := range srcs {
		if i > 0 && !o.json {
			o.textf("")
		}
		src, err := directory.NewSource(sc, svc, directory.WithLogger(log))
		if err != nil {
			return err
		}
		opts := directory.SyncOptions{DryRun: sf.dryRun, ConfirmRemovals: sf.confirm}
		var bar *progressBar
		if progress != nil {
			bar = &progressBar{w: progress, tty: tty, name: sc.Name}
			opts.Progress = bar.update
		}
		rep, err := src.FullSyncLeased(ctx, opts)
		bar.done()
		if o.json {
			if jerr := o.object(syncReport(sc.Name, rep, err)); jerr != nil {
				return jerr
			}
		} else {
			printSyncReport(o, sc.Name, rep, err)
		}
		switch {
		case err == nil:
		case errors.Is(err, directory.ErrGuard):
			errs = append(errs, guardError(sc.Name, rep, sf.dryRun))
		default:
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// guardError says that the guard stopped a sync, and how to go on.
func guardError(source string, rep directory.RunReport, dry bool) error {
	msg := fmt.Sprintf("directory %s: the mass-removal guard stopped the sync: %s; nothing was changed", source, rep.Guard)
	if rep.Removed > 0 {
		again := "run the sync again"
		if dry {
			again = "run keystep directory sync"
		}
		msg += fmt.Sprintf(". If these %d accounts really left the directory (or its scope), %s with --source %s --confirm-removals %d; otherwise check base_dn, user_filter, group and the bind account's rights", rep.Removed, again, source, rep.Removed)
	} else {
		msg += ". Check base_dn, user_filter, group and the bind account's rights (keystep directory test shows what the search returns)"
	}
	return errors.New(msg)
}

// syncReportJSON is one source's sync, as --json prints it.
type syncReportJSON struct {
	Source string              `json:"source"`
	OK     bool                `json:"ok"`
	Error  string              `json:"error,omitempty"`
	Report directory.RunReport `json:"report"`
}

func syncReport(source string, rep directory.RunReport, err error) syncReportJSON {
	out := syncReportJSON{Source: source, OK: err == nil, Report: rep}
	if err != nil {
		out.Error = err.Error()
	}
	return out
}

// printSyncReport prints what one sync did (or would do).
func printSyncReport(o output, source string, rep directory.RunReport, err error) {
	head := "directory " + source + ": full sync"
	if rep.Server != "" {
		head += " from " + rep.Server
	}
	switch {
	case errors.Is(err, directory.ErrGuard):
		head += ": STOPPED by the mass-removal guard; nothing was changed"
	case err != nil:
		head += ": FAILED; nothing more was changed"
	case rep.DryRun:
		head += fmt.Sprintf(" (dry run, %s): nothing was changed; the sync would do this", rep.Duration().Round(time.Millisecond))
	default:
		head += fmt.Sprintf(" in %s", rep.Duration().Round(time.Millisecond))
	}
	o.textf("%s", head)
	tw := tabwriter.NewWriter(o.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(label string, n int) { fmt.Fprintf(tw, "  %s\t%d\t\n", label, n) }
	row("entries read", rep.Entries)
	row("unchanged", rep.Unchanged)
	row("created", rep.Created)
	row("updated", rep.Updated)
	row("suspended", rep.Suspended)
	row("restored", rep.Restored)
	row("removed", rep.Removed)
	row("skipped", rep.Skipped)
	row("conflicts", rep.Conflicts)
	row("failed", rep.Failed)
	_ = tw.Flush()
	if rep.Guard != "" {
		o.textf("  guard: %s", rep.Guard)
	}
	if len(rep.Problems) > 0 {
		o.textf("  problems:")
		for _, p := range rep.Problems {
			o.textf("    %s", p)
		}
	}
}

// openSyncService opens the configured store and builds the flows service
// as keystep serve does (senders for invitations and admin alerts, the
// code key), for a sync in this process. The SQLite database must exist
// already: a sync into a new, empty one is a mistake of --data.
func openSyncService(ctx context.Context, cfg Config, log *slog.Logger) (*flows.Service, func(), error) {
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	if cfg.Store.Driver != "postgres" {
		path := cfg.Store.DSN
		if path == "" {
			path = filepath.Join(dataDir, sqliteFile)
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("no keystep database at %s: give the data directory of the server (--data, data_dir, KEYSTEP_DATA_DIR) or its --config", path)
		}
	}
	senders, pusher, err := cfg.buildSenders()
	if err != nil {
		return nil, nil, err
	}
	store, _, err := openStore(ctx, cfg, dataDir)
	if err != nil {
		return nil, nil, err
	}
	codeKey, _, _, err := cfg.codeKey(dataDir)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	fc := cfg.flowsConfig(cliPublicURL(cfg))
	fc.CodeKey = codeKey
	opts, err := cfg.codeOptions(senders)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	if pusher != nil {
		opts = append(opts, flows.WithPushSender(pusher))
	}
	svc, err := flows.New(store, fc, append(opts, flows.WithLogger(log))...)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return svc, func() { svc.Close(); store.Close() }, nil
}

// cliPublicURL is the server's public URL as a command without a listener
// can tell it: public_url, else http://<listen address> (localhost for an
// address that listens on every interface), as keystep serve makes it.
func cliPublicURL(cfg Config) string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return "http://" + cfg.Listen
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// progressBar shows a full sync's progress: on a terminal, one line
// rewritten in place (entries read, entries/s and, when the size is known
// from the last full sync, a bar and the time left); elsewhere a line at
// each tenth of the way, when the size is known, else nothing.
type progressBar struct {
	w    io.Writer
	tty  bool
	name string

	lastLen   int // the length of the line on the terminal
	lastTenth int // the last tenth printed off a terminal
	drawn     bool
}

// barWidth is the bar's width in characters.
const barWidth = 24

// update shows p. A nil bar shows nothing.
func (b *progressBar) update(p directory.Progress) {
	if b == nil {
		return
	}
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(p.Entries) / s
	}
	if !b.tty {
		if p.Expected <= 0 {
			return
		}
		tenth := min(10, p.Entries*10/p.Expected)
		if tenth <= b.lastTenth {
			return
		}
		b.lastTenth = tenth
		fmt.Fprintf(b.w, "%s: %d%% (%d of about %d entries, %.0f entries/s)\n", b.name, tenth*10, p.Entries, p.Expected, rate)
		return
	}
	line := fmt.Sprintf("%s: %d entries read, %.0f/s", b.name, p.Entries, rate)
	if p.Expected > 0 {
		frac := min(1, float64(p.Entries)/float64(p.Expected))
		full := int(frac * barWidth)
		line = fmt.Sprintf("%s [%s%s] %3.0f%%", line, strings.Repeat("#", full), strings.Repeat(".", barWidth-full), frac*100)
		if rate > 0 && p.Entries < p.Expected {
			eta := time.Duration(float64(p.Expected-p.Entries) / rate * float64(time.Second))
			line += ", ETA " + eta.Round(time.Second).String()
		}
	}
	pad := ""
	if n := b.lastLen - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(b.w, "\r%s%s", line, pad)
	b.lastLen, b.drawn = len(line), true
}

// done ends the progress line on a terminal.
func (b *progressBar) done() {
	if b != nil && b.tty && b.drawn {
		fmt.Fprintln(b.w)
	}
}

func newDirectoryStatusCmd() *cobra.Command {
	f := &adminFlags{}
	cmd := &cobra.Command{
		Use:   "status [--server URL] [--token-file FILE]",
		Short: "Show each directory source's sync status, from a running server",
		Long: `Show each directory source's sync status as the running server keeps it (admin
API, GET /admin/v1/directory): its health (ok, failing, guard, never), the
incremental sync in use, the last full sync and what it changed, the last
change applied, and the last failure.`,
		Args: nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			list, err := c.DirectoryStatus(cmd.Context())
			if err != nil {
				return err
			}
			o := f.out(cmd)
			if o.json {
				return o.object(list)
			}
			if len(list.Sources) == 0 {
				o.textf("the server has no directory sources")
				return nil
			}
			for i, st := range list.Sources {
				if i > 0 {
					o.textf("")
				}
				printDirectoryStatus(o, st, time.Now())
			}
			return nil
		},
	}
	addAdminFlags(cmd.Flags(), f)
	return cmd
}

func newDirectoryTriggerCmd() *cobra.Command {
	f := &adminFlags{}
	confirm := 0
	cmd := &cobra.Command{
		Use:   "trigger SOURCE [--confirm-removals N] [--server URL] [--token-file FILE]",
		Short: "Ask a running server to start a full sync of a directory source now",
		Long: `Ask the running server to start a full sync of the source now (admin API,
POST /admin/v1/directory/{source}/sync). It returns at once; keystep directory
status shows the result. After the mass-removal guard stopped a sync, check
what it would remove (keystep directory sync --dry-run), then confirm with
--confirm-removals N: that one sync may remove up to N accounts.`,
		Args: nArgs("SOURCE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if confirm < 0 {
				return usagef(cmd, "--confirm-removals must not be negative")
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			res, err := c.TriggerDirectorySync(cmd.Context(), args[0], confirm)
			if err != nil {
				return err
			}
			o := f.out(cmd)
			if o.json {
				return o.object(res)
			}
			o.textf("directory %s: a full sync starts now; keystep directory status shows its result", res.Source)
			return nil
		},
	}
	cmd.Flags().IntVar(&confirm, "confirm-removals", 0, "let this sync remove up to N accounts past the mass-removal guard")
	addAdminFlags(cmd.Flags(), f)
	return cmd
}

// addAdminFlags adds keystep admin's flags to fl: --server, --token-file
// and --json.
func addAdminFlags(fl *pflag.FlagSet, f *adminFlags) {
	server := defaultServer
	if s := os.Getenv("KEYSTEP_SERVER"); s != "" {
		server = s
	}
	fl.StringVar(&f.server, "server", server, "server `URL` (env KEYSTEP_SERVER)")
	fl.StringVar(&f.tokenFile, "token-file", defaultTokenFile, "admin token `file` (or env KEYSTEP_ADMIN_TOKEN)")
	fl.BoolVar(&f.json, "json", false, "print JSON")
}

// printDirectoryStatus prints one source's status.
func printDirectoryStatus(o output, st api.DirectoryStatus, now time.Time) {
	tw := tabwriter.NewWriter(o.w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "source:\t%s\n", st.Source)
	fmt.Fprintf(tw, "health:\t%s\n", healthText(st.Health))
	if st.Mode != "" {
		fmt.Fprintf(tw, "incremental sync:\t%s\n", st.Mode)
	}
	if st.Server != "" {
		fmt.Fprintf(tw, "server:\t%s\n", st.Server)
	}
	if r := st.LastFull; r != nil {
		fmt.Fprintf(tw, "last full sync:\t%s\n", runSummary(*r, now))
	} else {
		fmt.Fprintf(tw, "last full sync:\tnone yet\n")
	}
	if r := st.Incremental; r != nil {
		fmt.Fprintf(tw, "incremental since:\t%s\n", runCounts(*r))
	}
	if !st.LastChange.IsZero() {
		fmt.Fprintf(tw, "last change:\t%s\n", ago(st.LastChange, now))
	}
	if st.Guard != "" {
		fmt.Fprintf(tw, "guard:\t%s\n", st.Guard)
	}
	if st.LastError != "" {
		fmt.Fprintf(tw, "last error:\t%s (%d in a row, %s)\n", st.LastError, st.Failures, ago(st.LastErrorAt, now))
	}
	if !st.NextRetry.IsZero() && st.Health == directory.HealthFailing {
		fmt.Fprintf(tw, "next retry:\t%s\n", st.NextRetry.Local().Format(time.DateTime))
	}
	_ = tw.Flush()
}

// healthText explains a source's health.
func healthText(h string) string {
	switch h {
	case directory.HealthOK:
		return "ok"
	case directory.HealthFailing:
		return "failing: the directory does not answer; accounts keep their last known states"
	case directory.HealthGuard:
		return "guard: the mass-removal guard stopped a sync; nothing was changed (keystep directory sync --dry-run shows why)"
	case directory.HealthNever:
		return "never: no sync has finished yet"
	}
	return h
}

// runSummary is one line about a run: when, how long, what it did.
func runSummary(r api.DirectoryRun, now time.Time) string {
	s := ago(r.Started, now)
	if !r.Finished.IsZero() {
		s += ", took " + r.Finished.Sub(r.Started).Round(time.Millisecond).String()
	}
	if r.Guard != "" {
		s += ", stopped by the guard"
	}
	return s + ": " + runCounts(r)
}

// runCounts says what a run did.
func runCounts(r api.DirectoryRun) string {
	parts := []string{fmt.Sprintf("%d entries", r.Entries)}
	for _, c := range []struct {
		n    int
		what string
	}{{r.Created, "created"}, {r.Updated, "updated"}, {r.Suspended, "suspended"}, {r.Restored, "restored"},
		{r.Removed, "removed"}, {r.Skipped, "skipped"}, {r.Conflicts, "conflicts"}, {r.Failed, "failed"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return strings.Join(parts, ", ")
}

// ago shows a time and how long ago it was.
func ago(t, now time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.DateTime), d)
}
