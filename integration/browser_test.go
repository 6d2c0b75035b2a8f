package integration

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keystep/keystep/internal/browsertest"
	"github.com/keystep/keystep/internal/smtptest"
)

// The step page's words the tests look for (provider/steppage/strings.go).
const (
	stepHeading     = demoClientName + " wants you to sign in"
	deniedHeading   = "Sign-in denied"
	expiredHeading  = "Sign-in timed out"
	codeHeading     = "Enter your code"
	overrideHeading = "Enter your override code"
)

// Selectors of the step page's controls (provider/steppage/templates/page.html).
const (
	selNumber     = "strong.number"
	selContinue   = "form#continue button[type=submit]"
	selReturn     = `form[action$="/abort"] button[type=submit]`
	selRetry      = `form[action$="/retry"] button[type=submit]`
	selEmailMe    = `form[action$="/send"]:has(input[name=channel][value=email]) button[type=submit]`
	selOverride   = `a[href$="?enter=code"]`
	selCodeInput  = "form.code input#code"
	selSubmitCode = "form.code button[type=submit]"
)

// numberRE is the shape of the number to match on the phone.
var numberRE = regexp.MustCompile(`^\d{2,}$`)

// expiryDeadline bounds the wait, from the step page's load, for the page
// to show by itself that a 10 s sign-in timed out: the event stream
// re-reads the sign-in every 2 s.
const expiryDeadline = 15 * time.Second

