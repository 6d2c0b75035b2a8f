package steppage

import (
	"bufio"
	"bytes"
	"context"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

const wantCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self' https://rp.example; frame-ancestors 'none'; base-uri 'none'"

// checkPage checks the security headers of a page and that it holds no
// inline script, style or event handler.
func checkPage(t testing.TB, r response) {
	t.Helper()
	h := r.Header
	for k, v := range map[string]string{
		"Content-Security-Policy": wantCSP,
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := h.Get(k); got != v {
			t.Errorf("%s: header %s = %q, want %q", r.Request.URL.Path, k, got, v)
		}
	}
	checkNoInline(t, r.body)
}

var (
	scriptTag = regexp.MustCompile(`(?i)<script[^>]*>`)
	inlineBad = regexp.MustCompile(`(?i)<style|\sstyle=|\son[a-z]+=|javascript:`)
)

func checkNoInline(t testing.TB, body string) {
	t.Helper()
	for _, tag := range scriptTag.FindAllString(body, -1) {
		if !strings.Contains(tag, "src=") {
			t.Errorf("inline script: %s", tag)
		}
	}
	if m := inlineBad.FindString(body); m != "" {
		t.Errorf("inline style or handler: %q", m)
	}
	if !strings.Contains(body, `<html lang="en">`) && strings.Contains(body, "<html") {
		t.Errorf("no html lang")
	}
}

func TestStepPageShowsNumberAndQR(t *testing.T) {
	e := newEnv(t)
	a := e.addUser("jo")
	e.enroll("jo")
	id := e.newRequest(a, flows.MethodPush, flows.MethodQR, flows.MethodSMS, flows.MethodEmail, flows.MethodOverride)
	b := e.browser()
	r := b.get("/step/" + id)
	wantStatus(t, r, http.StatusOK)
	checkPage(t, r)
	sgn := e.signIn(id)
	if sgn.Status != flows.StatusPending || sgn.Number == "" {
		t.Fatalf("sign-in %+v", sgn)
	}
	wantText(t, r, "Payroll wants you to sign in", "We sent a request to your phone. Tap ", "to approve.",
		"Text me a code", "Email me a code", "I have an override code", "Continue", "Cancel")
	if !strings.Contains(r.body, `<strong class="number">`+sgn.Number+`</strong>`) {
		t.Errorf("number %s not shown:\n%s", sgn.Number, r.body)
	}
	if !strings.Contains(r.body, `aria-live="polite"`) {
		t.Error("the number is not in a live region")
	}
	if !strings.Contains(r.body, `<img src="/step/`+id+`/qr.png" alt="QR code to scan with the keystep app"`) {
		t.Errorf("no QR image:\n%s", r.body)
	}
	if !strings.Contains(r.body, `<noscript><meta http-equiv="refresh" content="5; url=/step/`+id+`"></noscript>`) {
		t.Errorf("no no-JS refresh:\n%s", r.body)
	}
	if !strings.Contains(r.body, `data-events="/step/`+id+`/events"`) {
		t.Error("no event stream for step.js")
	}
	// The sign-in is the request's, begun with the client's name.
	if sgn.Client != "Payroll" || sgn.AccountID != a.ID {
		t.Errorf("sign-in %+v", sgn)
	}
	// A reload shows the same sign-in: no new one is begun.
	r = b.get("/step/" + id)
	wantStatus(t, r, http.StatusOK)
	if got := e.signIn(id); got.ID != sgn.ID {
		t.Errorf("reload began a new sign-in %s (was %s)", got.ID, sgn.ID)
	}
	// Every label has its input, every control is a button.
	if strings.Contains(r.body, "<input type=\"submit\"") {
		t.Error("a submit input instead of a button")
	}
}

func TestQRCodePNG(t *testing.T) {
	e := newEnv(t)
	a := e.addUser("jo")
	e.enroll("jo")
	id := e.newRequest(a, flows.MethodPush, flows.MethodQR)
	b := e.browser()
	wantStatus(t, b.get("/step/"+id), http.StatusOK)
	r := b.get("/step/" + id + "/qr.png")
	wantStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "image/png" {
		t.Errorf("content type %q", ct)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("cache control %q", cc)
	}
	img, err := png.Decode(strings.NewReader(r.body))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Errorf("QR image is %v", b)
	}
}

