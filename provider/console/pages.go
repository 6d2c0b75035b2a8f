package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keystep/keystep/provider/internal/ratelimit"

	"github.com/keystep/keystep/flows"
)

//go:embed templates/*.html
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"when": when,
}).ParseFS(templateFS, "templates/*.html"))

// when formats a time for the pages (UTC); the zero time is "—".
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// view is what every page's template gets.
type view struct {
	Title string
	Nonce string
	Admin string // empty before login
	CSRF  string
	Nav   string // the current section: overview, users, directory, audit
	Flash []flash
	Data  any
}

// render writes a page (the security headers are already set).
func (c *Console) render(q *req, status int, name, title, nav string, data any) {
	v := view{Title: title, Nonce: q.nonce, Nav: nav, Data: data}
	if q.sess != nil {
		v.Admin, v.CSRF, v.Flash = q.sess.admin, q.sess.csrf, q.sess.takeFlash()
		if q.sess.fromCookie {
			q.sess.fromCookie = false
			http.SetCookie(q.w, c.sess.expired(c.sess.flash))
		}
	}
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, v); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(q.w, "internal error", http.StatusInternalServerError)
		return
	}
	q.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	q.w.WriteHeader(status)
	_, _ = q.w.Write(b.Bytes())
}

// messagePage is a page that only says something.
type messagePage struct {
	Heading string
	Text    string
}

// message answers a page that says something (an error, a refusal).
func (c *Console) message(q *req, status int, heading, text string) {
	c.render(q, status, "message", heading, "", messagePage{Heading: heading, Text: text})
}

// fail logs an unexpected error and answers the error page.
func (c *Console) fail(q *req, what string, err error) {
	if q.ctx.Err() == nil {
		c.log.Error("console: "+what, "path", q.r.URL.Path, "err", err)
	}
	c.message(q, http.StatusInternalServerError, "Something went wrong", "The server could not "+what+". The log has the details.")
}

// redirect answers 303 to a console path, carrying the session's flash
// messages to it.
func (c *Console) redirect(q *req, path string) {
	if q.sess != nil {
		c.sess.saveFlash(q.w, q.sess)
	}
	http.Redirect(q.w, q.r, path, http.StatusSeeOther)
}

func (c *Console) notFound(q *req) {
	c.message(q, http.StatusNotFound, "Not found", "There is no such page in the console.")
}

// loginView is the login page's data.
type loginView struct {
	Token string // the login form's CSRF token
	Error string
}

// loginPage is GET /console/login.
func (c *Console) loginPage(q *req) {
	if !c.loadSession(q) {
		return
	}
	if q.sess != nil {
		c.redirect(q, Prefix)
		return
	}
	c.showLogin(q, http.StatusOK, "")
}

func (c *Console) showLogin(q *req, status int, msg string) {
	t := c.sess.loginToken(q.w, q.r)
	c.render(q, status, "login", "Sign in", "", loginView{Token: t, Error: msg})
}

