// Package browsertest is the headless-Chromium harness of keystep's browser
// tests: the real Chromium of the Debian package, tabs that record their
// console and their main-frame navigations, waits that end on what the
// browser reports (never on sleeps), and screenshots kept in the artifacts
// directory.
package browsertest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package puts the browser.
const ChromiumPath = "/usr/bin/chromium"

// Wait bounds each wait on the browser: a hang guard, never a
// synchronisation (every wait ends on what the browser reports).
const Wait = 30 * time.Second

// startConfig is what Start's options set.
type startConfig struct {
	who           string
	width, height int
}

// StartOption changes how Start starts the browser.
type StartOption func(*startConfig)

// WindowSize sets the browser window's size in pixels (1000×800 unless
// set).
func WindowSize(width, height int) StartOption {
	return func(c *startConfig) { c.width, c.height = width, height }
}

// For names the tests that need the browser, in the failure Start reports
// when Chromium is missing ("the browser tests" unless set).
func For(who string) StartOption {
	return func(c *startConfig) { c.who = who }
}

// Start starts one headless Chromium (at ChromiumPath) for the test and
// returns its context; each tab opened from it gets a browser context of
// its own (its own cookies). The browser stops when the test ends. Without
// Chromium the test fails: it never skips.
func Start(t testing.TB, opts ...StartOption) context.Context {
	t.Helper()
	cfg := startConfig{who: "the browser tests", width: 1000, height: 800}
	for _, o := range opts {
		o(&cfg)
	}
	if fi, err := os.Stat(ChromiumPath); err != nil || fi.IsDir() {
		t.Fatalf("%s need Chromium at %s: install the Debian package chromium "+
			"(apt-get install -y chromium, as root), as scripts/test.sh does (%v)", cfg.who, ChromiumPath, err)
	}
	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(cfg.width, cfg.height),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser; its context must have no deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", ChromiumPath, err)
	}
	return ctx
}

// Navigation is one document the tab's main frame committed.
type Navigation struct {
	URL   string // with LocationBar, for an error page: the URL that could not be loaded
	Error bool   // with LocationBar: the browser showed its error page (nothing answered)
}

// tabConfig is what OpenTab's options set.
type tabConfig struct {
	noJS        bool
	locationBar bool
}

// TabOption changes how OpenTab opens a tab.
type TabOption func(*tabConfig)

// NoJS disables the page's scripts (DevTools can still inspect the page).
func NoJS() TabOption { return func(c *tabConfig) { c.noJS = true } }

// LocationBar records each navigation's URL as the location bar shows it:
// with its fragment, and for the browser's error page the URL that could
// not be loaded (Navigation.Error set). Without it a navigation is the
// frame's URL, without its fragment.
func LocationBar() TabOption { return func(c *tabConfig) { c.locationBar = true } }

// Tab is one browser tab in a fresh browser context. It records every
// console message, browser log entry and main-frame navigation.
type Tab struct {
	t   testing.TB
	ctx context.Context
	cfg tabConfig

	mu      sync.Mutex
	console []string     // "level: text" of every message
	csp     []string     // the messages about a Content Security Policy
	navs    []Navigation // main-frame navigations, in order
	changed chan struct{}
}

// OpenTab opens a tab of browser (from Start) in a new browser context.
// When the test ends the tab is closed, and a Content Security Policy
// violation reported in its console fails the test; when the test failed,
// the console and the navigations are logged.
func OpenTab(t testing.TB, browser context.Context, opts ...TabOption) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	tb := &Tab{t: t, ctx: ctx, changed: make(chan struct{})}
	for _, o := range opts {
		o(&tb.cfg)
	}
	t.Cleanup(func() {
		cancel()
		tb.mu.Lock()
		defer tb.mu.Unlock()
		if len(tb.csp) > 0 {
			t.Errorf("Content Security Policy violations in the console:\n%s", strings.Join(tb.csp, "\n"))
		}
		if t.Failed() {
			t.Logf("browser console:\n%s", strings.Join(tb.console, "\n"))
			t.Logf("navigations: %+v", tb.navs)
		}
	})
	if err := chromedp.Listen(ctx, tb.event); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	if tb.cfg.noJS {
		tb.Do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
	}
	return tb
}

