package steppage

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/keystep/keystep/flows"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// staticFiles are the files served under /static/.
var staticFiles = []string{"step.js", "step.css", "autopost.js"}

var templates = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// page is what a template shows. Every word on it comes from texts.
type page struct {
	T       *texts
	Title   string
	Heading string
	Lines   []string // paragraphs
	Alert   string   // an error or notice, announced at once
	ID      string   // the request id, for the forms; empty: no forms
	CSRF    string
	Refresh string // without JavaScript, reload this path every 5 s

	// The step page.
	Step         bool
	NumberBefore string
	Number       string
	NumberAfter  string
	QR           string // the QR image's path
	SMS, Email   bool   // "text me a code", "email me a code"
	Override     bool   // "I have an override code"
	Help         bool   // "not getting the notification?"

	// The code page.
	CodeForm bool
	Channel  flows.Method // the channel of the code sent: "send a new code"

	// Actions.
	Continue     bool
	Events       string // the event stream that submits Continue (step.js)
	AutoContinue bool   // step.js submits Continue at once
	Retry        bool
	Return       string // the reason the leave button posts; empty: none
	ReturnLabel  string
	BackToStep   bool
	BackLabel    string
}

// setHeaders sets the security headers of every page.
func setHeaders(w http.ResponseWriter, csp string) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// cspFor is the Content-Security-Policy of a page whose forms may lead to
// answerOrigin (after a POST that redirects there).
func cspFor(answerOrigin string) string {
	formAction := "'self'"
	if o := cleanOrigin(answerOrigin); o != "" {
		formAction += " " + o
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"form-action " + formAction + "; frame-ancestors 'none'; base-uri 'none'"
}

// cleanOrigin returns s as scheme://host[:port] if it is an http(s) origin
// safe to put in a header, else "".
func cleanOrigin(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		(u.Path != "" && u.Path != "/") {
		return ""
	}
	return originOf(u)
}

// originOf returns the origin of an absolute http(s) URL, or "".
func originOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" || u.Host == "" {
		return ""
	}
	for _, c := range u.Host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)) {
			return ""
		}
	}
	return scheme + "://" + strings.ToLower(u.Host)
}

// render writes a page with the security headers.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, csp string, p *page) {
	if p.T == nil {
		p.T = &english
	}
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, "page", p); err != nil {
		h.log.ErrorContext(r.Context(), "step page: render", "path", r.URL.Path, "err", err)
		setHeaders(w, csp)
		http.Error(w, p.T.ErrorText, http.StatusInternalServerError)
		return
	}
	setHeaders(w, csp)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// app is the name of the app asking, for the page.
func (st *step) app() string {
	if a := cleanText(st.req.ClientName, 200); a != "" {
		return a
	}
	return st.t.TheApp
}

// base is a page of the request with its forms' id and token.
func (st *step) base(title, heading string, lines ...string) *page {
	return &page{T: st.t, Title: title, Heading: heading, Lines: lines, ID: st.id, CSRF: st.sess.data.CSRF}
}

// leave adds the button that returns to the app with a refusal.
func (st *step) leave(p *page, reason, label string) *page {
	p.Return, p.ReturnLabel = reason, label
	return p
}