// login is POST /console/login: the admin token makes a session. Every
// attempt counts against the client address's limit, checked before the
// token is.
func (c *Console) login(q *req) {
	if !c.postOK(q) {
		return
	}
	if !c.sess.loginTokenOK(q.r, q.r.PostForm.Get("csrf")) {
		c.showLogin(q, http.StatusForbidden, "The sign-in form expired. Try again.")
		return
	}
	key := c.clientKey(q.r)
	ok, wait, err := c.flows.Store().HitRateLimit(q.ctx, key, c.clock.Now(), loginWindow, loginLimit)
	if err != nil {
		c.fail(q, "check the sign-in rate limit", err)
		return
	}
	if !ok {
		secs := ratelimit.RetryAfter(wait)
		q.w.Header().Set("Retry-After", secs)
		c.log.Warn("console: login rate limit", "client", key)
		c.showLogin(q, http.StatusTooManyRequests, "Too many sign-in attempts from this address. Try again in "+secs+" s.")
		return
	}
	adminToken := strings.TrimSpace(q.r.PostForm.Get("token"))
	admin, ok := c.srv.AdminFor(adminToken)
	if !ok {
		c.log.Warn("console: refused a login with a wrong admin token", "client", key)
		c.showLogin(q, http.StatusUnauthorized, "That is not an admin token.")
		return
	}
	if err := c.sess.dropBrowsers(q.r); err != nil { // a new login replaces the browser's session
		c.fail(q, "end the previous session", err)
		return
	}
	s, err := c.sess.start(q.ctx, q.w, admin, adminToken)
	if err != nil {
		c.fail(q, "start a session", err)
		return
	}
	http.SetCookie(q.w, c.sess.expired(c.sess.login))
	if err := c.flows.RecordEvent(q.ctx, "admin:"+admin, "console.login", "signed in to the admin console from "+c.srv.ClientIP(q.r)); err != nil {
		if err := c.sess.drop(context.WithoutCancel(q.ctx), s); err != nil {
			c.log.Error("console: drop a session whose login was not recorded", "err", err)
		}
		http.SetCookie(q.w, c.sess.expired(c.sess.name))
		c.fail(q, "record the login", err)
		return
	}
	c.log.Info("console: admin signed in", "admin", admin, "client", key)
	c.redirect(q, Prefix)
}

// logout is POST /console/logout.
func (c *Console) logout(q *req) {
	actor := q.actor()
	if err := c.sess.end(q.ctx, q.w, q.sess); err != nil {
		c.fail(q, "sign you out", err)
		return
	}
	q.sess = nil // no flash to carry to the login page
	if err := c.flows.RecordEvent(q.ctx, actor, "console.logout", "signed out of the admin console"); err != nil {
		c.log.Error("console: record a logout", "err", err)
	}
	c.redirect(q, "/console/login")
}

// userRow is an account in the list.
type userRow struct {
	flows.Account
	Source string // "directory: <name>" or "admin"
}

// usersView is the users page's data.
type usersView struct {
	State  string
	Search string
	Users  []userRow
	Total  int // matching accounts, of which at most maxUsers are shown
	Max    int
}

// maxUsers bounds the accounts one page lists.
const maxUsers = 500

// users is GET /console/users?state=&q=.
func (c *Console) users(q *req) {
	state := q.r.URL.Query().Get("state")
	search := strings.TrimSpace(q.r.URL.Query().Get("q"))
	var f flows.AccountFilter
	switch state {
	case "":
	case "all":
		f.IncludeRemoved = true
	default:
		if !flows.AccountState(state).Valid() {
			c.message(q, http.StatusBadRequest, "Bad request", "The state must be active, suspended, removed or all.")
			return
		}
		f.State = flows.AccountState(state)
	}
	as, err := c.flows.ListAccounts(q.ctx, f)
	if err != nil {
		c.fail(q, "list the accounts", err)
		return
	}
	v := usersView{State: state, Search: search, Max: maxUsers}
	needle := strings.ToLower(search)
	for _, a := range as {
		if needle != "" && !matches(a, needle) {
			continue
		}
		v.Total++
		if len(v.Users) < maxUsers {
			v.Users = append(v.Users, userRow{Account: a})
		}
	}
	for i := range v.Users {
		if v.Users[i].Source, err = c.source(q, v.Users[i].ID); err != nil {
			c.fail(q, "read the accounts' sources", err)
			return
		}
	}
	c.render(q, http.StatusOK, "users", "Users", "users", v)
}

// matches reports whether the account's username, email, name, phone or
// id holds needle (lower case).
func matches(a flows.Account, needle string) bool {
	for _, s := range []string{a.Username, a.Email, a.DisplayName, a.Phone, a.ID} {
		if strings.Contains(strings.ToLower(s), needle) {
			return true
		}
	}
	return false
}

// source says where an account comes from: its directory source, or an
// admin.
func (c *Console) source(q *req, accountID string) (string, error) {
	l, err := c.flows.Store().GetDirectoryLinkByAccount(q.ctx, accountID)
	switch {
	case err == nil:
		return "directory: " + l.Source, nil
	case errors.Is(err, flows.ErrNotFound):
		return "admin", nil
	}
	return "", err
}