func TestApproveThenFinish(t *testing.T) {
	e := newEnv(t)
	a := e.addUser("jo")
	p := e.enroll("jo")
	id := e.newRequest(a, flows.MethodPush, flows.MethodQR)
	b := e.browser()
	wantStatus(t, b.get("/step/"+id), http.StatusOK)

	// Continue before the phone decides: the step page again.
	r := b.post("/step/"+id+"/finish", nil)
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "The sign-in is still waiting for you.")
	checkPage(t, r)

	approved := e.decide(p, id, flows.DecisionApprove)
	r = b.post("/step/"+id+"/finish", nil)
	wantStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != completedURL {
		t.Errorf("redirect to %q", loc)
	}
	if csp := r.Header.Get("Content-Security-Policy"); csp != wantCSP {
		t.Errorf("CSP of the answer %q", csp)
	}
	done, refused := e.reqs.calls()
	if len(done) != 1 || done[0].id != id || done[0].sgn.ID != approved.ID || done[0].sgn.Status != flows.StatusApproved {
		t.Fatalf("Complete calls %+v", done)
	}
	if len(refused) != 0 {
		t.Errorf("Refuse calls %+v", refused)
	}
}

func TestApprovedPageContinuesByItself(t *testing.T) {
	e, _, p, id, b := startStep(t)
	e.decide(p, id, flows.DecisionApprove)
	r := b.get("/step/" + id)
	wantStatus(t, r, http.StatusOK)
	checkPage(t, r)
	wantText(t, r, "You're signed in", "Continue to Payroll.")
	if !strings.Contains(r.body, `data-auto="1"`) || strings.Contains(r.body, "http-equiv") {
		t.Errorf("approved page:\n%s", r.body)
	}
}

func TestDenyThenReturn(t *testing.T) {
	e, _, p, id, b := startStep(t)
	e.decide(p, id, flows.DecisionDeny)

	r := b.get("/step/" + id)
	wantStatus(t, r, http.StatusOK)
	checkPage(t, r)
	wantText(t, r, "You denied this sign-in.", "Try again", "Return to Payroll")
	if !strings.Contains(r.body, `name="reason" value="denied"`) {
		t.Errorf("no return with reason denied:\n%s", r.body)
	}
	// Continue on a denied sign-in shows the same outcome.
	r = b.post("/step/"+id+"/finish", nil)
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "You denied this sign-in.")

	r = b.post("/step/"+id+"/abort", url.Values{"reason": {"denied"}})
	wantStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != refusedURL {
		t.Errorf("redirect to %q", loc)
	}
	done, refused := e.reqs.calls()
	if len(done) != 0 || len(refused) != 1 || refused[0] != (refusal{id, RefusedDenied}) {
		t.Fatalf("calls: complete %+v, refuse %+v", done, refused)
	}
}

func TestFraudReportPage(t *testing.T) {
	e, _, p, id, b := startStep(t)
	e.decide(p, id, flows.DecisionReport)
	r := b.get("/step/" + id)
	wantText(t, r, "You reported that you didn't start this sign-in. It was stopped, and your IT administrator has been told.")
	// A forged reason cannot hide the denial: the sign-in says why.
	r = b.post("/step/"+id+"/abort", url.Values{"reason": {"locked"}})
	wantStatus(t, r, http.StatusSeeOther)
	if _, refused := e.reqs.calls(); len(refused) != 1 || refused[0].reason != RefusedDenied {
		t.Fatalf("refuse %+v", refused)
	}
}

func TestCancelOnStepPage(t *testing.T) {
	e, _, _, id, b := startStep(t)
	r := b.post("/step/"+id+"/abort", url.Values{"reason": {"cancelled"}})
	wantStatus(t, r, http.StatusSeeOther)
	if sgn := e.signIn(id); sgn.Status != flows.StatusCancelled {
		t.Errorf("sign-in is %s", sgn.Status)
	}
	if _, refused := e.reqs.calls(); len(refused) != 1 || refused[0].reason != RefusedCancelled {
		t.Fatalf("refuse %+v", refused)
	}
}