// Context is the tab's chromedp context.
func (tb *Tab) Context() context.Context { return tb.ctx }

// event records one event of the tab. It runs on the tab's reading
// goroutine: it must not block or call the browser.
func (tb *Tab) event(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *log.EventEntryAdded:
		msg = fmt.Sprintf("%s (%s): %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text)
		if ev.Entry.URL != "" {
			msg += " [" + ev.Entry.URL + "]"
		}
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			if a.Description != "" {
				parts = append(parts, a.Description)
			} else {
				parts = append(parts, strings.Trim(string(a.Value), `"`))
			}
		}
		msg = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(parts, " "))
	case *runtime.EventExceptionThrown:
		msg = "exception: " + ev.ExceptionDetails.Text
		if e := ev.ExceptionDetails.Exception; e != nil {
			msg += " " + e.Description
		}
	case *page.EventFrameNavigated:
		if ev.Frame.ParentID != "" {
			return
		}
		n := Navigation{URL: ev.Frame.URL}
		if tb.cfg.locationBar {
			n.URL += ev.Frame.URLFragment
			if ev.Frame.UnreachableURL != "" {
				n = Navigation{URL: ev.Frame.UnreachableURL, Error: true}
			}
		}
		tb.mu.Lock()
		tb.navs = append(tb.navs, n)
		tb.signal()
		tb.mu.Unlock()
		return
	default:
		return
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.console = append(tb.console, msg)
	if strings.Contains(msg, "Content Security Policy") || strings.Contains(msg, "Content-Security-Policy") {
		tb.csp = append(tb.csp, msg)
	}
	tb.signal()
}

// signal wakes the waiters; tb.mu is held.
func (tb *Tab) signal() {
	close(tb.changed)
	tb.changed = make(chan struct{})
}

// changedCh is the channel closed on the tab's next recorded event.
func (tb *Tab) changedCh() <-chan struct{} {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.changed
}

// Do runs actions on the tab within Wait; an error fails the test.
func (tb *Tab) Do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, Wait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

// Run runs one action on the tab within Wait and returns its value; an
// error fails the test.
func Run[T any](tb *Tab, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, Wait)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
	return v
}

// Eval evaluates a JavaScript expression in the page within Wait and
// returns its value; an error fails the test.
func Eval[T any](tb *Tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, Wait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("browser: %s: %v", expr, err)
	}
	return v
}

// Mark is the number of navigations so far, for WaitNavigation.
func (tb *Tab) Mark() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return len(tb.navs)
}

// WaitNavigation waits, within d, for a main-frame navigation after the
// from'th (see Mark) to a URL that starts with prefix, and returns that
// URL. With LocationBar it is what the location bar shows: for the
// browser's error page (nothing listens there), the URL that failed to
// load.
func (tb *Tab) WaitNavigation(from int, prefix string, d time.Duration) *url.URL {
	tb.t.Helper()
	guard := time.NewTimer(d)
	defer guard.Stop()
	for {
		tb.mu.Lock()
		for _, n := range tb.navs[from:] {
			if strings.HasPrefix(n.URL, prefix) {
				tb.mu.Unlock()
				u, err := url.Parse(n.URL)
				if err != nil {
					tb.t.Fatalf("navigation to %q: %v", n.URL, err)
				}
				return u
			}
		}
		navs := append([]Navigation(nil), tb.navs[from:]...)
		ch := tb.changed
		tb.mu.Unlock()
		select {
		case <-ch:
		case <-guard.C:
			tb.t.Fatalf("the tab did not go to %s within %s; it went to %+v (now at %s)", prefix, d, navs, tb.TargetURL())
		}
	}
}

