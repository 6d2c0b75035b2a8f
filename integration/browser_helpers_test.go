package integration

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keystep/keystep/internal/browsertest"
)

// browserWait bounds each wait on the browser: a hang guard, never a
// synchronisation (every wait ends on what the browser reports).
const browserWait = browsertest.Wait

// startChromium starts one headless Chromium for the test (see
// browsertest.Start). Without Chromium the test fails: it never skips.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t, browsertest.For("the step page browser tests"))
}

// tab is one browser tab in a fresh browser context (a browsertest.Tab
// that records navigations as the location bar shows them), with the
// integration tests' own waits.
type tab struct {
	*browsertest.Tab
	t *testing.T
}

// openTab opens a tab in a new browser context. With noJS the page's
// scripts are disabled (DevTools can still inspect the page). When the test
// ends the tab is closed, and a Content Security Policy violation reported
// in its console fails the test.
func openTab(t *testing.T, browser context.Context, noJS bool) *tab {
	t.Helper()
	opts := []browsertest.TabOption{browsertest.LocationBar()}
	if noJS {
		opts = append(opts, browsertest.NoJS())
	}
	return &tab{Tab: browsertest.OpenTab(t, browser, opts...), t: t}
}

// waitAnswer waits for the tab to go, after the from'th navigation, to
// the demo app's redirect URI, and for its location to show it; it returns
// that URL (the app's answer).
func (tb *tab) waitAnswer(from int) *url.URL {
	tb.t.Helper()
	u := tb.WaitNavigation(from, demoRedirectURI, browserWait)
	// The location follows the navigation event: while the browser swaps
	// in its error page, the history cannot be read for a moment.
	deadline := time.Now().Add(browserWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		loc := tb.Location()
		if loc == u.String() {
			return u
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("the tab navigated to %s but its location is %s", u, loc)
		}
		<-tick.C
	}
}

// waitJS waits, within d, until the JavaScript expression is truthy in the
// tab's current document and returns its value, polling every 50ms (see
// browsertest.WaitJS).
func waitJS[T any](tb *tab, expr string, d time.Duration) T {
	tb.t.Helper()
	return browsertest.WaitJS[T](tb.Tab, expr, d,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(0))
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
	return browsertest.Eval[[]string](tb.Tab, `(() => {
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