func TestExpiryAndRetry(t *testing.T) {
	e, _, _, id, b := startStep(t)
	first := e.signIn(id)

	e.clock.Advance(e.svc.Config().SignInTTL + time.Second)
	r := b.get("/step/" + id)
	wantStatus(t, r, http.StatusOK)
	checkPage(t, r)
	wantText(t, r, "Sign-in timed out", "This sign-in was not approved in time.", "Try again", "Return to Payroll")
	if sgn := e.signIn(id); sgn.ID != first.ID || sgn.Status != flows.StatusExpired {
		t.Fatalf("sign-in %+v", sgn)
	}

	r = b.post("/step/"+id+"/retry", nil)
	wantStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/step/"+id {
		t.Errorf("retry redirects to %q", loc)
	}
	second := e.signIn(id)
	if second.ID == first.ID || second.Status != flows.StatusPending {
		t.Fatalf("retry: %+v", second)
	}
	r = b.get("/step/" + id)
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(r.body, `<strong class="number">`+second.Number+`</strong>`) {
		t.Errorf("new number not shown:\n%s", r.body)
	}

	// Retry while pending cancels the pending one.
	wantStatus(t, b.post("/step/"+id+"/retry", nil), http.StatusSeeOther)
	if s, err := e.svc.GetSignIn(e.ctx, second.ID); err != nil || s.Status != flows.StatusCancelled {
		t.Errorf("old sign-in %+v, %v", s, err)
	}

	// Return from the expired page.
	e.clock.Advance(e.svc.Config().SignInTTL + time.Second)
	wantStatus(t, b.get("/step/"+id), http.StatusOK)
	wantStatus(t, b.post("/step/"+id+"/abort", url.Values{"reason": {"expired"}}), http.StatusSeeOther)
	if _, refused := e.reqs.calls(); len(refused) != 1 || refused[0].reason != RefusedExpired {
		t.Fatalf("refuse %+v", refused)
	}
}

func TestExpiredRequest(t *testing.T) {
	e := newEnv(t)
	a := e.addUser("jo")
	e.enroll("jo")
	id := e.newRequest(a)
	b := e.browser()
	e.clock.Advance(11 * time.Minute)
	r := b.get("/step/" + id)
	wantStatus(t, r, http.StatusNotFound)
	wantText(t, r, "Go back to the app and sign in again.")
	if ar := e.authRequest(id); ar.SignInID != "" || len(ar.SessionHash) != 0 {
		t.Errorf("an expired request was bound or begun: %+v", ar)
	}
	r = b.get("/step/" + flows.NewID())
	wantStatus(t, r, http.StatusNotFound)
	wantText(t, r, "Go back to the app and sign in again.")
	for _, bad := range []string{"a%20b", "..", "x%3Cy", strings.Repeat("a", 129)} {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/step/"+bad, nil)
		if r := b.do(req); r.StatusCode != http.StatusNotFound && r.StatusCode/100 != 3 {
			t.Errorf("GET /step/%s: %d", bad, r.StatusCode)
		}
	}
}

func TestSecondBrowserRefused(t *testing.T) {
	e := newEnv(t)
	a := e.addUser("jo")
	p := e.enroll("jo")
	id := e.newRequest(a)
	owner := e.browser()
	wantStatus(t, owner.get("/step/"+id), http.StatusOK)
	sgn := e.signIn(id)

	// The other browser has a session of its own (from a request of its
	// own), with a valid CSRF token for it.
	other := e.browser()
	own := e.newRequest(a)
	wantStatus(t, other.get("/step/"+own), http.StatusOK)
	if other.csrf == "" {
		t.Fatal("no CSRF token")
	}
	r := other.get("/step/" + id)
	wantStatus(t, r, http.StatusForbidden)
	wantText(t, r, "This sign-in was started in another browser. Go back to the app and start again.")

	e.decide(p, id, flows.DecisionApprove)
	for _, path := range []string{"/finish", "/abort", "/retry", "/send", "/code"} {
		r := other.post("/step/"+id+path, url.Values{"channel": {"email"}, "code": {"123456"}})
		wantStatus(t, r, http.StatusForbidden)
		wantText(t, r, "This sign-in was started in another browser.")
	}
	for _, path := range []string{"/events", "/qr.png"} {
		wantStatus(t, other.get("/step/"+id+path), http.StatusForbidden)
	}
	// No cookie at all.
	bare := e.browser()
	wantStatus(t, bare.get("/step/"+id), http.StatusForbidden)
	wantStatus(t, bare.get("/step/"+id+"/events"), http.StatusForbidden)
	wantStatus(t, bare.get("/step/"+id+"/qr.png"), http.StatusForbidden)

	done, refused := e.reqs.calls()
	if len(done) != 0 || len(refused) != 0 {
		t.Fatalf("calls: complete %+v, refuse %+v", done, refused)
	}
	if got := e.signIn(id); got.ID != sgn.ID {
		t.Error("the other browser began a sign-in")
	}
	// The owner still finishes.
	wantStatus(t, owner.post("/step/"+id+"/finish", nil), http.StatusSeeOther)
	if done, _ := e.reqs.calls(); len(done) != 1 {
		t.Fatalf("complete %+v", done)
	}
}