// Location is the URL of the tab's current history entry, the one its
// location bar shows: for the browser's error page, the URL that failed.
// It does not fail the test: an error is described in the result.
func (tb *Tab) Location() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	h, err := chromedp.Run(ctx, chromedp.NavigationEntries())
	if err != nil {
		return fmt.Sprintf("(unknown: %v)", err)
	}
	if h.CurrentIndex < 0 || int(h.CurrentIndex) >= len(h.Entries) {
		return "(no history entry)"
	}
	return h.Entries[h.CurrentIndex].URL
}

// TargetURL is the URL of the tab's target, as the browser lists it. It
// does not fail the test: an error is described in the result.
func (tb *Tab) TargetURL() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	c := chromedp.FromContext(tb.ctx)
	if c == nil || c.Target == nil || c.Browser == nil {
		return "(no target)"
	}
	res, err := cdp.Call(ctx, c.Browser, target.GetTargetInfo, target.GetTargetInfoParams{TargetID: c.Target.TargetID})
	if err != nil || res.TargetInfo == nil {
		return fmt.Sprintf("(unknown: %v)", err)
	}
	return res.TargetInfo.URL
}

// WaitCSPReport waits, within d, for a Content Security Policy message in
// the console, returns the first one and forgets the ones seen (they were
// expected, so they do not fail the test).
func (tb *Tab) WaitCSPReport(d time.Duration) string {
	tb.t.Helper()
	guard := time.NewTimer(d)
	defer guard.Stop()
	for {
		tb.mu.Lock()
		if len(tb.csp) > 0 {
			msg := tb.csp[0]
			tb.csp = nil
			tb.mu.Unlock()
			return msg
		}
		ch := tb.changed
		tb.mu.Unlock()
		select {
		case <-ch:
		case <-guard.C:
			tb.mu.Lock()
			console := strings.Join(tb.console, "\n")
			tb.mu.Unlock()
			tb.t.Fatalf("no Content Security Policy message in the console within %s:\n%s", d, console)
		}
	}
}

// CSPViolations returns the Content Security Policy messages so far.
func (tb *Tab) CSPViolations() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.csp...)
}

// Console returns the tab's console messages and browser log entries so
// far, one line each.
func (tb *Tab) Console() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.console...)
}

// WaitJS waits, within d, until the JavaScript expression is truthy in the
// tab's current document and returns its value; poll sets how it is polled
// (chromedp.Poll's options). Navigations in between (the page moving on by
// itself) are waited through: the expression is polled again in the new
// document once the browser reports something new.
func WaitJS[T any](tb *Tab, expr string, d time.Duration, poll ...chromedp.PollOption) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, d)
	defer cancel()
	for {
		changed := tb.changedCh()
		v, err := chromedp.Run(ctx, chromedp.Poll[T](expr, poll...))
		if err == nil {
			return v
		}
		if ctx.Err() != nil {
			tb.t.Fatalf("waited %s for %s at %s: %v", d, expr, tb.Location(), err)
		}
		// The document went away while polling (the page moved on): poll
		// the next one once the browser reports something new.
		retry := time.NewTimer(100 * time.Millisecond)
		select {
		case <-changed:
		case <-retry.C:
		case <-ctx.Done():
		}
		retry.Stop()
	}
}

// Screenshot saves a full-page PNG of the tab as name in ArtifactsDir.
func (tb *Tab) Screenshot(name string) {
	tb.t.Helper()
	png := Run(tb, chromedp.FullScreenshot(100))
	dir := ArtifactsDir(tb.t)
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// ArtifactsDir is where the browser tests keep their screenshots, made if
// missing: $KEYSTEP_TEST_ARTIFACTS, else the directory artifacts of the
// test's package (go test runs in the package's directory).
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KEYSTEP_TEST_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	return dir
}