// stepPage is the page of a pending sign-in: the number, the QR code, the
// fallbacks it allows, Continue and Cancel. With enter=code it is the code
// form instead.
func (h *Handler) stepPage(ctx context.Context, st *step, sgn flows.SignIn, e stepEntry, msg string) *page {
	t := st.t
	codes := sgn.HasMethod(flows.MethodSMS) || sgn.HasMethod(flows.MethodEmail) || sgn.HasMethod(flows.MethodOverride)
	if st.wantCode && codes {
		return h.codePage(st, "", msg, "")
	}
	p := st.base(t.StepTitle, fill(t.StepHeading, "app", st.app()))
	p.Step, p.Alert = true, msg
	phone := sgn.HasMethod(flows.MethodPush) || sgn.HasMethod(flows.MethodQR)
	if sgn.HasMethod(flows.MethodPush) {
		n := e.Number
		if n == "" {
			n = sgn.Number
		}
		if n != "" {
			before, after, _ := strings.Cut(t.PushAsk, "{number}")
			p.NumberBefore, p.Number, p.NumberAfter = before, n, after
		}
	}
	if sgn.HasMethod(flows.MethodQR) && e.QR != "" && e.SignIn == sgn.ID {
		p.QR = st.path() + "/qr.png"
	}
	if !phone {
		p.Lines = append(p.Lines, t.NoPhone)
	}
	// Offer a code by SMS or email only to an account with somewhere to
	// send it (if the account cannot be read, offer it: SendCode says).
	phoneOnFile, emailOnFile := true, true
	if a, err := h.flows.Store().GetAccount(ctx, sgn.AccountID); err == nil {
		phoneOnFile, emailOnFile = a.Phone != "", a.Email != ""
	}
	p.SMS = sgn.HasMethod(flows.MethodSMS) && phoneOnFile && h.flows.CanDeliver(flows.MethodSMS)
	p.Email = sgn.HasMethod(flows.MethodEmail) && emailOnFile && h.flows.CanDeliver(flows.MethodEmail)
	p.Override = sgn.HasMethod(flows.MethodOverride)
	p.Help = sgn.HasMethod(flows.MethodPush)
	p.Continue, p.Events = true, st.path()+"/events"
	return st.leave(p, RefusedCancelled, t.Cancel)
}

// codePage is the form for a code: after one was sent (sent says where),
// after a wrong one (alert), or for an override code.
func (h *Handler) codePage(st *step, sent, alert string, channel flows.Method) *page {
	t := st.t
	p := st.base(t.CodeTitle, t.CodeHeading)
	if sent != "" {
		p.Lines = append(p.Lines, sent)
	} else if channel == "" {
		p.Title, p.Heading = t.OverrideTitle, t.OverrideTitle
		p.Lines = append(p.Lines, t.OverrideHelp)
	}
	p.Alert, p.CodeForm, p.Channel = alert, true, channel
	p.BackToStep, p.BackLabel = true, t.BackToStep
	return st.leave(p, RefusedCancelled, t.Cancel)
}

// outcome is the page of a final sign-in.
func (h *Handler) outcome(ctx context.Context, st *step, sgn flows.SignIn) (int, *page, error) {
	t := st.t
	returnTo := fill(t.ReturnToApp, "app", st.app())
	switch sgn.Status {
	case flows.StatusApproved:
		p := st.base(t.ApprovedTitle, t.ApprovedHeading, fill(t.ApprovedText, "app", st.app()))
		p.Continue, p.AutoContinue = true, true
		return http.StatusOK, p, nil
	case flows.StatusDenied:
		text := t.DeniedText
		switch {
		case sgn.FraudReport:
			text = t.ReportedText
		case sgn.Reason == "wrong number":
			text = t.WrongNumberText
		}
		p := st.base(t.DeniedTitle, t.DeniedTitle, text)
		p.Retry = true
		return http.StatusOK, st.leave(p, RefusedDenied, returnTo), nil
	case flows.StatusExpired:
		p := st.base(t.ExpiredTitle, t.ExpiredTitle, t.ExpiredText)
		p.Retry = true
		return http.StatusOK, st.leave(p, RefusedExpired, returnTo), nil
	}
	// Cancelled: by the user, or because the account was suspended or
	// removed meanwhile (flows cancels its pending sign-ins then).
	a, err := h.flows.Store().GetAccount(ctx, sgn.AccountID)
	switch {
	case err == nil && a.State == flows.AccountSuspended:
		return http.StatusOK, h.refusal(st, RefusedSuspended), nil
	case err == nil && a.State == flows.AccountRemoved:
		return http.StatusOK, h.refusal(st, RefusedRemoved), nil
	case err != nil && !isNotFound(err):
		return 0, nil, err
	case err != nil:
		return http.StatusOK, h.refusal(st, RefusedRemoved), nil
	}
	p := st.base(t.CancelledTitle, t.CancelledTitle, t.CancelledText)
	p.Retry = true
	return http.StatusOK, st.leave(p, RefusedCancelled, returnTo), nil
}

// isNotFound reports whether err is ErrNotFound.
func isNotFound(err error) bool { return errors.Is(err, flows.ErrNotFound) }