func TestCSRFRefused(t *testing.T) {
	e := newEnv(t)
	a := e.addUser("jo")
	e.enroll("jo")
	id := e.newRequest(a, flows.MethodPush, flows.MethodEmail, flows.MethodOverride)
	b := e.browser()
	wantStatus(t, b.get("/step/"+id), http.StatusOK)
	sgn := e.signIn(id)
	audit := e.auditCount()
	for _, token := range []string{"", "wrong", strings.Repeat("A", 43), b.csrf + "x"} {
		for _, path := range []string{"/finish", "/abort", "/retry", "/send", "/code"} {
			form := url.Values{"csrf": {token}, "channel": {"email"}, "code": {"123456"}, "reason": {"cancelled"}}
			if token == "" {
				delete(form, "csrf")
				form.Set("csrf", "")
			}
			r := b.post("/step/"+id+path, form)
			wantStatus(t, r, http.StatusForbidden)
			wantText(t, r, "nothing was changed")
		}
	}
	if got := e.signIn(id); got.ID != sgn.ID || got.Status != flows.StatusPending {
		t.Errorf("sign-in changed: %+v", got)
	}
	if n := e.auditCount(); n != audit {
		t.Errorf("audit log grew from %d to %d", audit, n)
	}
	if len(e.mail.All()) != 0 {
		t.Error("an email was sent")
	}
	if done, refused := e.reqs.calls(); len(done)+len(refused) != 0 {
		t.Errorf("calls: %+v %+v", done, refused)
	}
}

func TestCrossOriginPostRefused(t *testing.T) {
	e, _, _, id, b := startStep(t)
	audit := e.auditCount()
	for _, h := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Origin", "https://evil.example"},
	} {
		r := b.post("/step/"+id+"/abort", url.Values{"reason": {"cancelled"}}, h...)
		wantStatus(t, r, http.StatusForbidden)
	}
	if got := e.signIn(id); got.Status != flows.StatusPending {
		t.Errorf("sign-in is %s", got.Status)
	}
	if n := e.auditCount(); n != audit {
		t.Errorf("audit log grew from %d to %d", audit, n)
	}
	if _, refused := e.reqs.calls(); len(refused) != 0 {
		t.Errorf("refused %+v", refused)
	}
	// Same origin passes.
	r := b.post("/step/"+id+"/abort", url.Values{"reason": {"cancelled"}}, "Sec-Fetch-Site", "same-origin")
	wantStatus(t, r, http.StatusSeeOther)
}

func TestEmailCode(t *testing.T) {
	e := newEnv(t)
	a := e.addUser("jo")
	e.enroll("jo")
	id := e.newRequest(a, flows.MethodPush, flows.MethodEmail)
	b := e.browser()
	r := b.get("/step/" + id)
	wantStatus(t, r, http.StatusOK)
	if strings.Contains(r.body, "Text me a code") || strings.Contains(r.body, "override") {
		t.Errorf("fallbacks the client does not allow are offered:\n%s", r.body)
	}
	r = b.post("/step/"+id+"/send", url.Values{"channel": {"sms"}})
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "That way of signing in is not open for this app.")

	r = b.post("/step/"+id+"/send", url.Values{"channel": {"email"}})
	wantStatus(t, r, http.StatusOK)
	checkPage(t, r)
	wantText(t, r, "We sent a code to ", "Send a new code")
	if !strings.Contains(r.body, `<label for="code">Code</label>`) || !strings.Contains(r.body, `id="code"`) {
		t.Errorf("no labelled code input:\n%s", r.body)
	}
	code := e.mail.LastCode(t)

	// Too soon for another.
	r = b.post("/step/"+id+"/send", url.Values{"channel": {"email"}})
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "Too many tries. Try again in ")

	// A wrong code, then a malformed one, then the right one.
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	r = b.post("/step/"+id+"/code", url.Values{"code": {wrong}, "channel": {"email"}})
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "That code is not right. Check it and try again.")
	r = b.post("/step/"+id+"/code", url.Values{"code": {"not a code!"}})
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "That code is not right")

	r = b.post("/step/"+id+"/code", url.Values{"code": {code}})
	wantStatus(t, r, http.StatusSeeOther)
	done, _ := e.reqs.calls()
	if len(done) != 1 || done[0].sgn.DecidedBy != flows.MethodEmail || done[0].sgn.Status != flows.StatusApproved {
		t.Fatalf("complete %+v", done)
	}
}