// userView is the user page's data.
type userView struct {
	flows.Account
	Source     string
	Devices    []flows.Device
	Limits     flows.AccountLimits
	Locked     bool
	LockedTill time.Time
	Events     []auditRow
	Overrides  bool // override codes are open on this server
}

// account loads the account of the {user} path value (an id, or a
// username), answering 404 itself.
func (c *Console) account(q *req) (flows.Account, bool) {
	a, err := c.flows.FindAccount(q.ctx, q.r.PathValue("user"))
	if err != nil {
		if errors.Is(err, flows.ErrNotFound) || errors.Is(err, flows.ErrInvalid) {
			c.message(q, http.StatusNotFound, "No such user", "There is no account "+q.r.PathValue("user")+".")
		} else {
			c.fail(q, "read the account", err)
		}
		return flows.Account{}, false
	}
	return a, true
}

// user is GET /console/users/{user}.
func (c *Console) user(q *req) {
	a, ok := c.account(q)
	if !ok {
		return
	}
	v := userView{Account: a, Overrides: slices.Contains(c.flows.Config().CodeMethods, flows.MethodOverride)}
	var err error
	if v.Source, err = c.source(q, a.ID); err != nil {
		c.fail(q, "read the account's source", err)
		return
	}
	if _, v.Devices, err = c.flows.ListDevices(q.ctx, a.ID); err != nil {
		c.fail(q, "list the devices", err)
		return
	}
	if v.Limits, err = c.flows.CodeLimits(q.ctx, a.ID); err != nil {
		c.fail(q, "read the code limits", err)
		return
	}
	v.Locked, v.LockedTill = v.Limits.CodesLocked(c.clock.Now())
	evs, _, err := c.scanAudit(q.ctx, auditQuery{AccountID: a.ID, Max: 20})
	if err != nil {
		c.fail(q, "read the audit log", err)
		return
	}
	v.Events = c.auditRows(q, evs)
	c.render(q, http.StatusOK, "user", a.Username, "users", v)
}

// userPath is the user page of an account.
func userPath(a flows.Account) string { return "/console/users/" + url.PathEscape(a.ID) }

// reason reads the form's reason, which an action that says so requires.
func reason(q *req) string { return strings.TrimSpace(q.r.PostForm.Get("reason")) }

// userAction is POST /console/users/{user}/{action}.
func (c *Console) userAction(q *req) {
	a, ok := c.account(q)
	if !ok {
		return
	}
	var change func(ctx context.Context, actor, ref string, source flows.StateSource, reason string) (flows.Account, error)
	var done string
	switch q.r.PathValue("action") {
	case "suspend":
		change, done = c.flows.SuspendAccount, "suspended"
	case "restore":
		change, done = c.flows.RestoreAccount, "restored"
	case "remove":
		change, done = c.flows.RemoveAccount, "removed"
	case "invite":
		c.invite(q, a)
		return
	case "override":
		c.override(q, a)
		return
	case "unlock":
		if _, err := c.flows.UnlockCodes(q.ctx, q.actor(), a.ID); err != nil {
			c.actionFailed(q, a, "unlock the codes", err)
			return
		}
		q.sess.addFlash(false, "Unlocked the codes of "+a.Username+".")
		c.redirect(q, userPath(a))
		return
	default:
		c.notFound(q)
		return
	}
	why := reason(q)
	if why == "" {
		q.sess.addFlash(true, "Give a reason: the audit log keeps it.")
		c.redirect(q, userPath(a))
		return
	}
	if q.r.PathValue("action") == "remove" && q.r.PostForm.Get("confirm") != a.Username {
		q.sess.addFlash(true, "To remove "+a.Username+", type the username to confirm.")
		c.redirect(q, userPath(a))
		return
	}
	if _, err := change(q.ctx, q.actor(), a.ID, flows.SourceAdmin, why); err != nil {
		c.actionFailed(q, a, strings.TrimSuffix(done, "d"), err)
		return
	}
	q.sess.addFlash(false, a.Username+" is "+done+".")
	c.redirect(q, userPath(a))
}