// refusal is the page of an account or request that cannot sign in.
func (h *Handler) refusal(st *step, reason string) *page {
	t := st.t
	var p *page
	switch reason {
	case RefusedSuspended:
		p = st.base(t.SuspendedTitle, t.SuspendedTitle, t.SuspendedText, t.SuspendedMore)
	case RefusedRemoved:
		p = st.base(t.RemovedTitle, t.RemovedTitle, t.RemovedText, t.RemovedMore)
	case RefusedUnavailable:
		p = st.base(t.UnavailableTitle, t.UnavailableTitle, t.UnavailableText)
		p.Retry = true
	default:
		p = st.base(t.NoDeviceTitle, t.NoDeviceTitle, t.NoDeviceText, t.NoDeviceMore)
		if slices.Contains(st.req.Methods, flows.MethodOverride) {
			p.Lines = append(p.Lines, t.OverrideHelp)
		}
	}
	return st.leave(p, reason, fill(t.ReturnToApp, "app", st.app()))
}

// lockedPage is the page of an account whose codes are locked (or, from
// Begin, rate limited). With phone, the sign-in can still be approved on
// the phone: it links back to the step page.
func (h *Handler) lockedPage(st *step, err error, phone bool) *page {
	t := st.t
	text := t.LockedAdminText
	if until, ok := flows.LockedUntil(err); ok && !until.IsZero() {
		text = fill(t.LockedText, "time", t.at(until, h.clock.Now()))
	} else if d := flows.RetryAfter(err); d > 0 {
		text = fill(t.LockedText, "time", t.at(h.clock.Now().Add(d), h.clock.Now()))
	}
	p := st.base(t.LockedTitle, t.LockedTitle, text)
	if phone {
		p.BackToStep, p.BackLabel = true, t.UsePhoneInstead
	}
	return st.leave(p, RefusedLocked, fill(t.ReturnToApp, "app", st.app()))
}

// Pages with no request behind them, and so no forms.

func goneTitlePage(t *texts) *page {
	return &page{T: t, Title: t.GoneTitle, Heading: t.GoneTitle, Lines: []string{t.GoneText}}
}

func otherBrowserPage(t *texts) *page {
	return &page{T: t, Title: t.OtherBrowserTitle, Heading: t.OtherBrowserTitle, Lines: []string{t.OtherBrowserText}}
}

func forbiddenPage(t *texts) *page {
	return &page{T: t, Title: t.ForbiddenTitle, Heading: t.ForbiddenTitle, Lines: []string{t.ForbiddenText}}
}

func badRequestPage(t *texts) *page {
	return &page{T: t, Title: t.BadRequestTitle, Heading: t.BadRequestTitle, Lines: []string{t.BadRequestText}}
}

func errorPage(t *texts) *page {
	return &page{T: t, Title: t.ErrorTitle, Heading: t.ErrorTitle, Lines: []string{t.ErrorText}}
}

// autoPost is what the auto-posting page shows.
type autoPost struct {
	T      *texts
	Action string
	Fields []autoPostField
}

type autoPostField struct{ Name, Value string }

// WriteAutoPost answers a page that POSTs fields to action at once: an
// OpenID Connect form_post response, a SAML POST binding. It works under
// the step page's strict Content-Security-Policy (no inline script: it
// loads /static/autopost.js, and without JavaScript the user presses the
// button in <noscript>), whose form-action allows action's origin.
func WriteAutoPost(w http.ResponseWriter, action string, fields url.Values) {
	origin := ""
	if u, err := url.Parse(action); err == nil {
		origin = originOf(u)
	}
	data := autoPost{T: &english, Action: action}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range fields[k] {
			data.Fields = append(data.Fields, autoPostField{k, v})
		}
	}
	var b bytes.Buffer
	setHeaders(w, cspFor(origin))
	if err := templates.ExecuteTemplate(&b, "autopost", data); err != nil {
		http.Error(w, data.T.ErrorText, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}

// serveStatic serves the embedded scripts and style sheet.
func serveStatic(w http.ResponseWriter, r *http.Request) {
	name := path.Base(r.URL.Path)
	if !slices.Contains(staticFiles, name) {
		http.NotFound(w, r)
		return
	}
	b, err := staticFS.ReadFile("static/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	switch path.Ext(name) {
	case ".js":
		h.Set("Content-Type", "text/javascript; charset=utf-8")
	case ".css":
		h.Set("Content-Type", "text/css; charset=utf-8")
	}
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(b)
}