func TestOverrideCode(t *testing.T) {
	e := newEnv(t)
	a := e.addUser("jo")
	e.enroll("jo")
	id := e.newRequest(a, flows.MethodPush, flows.MethodOverride)
	b := e.browser()
	wantStatus(t, b.get("/step/"+id), http.StatusOK)
	r := b.get("/step/" + id + "?enter=code")
	wantStatus(t, r, http.StatusOK)
	checkPage(t, r)
	wantText(t, r, "Enter your override code", "contact your IT administrator", "Administrative Override")
	if strings.Contains(r.body, "http-equiv") {
		t.Error("the code form reloads itself")
	}
	_, code, err := e.svc.IssueOverride(e.ctx, "admin", "jo", 0, "lost phone")
	if err != nil {
		t.Fatal(err)
	}
	r = b.post("/step/"+id+"/code", url.Values{"code": {code}})
	wantStatus(t, r, http.StatusSeeOther)
	done, _ := e.reqs.calls()
	if len(done) != 1 || done[0].sgn.DecidedBy != flows.MethodOverride {
		t.Fatalf("complete %+v", done)
	}
}

func TestLockedPage(t *testing.T) {
	e := newEnvWith(t, envOptions{cfg: flows.Config{CodeConfig: flows.CodeConfig{MaxFailedCodes: 1}}})
	a := e.addUser("jo")
	e.enroll("jo")
	id := e.newRequest(a, flows.MethodPush, flows.MethodOverride)
	b := e.browser()
	wantStatus(t, b.get("/step/"+id), http.StatusOK)
	r := b.post("/step/"+id+"/code", url.Values{"code": {"123 456 7890"}})
	wantStatus(t, r, http.StatusOK)
	checkPage(t, r)
	wantText(t, r, "Too many wrong codes. Try again after 10:00 UTC or contact your IT administrator.",
		"Sign in with your phone instead", "Return to Payroll")
	r = b.post("/step/"+id+"/abort", url.Values{"reason": {"locked"}})
	wantStatus(t, r, http.StatusSeeOther)
	if _, refused := e.reqs.calls(); len(refused) != 1 || refused[0].reason != RefusedLocked {
		t.Fatalf("refuse %+v", refused)
	}
}

func TestAccountPages(t *testing.T) {
	e := newEnv(t)
	b := e.browser()

	sus := e.addUser("sus")
	e.enroll("sus")
	if _, err := e.svc.SuspendAccount(e.ctx, "admin", "sus", flows.SourceAdmin, "test"); err != nil {
		t.Fatal(err)
	}
	id := e.newRequest(sus)
	r := b.get("/step/" + id)
	wantStatus(t, r, http.StatusOK)
	checkPage(t, r)
	wantText(t, r, "Your account is suspended. Contact your IT administrator.", "temporary and can be reversed")
	wantStatus(t, b.post("/step/"+id+"/abort", url.Values{"reason": {"suspended"}}), http.StatusSeeOther)

	rem := e.addUser("rem")
	id2 := e.newRequest(rem)
	if _, err := e.svc.RemoveAccount(e.ctx, "admin", "rem", flows.SourceAdmin, "left"); err != nil {
		t.Fatal(err)
	}
	r = b.get("/step/" + id2)
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "Your account has been removed from the organization", "If you believe this was done in error, contact your IT administrator.")

	nod := e.addUser("nod")
	id3 := e.newRequest(nod, flows.MethodPush, flows.MethodQR)
	r = b.get("/step/" + id3)
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "There is no phone set up for your account", "invitation to set up the keystep app")
	wantStatus(t, b.post("/step/"+id3+"/abort", url.Values{"reason": {"no_device"}}), http.StatusSeeOther)

	// No device, but codes open: the code fallbacks alone.
	id4 := e.newRequest(nod, flows.MethodPush, flows.MethodEmail)
	r = b.get("/step/" + id4)
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "There is no phone set up for your account. Use a code below", "Email me a code")
	if strings.Contains(r.body, "qr.png") || strings.Contains(r.body, `class="number"`) {
		t.Errorf("phone methods shown without a phone:\n%s", r.body)
	}

	_, refused := e.reqs.calls()
	want := []refusal{{id, RefusedSuspended}, {id3, RefusedNoDevice}}
	if len(refused) != len(want) || refused[0] != want[0] || refused[1] != want[1] {
		t.Fatalf("refuse %+v", refused)
	}
	// A forged reason is refused, and changes nothing.
	r = b.post("/step/"+id4+"/abort", url.Values{"reason": {"approved"}})
	wantStatus(t, r, http.StatusBadRequest)
	if sgn := e.signIn(id4); sgn.Status != flows.StatusPending {
		t.Errorf("sign-in %s", sgn.Status)
	}
}