// TestStepPageInChromium drives the hosted step page in a real headless
// Chromium against the real `keystep serve`, as the demo client's user
// does: the page moves on by itself (step.js and the event stream) when the
// phone approves or denies and when the sign-in times out; the email and
// override codes sign in; without JavaScript Continue does; the page passes
// accessibility smoke checks, and its strict Content-Security-Policy is
// never violated (any CSP message in a tab's console fails the test). Each
// state the user sees is saved as a screenshot in $KEYSTEP_TEST_ARTIFACTS
// (default integration/artifacts).
//
// The demo app itself does not run: nothing listens on its redirect URI,
// so the browser ends on its error page for that URL, which is the URL the
// test reads.
func TestStepPageInChromium(t *testing.T) {
	browser := startChromium(t)

	// One server for the scenarios with the default configuration. They
	// push to alice several times within ten minutes: the push limit is
	// raised so that none falls back to QR only.
	cfg := writeConfig(t, "push:", "  limit: 100", "  window: 10m", "oidc:", "  demo_client: true")
	shared := walk{t: t, srv: startServer(t, "--config", cfg), dir: t.TempDir()}
	ok(t, nil, shared.admin("user", "add", "alice", "--email", "alice@example.com")...)
	shared.enroll("alice", "phone.json")
	on := func(t *testing.T) walk { w := shared; w.t = t; return w }

	t.Run("approve", func(t *testing.T) {
		w := on(t)
		tb := openTab(t, browser, false)
		tb.Do(chromedp.Navigate(demoAuthorizeURL(t, w.srv, "alice", "S")))
		number := checkStepPage(tb, w.srv)
		// The QR code is an image that loaded.
		width := waitJS[int](tb, `(() => {
			const img = document.querySelector("figure.qr img");
			return img && img.complete ? img.naturalWidth : 0;
		})()`, browserWait)
		if width <= 0 {
			t.Fatalf("the QR image did not load (naturalWidth %d)", width)
		}
		tb.Screenshot("step-pending.png")

		// The phone approves; the page moves on by itself to the app.
		id := w.phoneRequest("phone.json")
		from := tb.Mark()
		ok(t, nil, w.device("phone.json", "approve", id, "--number", number)...)
		checkCode(t, tb.waitAnswer(from), w.srv, "S")
	})

	t.Run("deny", func(t *testing.T) {
		w := on(t)
		tb := openTab(t, browser, false)
		tb.Do(chromedp.Navigate(demoAuthorizeURL(t, w.srv, "alice", "S-deny")))
		checkStepPage(tb, w.srv)
		ok(t, nil, w.device("phone.json", "deny", w.phoneRequest("phone.json"))...)
		// The page moves on by itself to the denied message.
		tb.waitHeading(deniedHeading, browserWait)
		if n := browsertest.Eval[int](tb.Tab, `document.querySelectorAll("strong.number").length`); n != 0 {
			t.Errorf("the denied page still shows the number")
		}
		tb.Screenshot("step-denied.png")

		from := tb.Mark()
		if label := browsertest.Run(tb.Tab, chromedp.Text(chromedp.CSS(selReturn))); label != "Return to "+demoClientName {
			t.Errorf("the return button says %q", label)
		}
		tb.Do(chromedp.Click(chromedp.CSS(selReturn)))
		answer := tb.waitAnswer(from)
		q := answer.Query()
		if q.Get("error") != "access_denied" || q.Get("state") != "S-deny" || q.Has("code") {
			t.Fatalf("the app got %s, want error=access_denied and state=S-deny without a code", answer)
		}
	})

	t.Run("override code", func(t *testing.T) {
		w := on(t)
		var oc struct{ Code string }
		ok(t, &oc, w.admin("override", "alice", "--reason", "phone at home")...)
		if oc.Code == "" {
			t.Fatal("admin override printed no code")
		}
		tb := openTab(t, browser, false)
		tb.Do(chromedp.Navigate(demoAuthorizeURL(t, w.srv, "alice", "S-override")))
		checkStepPage(tb, w.srv)
		from := tb.Mark()
		tb.Do(chromedp.Click(chromedp.CSS(selOverride)))
		tb.WaitNavigation(from, w.srv.URL+"/step/", browserWait)
		tb.waitHeading(overrideHeading, browserWait)
		if p := a11yProblems(tb); len(p) > 0 {
			t.Errorf("accessibility of the override code page: %q", p)
		}
		tb.Do(chromedp.SendKeys(chromedp.CSS(selCodeInput), oc.Code))
		tb.Screenshot("step-override.png")
		from = tb.Mark()
		tb.Do(chromedp.Click(chromedp.CSS(selSubmitCode)))
		checkCode(t, tb.waitAnswer(from), w.srv, "S-override")
		// The phone's request was settled by the code.
		var pend pendingList
		ok(t, &pend, w.device("phone.json", "pending")...)
		if len(pend.Requests) != 0 {
			t.Errorf("the phone still has requests after the override code: %+v", pend)
		}
	})

	t.Run("no JavaScript", func(t *testing.T) {
		w := on(t)
		tb := openTab(t, browser, true)
		tb.Do(chromedp.Navigate(demoAuthorizeURL(t, w.srv, "alice", "S-nojs")))
		number := strings.TrimSpace(browsertest.Run(tb.Tab, chromedp.Text(chromedp.CSS(selNumber))))
		if !numberRE.MatchString(number) {
			t.Fatalf("number %q", number)
		}
		hint := browsertest.Run(tb.Tab, chromedp.Text(chromedp.CSS("form#continue p.hint")))
		if !strings.Contains(hint, "choose Continue") {
			t.Errorf("the page without JavaScript does not say to choose Continue: %q", hint)
		}
		tb.Screenshot("step-nojs.png")
		// Without JavaScript the page reloads itself (<noscript> refresh
		// every 5 s). Right after a reload there are 5 s before the next:
		// approve and press Continue in that window, so that no reload
		// swaps the page under the click.
		from := tb.Mark()
		tb.WaitNavigation(from, w.srv.URL+"/step/", 10*time.Second)
		id := w.phoneRequest("phone.json")
		ok(t, nil, w.device("phone.json", "approve", id, "--number", number)...)
		from = tb.Mark()
		tb.Do(chromedp.Click(chromedp.CSS(selContinue)))
		checkCode(t, tb.waitAnswer(from), w.srv, "S-nojs")
	})

	t.Run("accessibility", func(t *testing.T) {
		w := on(t)
		tb := openTab(t, browser, false)
		tb.Do(chromedp.Navigate(demoAuthorizeURL(t, w.srv, "alice", "S-a11y")))
		checkStepPage(tb, w.srv)
		if p := a11yProblems(tb); len(p) > 0 {
			t.Errorf("accessibility of the step page: %q", p)
		}
		if lang := browsertest.Eval[string](tb.Tab, `document.documentElement.lang`); lang != "en" {
			t.Errorf("html lang %q, want en", lang)
		}
		live := browsertest.Eval[string](tb.Tab, `document.querySelector("strong.number").closest("[aria-live]").getAttribute("aria-live")`)
		if live != "polite" && live != "assertive" {
			t.Errorf("the number's live region has aria-live=%q", live)
		}
		// The code page, where the one visible input is.
		from := tb.Mark()
		tb.Do(chromedp.Click(chromedp.CSS(selOverride)))
		tb.WaitNavigation(from, w.srv.URL+"/step/", browserWait)
		tb.waitHeading(overrideHeading, browserWait)
		if p := a11yProblems(tb); len(p) > 0 {
			t.Errorf("accessibility of the code page: %q", p)
		}
		if focused := browsertest.Eval[string](tb.Tab, `document.activeElement ? document.activeElement.id : ""`); focused != "code" {
			t.Errorf("the code page focuses %q, want the code input", focused)
		}
		if v := tb.CSPViolations(); len(v) > 0 {
			t.Fatalf("Content Security Policy violations: %q", v)
		}
		// The console listener does see a violation: an inline script,
		// which the policy forbids, is reported.
		tb.Do(chromedp.Evaluate[chromedp.Void](`(() => {
			const s = document.createElement("script");
			s.textContent = "window.inlineRan = true";
			document.body.appendChild(s);
		})()`))
		t.Logf("a deliberate inline script is reported: %s", tb.WaitCSPReport(browserWait))
		if browsertest.Eval[bool](tb.Tab, `window.inlineRan === true`) {
			t.Error("an inline script ran despite the Content-Security-Policy")
		}
		// Leave: Cancel returns to the app with access_denied.
		from = tb.Mark()
		tb.Do(chromedp.Click(chromedp.CSS(selReturn)))
		answer := tb.waitAnswer(from)
		if q := answer.Query(); q.Get("error") != "access_denied" || q.Get("state") != "S-a11y" {
			t.Fatalf("cancel: the app got %s", answer)
		}
	})

	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		cfg := writeConfig(t, "signin:", "  ttl: 10s", "oidc:", "  demo_client: true")
		w := walk{t: t, srv: startServer(t, "--config", cfg), dir: t.TempDir()}
		ok(t, nil, w.admin("user", "add", "alice", "--email", "alice@example.com")...)
		w.enroll("alice", "phone.json")

		tb := openTab(t, browser, false)
		tb.Do(chromedp.Navigate(demoAuthorizeURL(t, w.srv, "alice", "S-expired")))
		checkStepPage(tb, w.srv)
		first := w.phoneRequest("phone.json")
		// Nobody answers: the page moves on by itself to the timed-out
		// page once the 10 s sign-in has expired.
		tb.waitHeading(expiredHeading, expiryDeadline)
		tb.Screenshot("step-expired.png")

		// Try again: a new sign-in, with its number and a new request on
		// the phone, which the phone approves.
		from := tb.Mark()
		tb.Do(chromedp.Click(chromedp.CSS(selRetry)))
		tb.WaitNavigation(from, w.srv.URL+"/step/", browserWait)
		tb.waitHeading(stepHeading, browserWait)
		number := checkStepPage(tb, w.srv)
		second := w.phoneRequest("phone.json")
		if second == first {
			t.Fatalf("try again did not start a new sign-in (request %s)", first)
		}
		from = tb.Mark()
		ok(t, nil, w.device("phone.json", "approve", second, "--number", number)...)
		checkCode(t, tb.waitAnswer(from), w.srv, "S-expired")
	})

	t.Run("email code", func(t *testing.T) {
		t.Parallel()
		smtpSrv := smtptest.Start(t)
		pwFile := filepath.Join(t.TempDir(), "smtp-password")
		if err := os.WriteFile(pwFile, []byte(smtpSrv.Password), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := writeConfig(t,
			"smtp:",
			"  host: "+smtpSrv.Host,
			"  port: "+itoa(smtpSrv.Port),
			"  security: starttls",
			"  username: "+smtpSrv.Username,
			"  password_file: "+pwFile,
			"  from: keystep <keystep@example.com>",
			"  ca_file: "+smtpSrv.CAFile,
			"oidc:",
			"  demo_client: true",
		)
		w := walk{t: t, srv: startServer(t, "--config", cfg), dir: t.TempDir()}
		ok(t, nil, w.admin("user", "add", "alice", "--email", "alice@example.com")...)
		w.enroll("alice", "phone.json")

		tb := openTab(t, browser, false)
		tb.Do(chromedp.Navigate(demoAuthorizeURL(t, w.srv, "alice", "S-email")))
		checkStepPage(tb, w.srv)
		from := tb.Mark()
		tb.Do(chromedp.Click(chromedp.CSS(selEmailMe)))
		tb.WaitNavigation(from, w.srv.URL+"/step/", browserWait)
		tb.waitHeading(codeHeading, browserWait)
		sent := browsertest.Run(tb.Tab, chromedp.Text(chromedp.CSS("main")))
		if !strings.Contains(sent, "We sent a code to") || strings.Contains(sent, "alice@example.com") {
			t.Errorf("the code page should say where the code went, masked:\n%s", sent)
		}
		if p := a11yProblems(tb); len(p) > 0 {
			t.Errorf("accessibility of the email code page: %q", p)
		}
		tb.Screenshot("step-email-sent.png")

		_, body := mailTo(t, smtpSrv, 1, "alice@example.com")
		m := emailCode.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no code in the email:\n%s", body)
		}
		tb.Do(chromedp.SendKeys(chromedp.CSS(selCodeInput), m[1]))
		from = tb.Mark()
		tb.Do(chromedp.Click(chromedp.CSS(selSubmitCode)))
		checkCode(t, tb.waitAnswer(from), w.srv, "S-email")
	})
}

