package integration

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// browserWait bounds each wait on the browser: a hang guard, never a
// synchronisation (every wait ends on what the browser reports).
const browserWait = 30 * time.Second

// startChromium starts one headless Chromium for the test and returns its
// context; each tab opened from it gets a browser context of its own (its
// own cookies). The browser stops when the test ends. Without Chromium the
// test fails: it never skips.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	if fi, err := os.Stat(chromiumPath); err != nil || fi.IsDir() {
		t.Fatalf("the step page browser tests need Chromium at %s: install the Debian package chromium "+
			"(apt-get install -y chromium, as root), as scripts/test.sh does (%v)", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 800),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser; its context must have no deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	return ctx
}

// navigation is one document the tab's main frame committed.
type navigation struct {
	URL   string // for an error page, the URL that could not be loaded
	Error bool   // the browser showed its error page (nothing answered)
}

// tab is one browser tab in a fresh browser context. It records every
// console message, browser log entry and main-frame navigation.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []string     // "level: text" of every message
	csp     []string     // the messages about a Content Security Policy
	navs    []navigation // main-frame navigations, in order
	changed chan struct{}
}

// openTab opens a tab in a new browser context. With noJS the page's
// scripts are disabled (DevTools can still inspect the page). When the test
// ends the tab is closed, and a Content Security Policy violation reported
// in its console fails the test.
func openTab(t *testing.T, browser context.Context, noJS bool) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	tb := &tab{t: t, ctx: ctx, changed: make(chan struct{})}
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
	if noJS {
		tb.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
	}
	return tb
}

// event records one event of the tab. It runs on the tab's reading
// goroutine: it must not block or call the browser.
func (tb *tab) event(ev any) {
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
		n := navigation{URL: ev.Frame.URL + ev.Frame.URLFragment}
		if ev.Frame.UnreachableURL != "" {
			n = navigation{URL: ev.Frame.UnreachableURL, Error: true}
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
func (tb *tab) signal() {
	close(tb.changed)
	tb.changed = make(chan struct{})
}

// do runs actions on the tab within browserWait.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

// run runs one action on the tab within browserWait and returns its value.
func run[T any](tb *tab, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
	return v
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	return run(tb, chromedp.Evaluate[T](expr))
}

// mark is the number of navigations so far, for waitNavigation.
func (tb *tab) mark() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return len(tb.navs)
}

// waitNavigation waits, within d, for a main-frame navigation after the
// from'th to a URL that starts with prefix, and returns that URL. It is
// what the location bar shows: for the browser's error page (nothing
// listens there), the URL that failed to load.
func (tb *tab) waitNavigation(from int, prefix string, d time.Duration) *url.URL {
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
		navs := append([]navigation(nil), tb.navs[from:]...)
		ch := tb.changed
		tb.mu.Unlock()
		select {
		case <-ch:
		case <-guard.C:
			tb.t.Fatalf("the tab did not go to %s within %s; it went to %+v (now at %s)", prefix, d, navs, tb.targetURL())
		}
	}
}

// location is the URL of the tab's current history entry, the one its
// location bar shows: for the browser's error page, the URL that failed.
func (tb *tab) location() string {
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

// waitAnswer waits for the tab to go, after the from'th navigation, to
// the demo app's redirect URI, and for its location to show it; it returns
// that URL (the app's answer).
func (tb *tab) waitAnswer(from int) *url.URL {
	tb.t.Helper()
	u := tb.waitNavigation(from, demoRedirectURI, browserWait)
	// The location follows the navigation event: while the browser swaps
	// in its error page, the history cannot be read for a moment.
	deadline := time.Now().Add(browserWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		loc := tb.location()
		if loc == u.String() {
			return u
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("the tab navigated to %s but its location is %s", u, loc)
		}
		<-tick.C
	}
}

// targetURL is the URL of the tab's target, as the browser lists it.
func (tb *tab) targetURL() string {
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

// waitCSPReport waits, within d, for a Content Security Policy message in
// the console and forgets the ones seen (they were expected).
func (tb *tab) waitCSPReport(d time.Duration) string {
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
			tb.t.Fatalf("no Content Security Policy message in the console within %s:\n%s", d, strings.Join(tb.console, "\n"))
		}
	}
}