func TestSuspendedWhilePending(t *testing.T) {
	e, _, _, id, b := startStep(t)
	if _, err := e.svc.SuspendAccount(e.ctx, "admin", "jo", flows.SourceDirectory, "ldap"); err != nil {
		t.Fatal(err)
	}
	r := b.post("/step/"+id+"/finish", nil)
	wantStatus(t, r, http.StatusOK)
	wantText(t, r, "Your account is suspended. Contact your IT administrator.")
}

// readEvents reads the stream until the final event, and returns it.
func readEvents(t testing.TB, resp *http.Response, ready chan<- struct{}) (string, error) {
	t.Helper()
	sc := bufio.NewScanner(resp.Body)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == ": waiting" && ready != nil:
			close(ready)
			ready = nil
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "final":
			return strings.TrimPrefix(line, "data: "), nil
		}
	}
	return "", errNoFinal
}

func (b *browser) openEvents(ctx context.Context, id string) *http.Response {
	b.e.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.e.ts.URL+"/step/"+id+"/events", nil)
	if err != nil {
		b.e.t.Fatal(err)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	b.e.t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b.e.t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp
}

// streamFinal opens the event stream of request id and returns, once the
// stream is open, where the data of its final event will come.
func streamFinal(t *testing.T, b *browser, ctx context.Context, id string) <-chan string {
	t.Helper()
	resp := b.openEvents(ctx, id)
	ready := make(chan struct{})
	got := make(chan string, 1)
	go func() {
		data, err := readEvents(t, resp, ready)
		if err != nil {
			data = err.Error()
		}
		got <- data
	}()
	<-ready
	return got
}

