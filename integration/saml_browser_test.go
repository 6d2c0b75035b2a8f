package integration

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/keystep/keystep/internal/browsertest"
)

// TestSAMLInChromium signs in to a SAML app through keystep in a real
// headless Chromium, as a user does, across sites: the app (on localhost)
// posts its signed AuthnRequest to keystep (on 127.0.0.1), a cross-site
// POST, and keystep's step page must still work with its strict cookies
// (SameSite=Lax is enough: the request itself needs no cookie, and the
// step page is reached by a top-level GET). The phone approves, the page
// moves on by itself, posts the assertion back across sites to the app,
// and the app opens its page for alice. No CSP violation is allowed.
func TestSAMLInChromium(t *testing.T) {
	browser := startChromium(t)
	app := newSAMLAppOn(t, false, "localhost")
	cfg := writeConfig(t,
		"saml:",
		"  service_providers:",
		"    - id: portal",
		"      entity_id: "+app.entityID,
		"      name: Example portal",
		"      metadata_file: "+app.metadataFile,
	)
	srv, _ := startLoggedServer(t, "--config", cfg)
	app.trustIdP(srv)
	w := walk{t: t, srv: srv, dir: t.TempDir()}
	w.addUser("alice", "alice@example.com")
	w.enroll("alice", "phone.json")

	tb := openTab(t, browser, false)
	from := tb.Mark()
	tb.Do(chromedp.Navigate(app.url + "/login?user=alice"))
	tb.WaitNavigation(from, srv.URL+"/step/", browserWait)
	if h := waitJS[string](tb, `(document.querySelector("h1") || {}).textContent || ""`, browserWait); h != "Example portal wants you to sign in" {
		t.Fatalf("step page heading %q", h)
	}
	number := strings.TrimSpace(browsertest.Run(tb.Tab, chromedp.Text(chromedp.CSS(selNumber))))
	if !numberRE.MatchString(number) {
		t.Fatalf("the step page shows the number %q", number)
	}
	tb.Screenshot("saml-step-pending.png")

	from = tb.Mark()
	var pend pendingList
	ok(t, &pend, w.device("phone.json", "pending")...)
	if len(pend.Requests) != 1 || pend.Requests[0].Client != "Example portal" {
		t.Fatalf("the phone shows %+v, want one request from Example portal", pend)
	}
	ok(t, nil, w.device("phone.json", "approve", pend.Requests[0].ID, "--number", number)...)
	tb.WaitNavigation(from, app.url+"/app", browserWait)
	body := waitJS[string](tb, `document.body ? document.body.innerText : ""`, browserWait)
	if !strings.Contains(body, `"subject":"alice"`) {
		t.Fatalf("the app's page after sign-in: %q", body)
	}
	tb.Screenshot("saml-app-signed-in.png")
}