// cspViolations returns the Content Security Policy messages so far.
func (tb *tab) cspViolations() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.csp...)
}

// waitJS waits, within d, until the JavaScript expression is truthy in the
// tab's current document and returns its value. Navigations in between
// (the page moving on by itself) are waited through: the expression is
// polled again in the new document.
func waitJS[T any](tb *tab, expr string, d time.Duration) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, d)
	defer cancel()
	for {
		tb.mu.Lock()
		changed := tb.changed
		tb.mu.Unlock()
		v, err := chromedp.Run(ctx, chromedp.Poll[T](expr,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(0)))
		if err == nil {
			return v
		}
		if ctx.Err() != nil {
			tb.t.Fatalf("waited %s for %s at %s: %v", d, expr, tb.location(), err)
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

// waitHeading waits, within d, for the page's h1 to hold want and returns
// the whole heading.
func (tb *tab) waitHeading(want string, d time.Duration) string {
	tb.t.Helper()
	return waitJS[string](tb, fmt.Sprintf(`(() => {
		const h = document.querySelector("h1");
		return h && h.textContent.includes(%q) ? h.textContent : "";
	})()`, want), d)
}

// screenshot saves a full-page PNG of the tab as name in the artifacts
// directory.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	png := run(tb, chromedp.FullScreenshot(100))
	dir := artifactsDir(tb.t)
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// artifactsDir is where the browser tests keep their screenshots:
// $KEYSTEP_TEST_ARTIFACTS, else integration/artifacts.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("KEYSTEP_TEST_ARTIFACTS")
	if dir == "" {
		dir = "artifacts" // go test runs in the package's directory
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	return dir
}

// demoAuthorizeURL is the authorization request the demo app makes for
// user, with PKCE (S256) and state.
func demoAuthorizeURL(t *testing.T, srv server, user, state string) string {
	t.Helper()
	verifier := make([]byte, 32)
	if _, err := rand.Read(verifier); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(base64.RawURLEncoding.EncodeToString(verifier)))
	q := url.Values{
		"client_id":             {demoClientID},
		"redirect_uri":          {demoRedirectURI},
		"response_type":         {"code"},
		"scope":                 {"openid"},
		"state":                 {state},
		"login_hint":            {user},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	return srv.URL + "/authorize?" + q.Encode()
}

// phoneRequest returns the one request pending on the state file's
// device and checks that it names the demo app.
func (w walk) phoneRequest(state string) string {
	w.t.Helper()
	var pend pendingList
	ok(w.t, &pend, w.device(state, "pending")...)
	if len(pend.Requests) != 1 {
		w.t.Fatalf("pending requests on %s: %+v, want exactly one", state, pend)
	}
	if pend.Requests[0].Client != demoClientName {
		w.t.Errorf("the phone shows the request from %q, want %q", pend.Requests[0].Client, demoClientName)
	}
	return pend.Requests[0].ID
}

// a11yProblems runs the accessibility smoke checks on the tab's page:
// html lang, a label for every input, a name for every button, alt text
// for every image, one h1, a title, and the number (when shown) inside an
// aria-live region.
func a11yProblems(tb *tab) []string {
	tb.t.Helper()
	return eval[[]string](tb, `(() => {
		const problems = [];
		const lang = document.documentElement.getAttribute("lang");
		if (!lang || !lang.trim()) problems.push("the html element has no lang");
		if (!document.title.trim()) problems.push("the page has no title");
		if (document.querySelectorAll("h1").length !== 1) problems.push("the page has not exactly one h1");
		for (const el of document.querySelectorAll("input, select, textarea")) {
			if (el.type === "hidden") continue;
			const named = (el.labels && el.labels.length > 0 && el.labels[0].textContent.trim()) ||
				el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
			if (!named) problems.push("input " + (el.id || el.name) + " has no label");
		}
		for (const b of document.querySelectorAll("button")) {
			if (!b.textContent.trim() && !b.getAttribute("aria-label")) problems.push("a button has no name");
		}
		for (const img of document.querySelectorAll("img")) {
			if (!img.getAttribute("alt")) problems.push("an image has no alt text");
		}
		const n = document.querySelector("strong.number");
		if (n && !n.closest("[aria-live]")) problems.push("the number is in no aria-live region");
		return problems;
	})()`)
}