func TestEventsDeliverFinal(t *testing.T) {
	e, _, p, id, b := startStep(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := streamFinal(t, b, ctx, id)
	e.decide(p, id, flows.DecisionApprove)
	if data := <-got; data != `{"status":"approved"}` {
		t.Fatalf("final event data %q", data)
	}
	// Once final, a new stream says so at once.
	resp := b.openEvents(ctx, id)
	if data, err := readEvents(t, resp, nil); err != nil || data != `{"status":"approved"}` {
		t.Fatalf("final event data %q, %v", data, err)
	}
}

// A decision made by another instance (whose events do not reach this
// one) is seen by re-reading the sign-in on the clock.
func TestEventsPollOtherInstance(t *testing.T) {
	e, _, p, id, b := startStep(t)
	other, err := flows.New(e.store, e.cfg, flows.WithClock(e.clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := streamFinal(t, b, ctx, id)
	e.clock.BlockUntilWaiters(2) // the stream waits: Await's expiry timer and the poll
	e.decideOn(other, p, e.signIn(id), flows.DecisionDeny)
	e.clock.Advance(pollEvery)
	if data := <-got; data != `{"status":"denied"}` {
		t.Fatalf("final event data %q", data)
	}
}

func TestEventsWithoutSignIn(t *testing.T) {
	e := newEnv(t)
	a := e.addUser("jo")
	id := e.newRequest(a, flows.MethodPush) // no device: no sign-in begins
	b := e.browser()
	wantStatus(t, b.get("/step/"+id), http.StatusOK)
	wantStatus(t, b.get("/step/"+id+"/events"), http.StatusNoContent)
	wantStatus(t, b.get("/step/"+id+"/qr.png"), http.StatusNotFound)
}

func TestCookieAttributes(t *testing.T) {
	for _, secure := range []bool{false, true} {
		e := newEnvWith(t, envOptions{secure: secure, noTS: true})
		a := e.addUser("jo")
		e.enroll("jo")
		id := e.newRequest(a)
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://keystep.test/step/"+id, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("secure=%v: status %d", secure, rec.Code)
		}
		cookies := rec.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("secure=%v: cookies %v", secure, cookies)
		}
		c := cookies[0]
		wantName := "keystep-step"
		if secure {
			wantName = "__Host-keystep-step"
		}
		if c.Name != wantName || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" ||
			c.MaxAge != 900 || c.Secure != secure || c.Domain != "" {
			t.Errorf("secure=%v: cookie %s", secure, c.String())
		}
		if len(c.String()) > 4096 {
			t.Errorf("cookie is %d bytes", len(c.String()))
		}
	}
}

func TestCookieKeysStoredSealedAndRotated(t *testing.T) {
	e := newEnvWith(t, envOptions{noTS: true})
	keys, err := e.store.ListKeys(e.ctx, flows.KeyUseCookie, e.clock.Now())
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	k := keys[0]
	if k.Alg != CookieKeyAlg || len(k.Sealed) < 64+16 {
		t.Errorf("key %+v", k)
	}
	// A second instance uses the same key.
	h2, err := New(e.ctx, Options{Flows: e.svc, Requests: e.reqs, SealKey: testSealKey, Clock: e.clock, Logger: e.h.log})
	if err != nil {
		t.Fatal(err)
	}
	if keys, _ := e.store.ListKeys(e.ctx, flows.KeyUseCookie, e.clock.Now()); len(keys) != 1 {
		t.Fatalf("second instance made a key: %d keys", len(keys))
	}
	// A cookie of one instance opens at the other.
	a := e.addUser("jo")
	e.enroll("jo")
	id := e.newRequest(a)
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/step/"+id, nil))
	mux2 := http.NewServeMux()
	h2.Register(mux2)
	req := httptest.NewRequest(http.MethodGet, "/step/"+id, nil)
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	rec2 := httptest.NewRecorder()
	mux2.ServeHTTP(rec2, req)
	if rec2.Code != http.StatusOK {
		t.Fatalf("the other instance answers %d", rec2.Code)
	}

	// A wrong secret cannot open the stored key.
	if _, err := New(e.ctx, Options{Flows: e.svc, Requests: e.reqs, SealKey: bytes.Repeat([]byte("x"), 32), Clock: e.clock}); err == nil {
		t.Error("a wrong seal key was accepted")
	}
	if _, err := New(e.ctx, Options{Flows: e.svc, Requests: e.reqs, SealKey: []byte("short"), Clock: e.clock}); err == nil {
		t.Error("a short seal key was accepted")
	}

	// After 30 days a new key is made (and used first); after 60 the old
	// one is retired.
	e.clock.Advance(31 * 24 * time.Hour)
	if _, err := New(e.ctx, Options{Flows: e.svc, Requests: e.reqs, SealKey: testSealKey, Clock: e.clock, Logger: e.h.log}); err != nil {
		t.Fatal(err)
	}
	keys, _ = e.store.ListKeys(e.ctx, flows.KeyUseCookie, e.clock.Now())
	if len(keys) != 2 {
		t.Fatalf("%d keys after 31 days", len(keys))
	}
	e.clock.Advance(30 * 24 * time.Hour)
	if _, err := New(e.ctx, Options{Flows: e.svc, Requests: e.reqs, SealKey: testSealKey, Clock: e.clock, Logger: e.h.log}); err != nil {
		t.Fatal(err)
	}
	keys, _ = e.store.ListKeys(e.ctx, flows.KeyUseCookie, e.clock.Now())
	if len(keys) != 2 || keys[0].ID == k.ID || keys[1].ID == k.ID {
		t.Fatalf("after 61 days: %+v", keys)
	}
}

func TestWriteAutoPost(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteAutoPost(rec, "https://rp.example/cb?x=1", url.Values{
		"state":    {`"><script>alert(1)</script>`},
		"id_token": {"a.b.c"},
	})
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	body := rec.Body.String()
	checkNoInline(t, body)
	if csp := rec.Header().Get("Content-Security-Policy"); csp != wantCSP {
		t.Errorf("CSP %q", csp)
	}
	for _, want := range []string{
		`<form id="autopost" method="post" action="https://rp.example/cb?x=1">`,
		`<input type="hidden" name="id_token" value="a.b.c">`,
		`<input type="hidden" name="state" value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;">`,
		`<script src="/static/autopost.js" defer></script>`,
		`<noscript><button type="submit" class="primary">Continue</button></noscript>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script>alert") {
		t.Error("a value was not escaped")
	}
	for k, v := range map[string]string{"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q", k, got)
		}
	}
}

func TestCSPOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://rp.example":                  "'self' https://rp.example",
		"https://RP.example:8443/":            "'self' https://rp.example:8443",
		"":                                    "'self'",
		"https://rp.example; script-src *":    "'self'",
		"https://rp.example/cb":               "'self'",
		"javascript:alert(1)":                 "'self'",
		"https://user@rp.example":             "'self'",
		"https://rp.example\r\nSet-Cookie: x": "'self'",
	} {
		if got := cspFor(in); !strings.Contains(got, "form-action "+want+";") {
			t.Errorf("cspFor(%q) = %q", in, got)
		}
	}
}

func TestStaticFiles(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for name, ct := range map[string]string{
		"step.js": "text/javascript; charset=utf-8", "autopost.js": "text/javascript; charset=utf-8", "step.css": "text/css; charset=utf-8",
	} {
		r := b.get("/static/" + name)
		wantStatus(t, r, http.StatusOK)
		if got := r.Header.Get("Content-Type"); got != ct {
			t.Errorf("%s: content type %q", name, got)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || len(r.body) < 100 {
			t.Errorf("%s: %v", name, r.Header)
		}
	}
	wantStatus(t, b.get("/static/other.js"), http.StatusNotFound)
}

func TestLanguage(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Accept-Language", "fr-CH, fr;q=0.9, en;q=0.8, *;q=0.5")
	if got := pickTexts([]string{"de"}, req); got != &english {
		t.Error("no fallback to English")
	}
	if got := acceptLanguages("fr-CH, fr;q=0.9, en;q=0.8, de;q=0, *;q=0.5"); strings.Join(got, ",") != "fr-CH,fr,en" {
		t.Errorf("accept languages %v", got)
	}
	if got := pickTexts([]string{"en-GB"}, nil); got.Lang != "en" {
		t.Errorf("lang %s", got.Lang)
	}
}

func TestBodyLimit(t *testing.T) {
	e, _, _, id, b := startStep(t)
	r := b.post("/step/"+id+"/code", url.Values{"code": {strings.Repeat("1", 20<<10)}})
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", r.StatusCode)
	}
	if sgn := e.signIn(id); sgn.Status != flows.StatusPending {
		t.Errorf("sign-in %s", sgn.Status)
	}
}

// TestNoSenderNoButton: without an SMS or email sender on the server, the
// page offers no code by that channel, even if the account has a phone
// number and an address.
func TestNoSenderNoButton(t *testing.T) {
	e := newEnvWith(t, envOptions{noSMS: true, noEmail: true})
	a := e.addUser("alice")
	e.enroll("alice")
	id := e.newRequest(a, flows.MethodPush, flows.MethodQR, flows.MethodSMS, flows.MethodEmail, flows.MethodOverride)
	p := e.browser().get("/step/" + id)
	wantStatus(t, p, http.StatusOK)
	for _, text := range []string{"Text me a code", "Email me a code"} {
		if strings.Contains(p.body, text) {
			t.Errorf("the page offers %q with no sender:\n%s", text, p.body)
		}
	}
	if !strings.Contains(p.body, "I have an override code") {
		t.Error("the override code link is gone too")
	}
}

// TestEventStreamsBounded: one request gets a bounded number of open
// event streams; a closed one frees its slot.
func TestEventStreamsBounded(t *testing.T) {
	e, _, _, id, b := startStep(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var open []*http.Response
	for range maxStreamsPerRequest {
		open = append(open, b.openEvents(ctx, id))
	}
	// openEvents returns once the stream answered: all slots are taken.
	extra := b.get("/step/" + id + "/events")
	wantStatus(t, extra, http.StatusServiceUnavailable)
	open[0].Body.Close()
	// The handler frees the slot once it sees the connection closed.
	for e.h.streams.count(id) == maxStreamsPerRequest {
		if ctx.Err() != nil {
			t.Fatal("the closed stream's slot was never freed")
		}
		runtime.Gosched()
	}
	more := b.openEvents(ctx, id)
	more.Body.Close()
	for _, r := range open[1:] {
		r.Body.Close()
	}
}

// startStep is jo, with a phone, whose request's step page a browser has
// opened (a pending push sign-in).
func startStep(t *testing.T) (*env, flows.Account, phone, string, *browser) {
	t.Helper()
	e := newEnv(t)
	a := e.addUser("jo")
	p := e.enroll("jo")
	id := e.newRequest(a)
	b := e.browser()
	wantStatus(t, b.get("/step/"+id), http.StatusOK)
	return e, a, p, id, b
}