// checkStepPage checks that the tab shows the pending step page of srv for
// the demo app, with a number, and returns the number.
func checkStepPage(tb *tab, srv server) string {
	tb.t.Helper()
	if loc := browsertest.Run(tb.Tab, chromedp.Location()); !strings.HasPrefix(loc, srv.URL+"/step/") {
		tb.t.Fatalf("the browser is at %s, not the step page", loc)
	}
	if h := browsertest.Run(tb.Tab, chromedp.Text(chromedp.CSS("h1"))); h != stepHeading {
		tb.t.Fatalf("step page heading %q, want %q", h, stepHeading)
	}
	number := strings.TrimSpace(browsertest.Run(tb.Tab, chromedp.Text(chromedp.CSS(selNumber))))
	if !numberRE.MatchString(number) {
		tb.t.Fatalf("the step page shows the number %q", number)
	}
	return number
}

// checkCode checks the app's answer from srv: a code, the state the app
// sent, and the issuer.
func checkCode(t *testing.T, answer *url.URL, srv server, state string) {
	t.Helper()
	q := answer.Query()
	if q.Get("code") == "" || q.Get("state") != state || q.Has("error") {
		t.Fatalf("the app got %s, want a code and state=%s", answer, state)
	}
	if q.Get("iss") != srv.URL {
		t.Errorf("the answer's iss is %q, want the issuer %s (RFC 9207)", q.Get("iss"), srv.URL)
	}
	if answer.Scheme+"://"+answer.Host+answer.Path != demoRedirectURI {
		t.Fatalf("the answer went to %s, not %s", answer, demoRedirectURI)
	}
}