// actionFailed shows why an action on an account was refused, or fails.
func (c *Console) actionFailed(q *req, a flows.Account, what string, err error) {
	var msg string
	switch {
	case errors.Is(err, flows.ErrInvalid):
		msg = "Refused: " + err.Error()
	case errors.Is(err, flows.ErrAccountRemoved):
		msg = a.Username + " has been removed."
	case errors.Is(err, flows.ErrAccountSuspended):
		msg = a.Username + " is suspended."
	case errors.Is(err, flows.ErrConflict):
		msg = "Refused: " + err.Error()
	case errors.Is(err, flows.ErrMethodNotAllowed):
		msg = "Override codes are turned off on this server."
	case errors.Is(err, flows.ErrNotFound):
		msg = "Not found: " + err.Error()
	default:
		c.fail(q, what, err)
		return
	}
	q.sess.addFlash(true, "Could not "+what+": "+msg)
	c.redirect(q, userPath(a))
}

// inviteView is the page that shows an invitation once.
type inviteView struct {
	Account   flows.Account
	Link      string
	ExpiresAt time.Time
	QR        qrSVG
}

// invite issues an invitation and shows its link and QR code, once.
func (c *Console) invite(q *req, a flows.Account) {
	inv, link, err := c.flows.Invite(q.ctx, q.actor(), a.ID)
	if err != nil {
		c.actionFailed(q, a, "invite", err)
		return
	}
	qr, err := newQRSVG(link.String())
	if err != nil {
		c.fail(q, "draw the QR code", err)
		return
	}
	c.render(q, http.StatusOK, "invite", "Invitation for "+a.Username, "users",
		inviteView{Account: a, Link: link.String(), ExpiresAt: inv.ExpiresAt, QR: qr})
}

// overrideView is the page that shows an override code once.
type overrideView struct {
	Account flows.Account
	Code    string
	flows.OverrideCode
}

// overrideTTLs are the lifetimes the form offers.
var overrideTTLs = map[string]time.Duration{"": 0, "1h": time.Hour, "24h": 24 * time.Hour, "168h": 7 * 24 * time.Hour}

// override issues an override code and shows it, once.
func (c *Console) override(q *req, a flows.Account) {
	ttl, ok := overrideTTLs[q.r.PostForm.Get("ttl")]
	if !ok {
		c.message(q, http.StatusBadRequest, "Bad request", "Unknown lifetime.")
		return
	}
	why := reason(q)
	if why == "" {
		q.sess.addFlash(true, "Give a reason for the override code: the audit log keeps it.")
		c.redirect(q, userPath(a))
		return
	}
	oc, code, err := c.flows.IssueOverride(q.ctx, q.actor(), a.ID, ttl, why)
	if err != nil {
		c.actionFailed(q, a, "issue an override code", err)
		return
	}
	c.render(q, http.StatusOK, "override", "Override code for "+a.Username, "users",
		overrideView{Account: a, Code: code, OverrideCode: oc})
}

// unregister is POST /console/users/{user}/devices/{device}/unregister.
func (c *Console) unregister(q *req) {
	a, ok := c.account(q)
	if !ok {
		return
	}
	why := reason(q)
	if why == "" {
		q.sess.addFlash(true, "Give a reason to unregister a device: the audit log keeps it.")
		c.redirect(q, userPath(a))
		return
	}
	d, err := c.flows.UnregisterDevice(q.ctx, q.actor(), a.ID, q.r.PathValue("device"), why)
	if err != nil {
		c.actionFailed(q, a, "unregister the device", err)
		return
	}
	name := d.Name
	if name == "" {
		name = d.ID
	}
	q.sess.addFlash(false, "Unregistered the device "+name+".")
	c.redirect(q, userPath(a))
}
