// Package hostidp is a small but real Go identity provider that uses
// keystep's passwordless step: an OpenID Provider (zitadel/oidc's op) with
// one configured client, auth requests, codes and tokens in memory and one
// RSA signing key, whose login is "username, then keystep's step".
//
// The step comes through a step.Step it is given: step.Local in process, or
// the keystep binary launched as a go-plugin plugin (plugin/host). The
// login goes:
//
//  1. /authorize (the library) keeps the auth request and sends the browser
//     to /login, which binds the request to the browser with a cookie and
//     asks the username.
//  2. POST /login calls Step.Begin for that username (client "Host IdP",
//     the browser's IP and user agent, methods push, QR and override) and
//     shows the step page: the number to match, the QR code (an inline
//     data: image) and a Continue button; a form takes an administrative
//     override code, and Cancel gives up.
//  3. Continue (POST /login/step) calls Step.Await with a bounded context
//     (Options.AwaitTimeout, 10 s by default): a decision already made, or
//     made within that time, is answered at once; otherwise the step page
//     comes back saying the phone has not answered yet, and the user
//     presses Continue again. Approved: the auth request is done with
//     keystep's account id as subject (sub) and the browser goes to the
//     client's redirect URI with a code. Denied, expired or cancelled: the
//     client gets error=access_denied.
//
// The subject is keystep's stable account id, never the name typed:
// usernames match case-insensitively ("Alice" and "alice" are one user) and
// a name can be given to a new account once the old one is removed. The
// profile scope's preferred_username is the username as keystep stores it
// when the IdP is given Options.Accounts (the account is looked up before
// the step, which is then begun for that account id), and otherwise the
// name as the user typed it, for display only.
//
// Only the step begun last for an auth request can complete it: naming
// another user (POST /login again) replaces the step under the storage's
// lock and then cancels the old one, and the completion checks, under the
// same lock, that the result is for the step still in place and takes the
// subject from that step, never from what a later form posted.
//
// The library's /authorize/callback is not served: a request id alone
// never yields a code; only the browser that took the step gets one.
package hostidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	qrcode "github.com/skip2/go-qrcode"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/plugin/step"
)

// ClientName is the app name the phone shows for a sign-in at this IdP.
const ClientName = "Host IdP"

// Methods are the methods a sign-in here opens.
var Methods = []flows.Method{flows.MethodPush, flows.MethodQR, flows.MethodOverride}

// DefaultAwaitTimeout is how long Continue waits for the phone's decision.
const DefaultAwaitTimeout = 10 * time.Second

// Options configures an IdP.
type Options struct {
	// Issuer is the IdP's public URL (required); http:// is accepted (the
	// IdP is for tests and examples).
	Issuer string
	// Step runs keystep's passwordless step (required).
	Step step.Step
	// Accounts, if set, is used to look the typed username up before the
	// step: the step is begun for the account's id, and preferred_username
	// is the username as keystep stores it. Without it the step is begun
	// for the typed username and preferred_username is the name as typed.
	Accounts step.Accounts
	// The one client: its id, secret (client_secret_basic or _post) and
	// redirect URI (all required).
	ClientID, ClientSecret, RedirectURI string
	// AwaitTimeout bounds how long Continue waits for a decision before it
	// shows the step page again (default DefaultAwaitTimeout).
	AwaitTimeout time.Duration
	// Logger gets the IdP's log (default slog.Default()).
	Logger *slog.Logger
}

// IdP is the host identity provider.
type IdP struct {
	step         step.Step
	accounts     step.Accounts // nil: the typed username is used
	store        *storage
	op           *op.Provider
	handler      http.Handler
	log          *slog.Logger
	awaitTimeout time.Duration
	csp          string
	secure       bool // cookies are Secure (an https issuer)
}

// New builds the IdP: it makes its RSA signing key and its token
// encryption key.
func New(o Options) (*IdP, error) {
	if o.Step == nil {
		return nil, errors.New("hostidp: Options.Step is required")
	}
	issuer := strings.TrimRight(o.Issuer, "/")
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("hostidp: issuer %q must be an absolute http(s) URL", o.Issuer)
	}
	if o.ClientID == "" || o.ClientSecret == "" {
		return nil, errors.New("hostidp: the client id and secret are required")
	}
	ru, err := url.Parse(o.RedirectURI)
	if err != nil || (ru.Scheme != "http" && ru.Scheme != "https") || ru.Host == "" || ru.Fragment != "" {
		return nil, fmt.Errorf("hostidp: redirect URI %q must be an absolute http(s) URL", o.RedirectURI)
	}
	if o.AwaitTimeout == 0 {
		o.AwaitTimeout = DefaultAwaitTimeout
	}
	if o.AwaitTimeout < 0 {
		return nil, errors.New("hostidp: AwaitTimeout must not be negative")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("hostidp: signing key: %w", err)
	}
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, fmt.Errorf("hostidp: %w", err)
	}
	c := &client{id: o.ClientID, secret: o.ClientSecret, redirectURI: o.RedirectURI,
		loginURL: func(id string) string { return issuer + "/login?id=" + url.QueryEscape(id) }}
	p := &IdP{
		step: o.Step, accounts: o.Accounts, store: newStorage(c, key, randomID()[:16]), log: o.Logger, awaitTimeout: o.AwaitTimeout,
		secure: u.Scheme == "https",
		// Forms post here, and the answer redirects to the client: both
		// origins are allowed (browsers apply form-action to redirects).
		csp: "default-src 'none'; img-src data:; form-action 'self' " + ru.Scheme + "://" + ru.Host +
			"; frame-ancestors 'none'; base-uri 'none'",
	}
	config := &op.Config{
		CryptoKey:          cryptoKey,
		CodeMethodS256:     true,
		AuthMethodPost:     true,
		SupportedUILocales: []language.Tag{language.English},
		SupportedScopes:    []string{oidc.ScopeOpenID, oidc.ScopeProfile},
	}
	opts := []op.Option{op.WithLogger(o.Logger)}
	if u.Scheme == "http" {
		opts = append(opts, op.WithAllowInsecure())
	}
	p.op, err = op.NewProvider(config, p.store, op.StaticIssuer(issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("hostidp: %w", err)
	}
	endpoints := *op.DefaultEndpoints
	endpoints.DeviceAuthorization = nil // not offered
	router := op.RegisterLegacyServer(&server{LegacyServer: op.NewLegacyServer(p.op, endpoints), p: p},
		func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "not found", http.StatusNotFound) })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", p.usernameForm)
	mux.HandleFunc("POST /login", p.begin)
	mux.HandleFunc("GET /login/step", p.stepForm)
	mux.HandleFunc("POST /login/step", p.continueStep)
	mux.HandleFunc("POST /login/code", p.submitCode)
	mux.HandleFunc("POST /login/cancel", p.cancel)
	mux.Handle("/", router)
	p.handler = mux
	return p, nil
}

// Handler serves the OpenID Provider (discovery, /authorize, /oauth/token,
// /keys, /userinfo …) and the login pages under /login.
func (p *IdP) Handler() http.Handler { return p.handler }

// server is the library's LegacyServer with PKCE enforced whenever the
// auth request carried a challenge (the library checks it only when a
// verifier is sent).
type server struct {
	*op.LegacyServer
	p *IdP
}

// CodeExchange redeems a code for the client that asked for it.
func (s *server) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	authReq, err := op.AuthRequestByCode(ctx, s.p.store, r.Data.Code)
	if err != nil {
		return nil, err
	}
	if authReq.GetCodeChallenge() != nil || r.Data.CodeVerifier != "" {
		if err := op.AuthorizeCodeChallenge(r.Data.CodeVerifier, authReq.GetCodeChallenge()); err != nil {
			return nil, oidc.ErrInvalidGrant().WithDescription("the PKCE verifier does not match")
		}
	}
	if r.Client.GetID() != authReq.GetClientID() || r.Data.RedirectURI != authReq.GetRedirectURI() {
		return nil, oidc.ErrInvalidGrant()
	}
	resp, err := op.CreateTokenResponse(ctx, authReq, r.Client, s.p.op, true, r.Data.Code, "")
	if err != nil {
		return nil, err
	}
	return op.NewResponse(resp), nil
}

// txView is a begun step as the step page shows it, with the user it was
// begun for: the completion takes the subject from here.
type txView struct {
	id        string
	username  string // the username shown (keystep's spelling with Options.Accounts, else as typed)
	accountID string // keystep's account id ("" without Options.Accounts: the result names it)
	number    string
	qr        template.URL
	expiresAt time.Time
	override  bool
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// cookieName is the cookie that binds one auth request to one browser.
func cookieName(id string) string { return "hostidp_" + id }

// usernameForm binds the auth request to this browser (the first browser
// that opens it) and asks the username.
func (p *IdP) usernameForm(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	token := randomID() + randomID()
	a, err := p.store.update(id, func(a *authRequest) error {
		if a.done {
			return errNotFound // answered already
		}
		if a.browser != ([32]byte{}) {
			if c, err := r.Cookie(cookieName(id)); err == nil && sha256.Sum256([]byte(c.Value)) == a.browser {
				token = ""
				return nil
			}
			return errOtherBrowser
		}
		a.browser = sha256.Sum256([]byte(token))
		return nil
	})
	if err != nil {
		p.requestError(w, err)
		return
	}
	if token != "" {
		http.SetCookie(w, &http.Cookie{Name: cookieName(id), Value: token, Path: "/login", MaxAge: int(requestTTL / time.Second),
			HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode})
	}
	p.render(w, http.StatusOK, "username", usernamePage{ID: a.id, Username: a.username})
}

var (
	errOtherBrowser = errors.New("the sign-in was started in another browser")
	// errReplaced is a step that is no longer the auth request's: the
	// user named someone else in the meantime.
	errReplaced = errors.New("the sign-in was started again")
)

// requestError answers a login request whose auth request cannot be used.
func (p *IdP) requestError(w http.ResponseWriter, err error) {
	if errors.Is(err, errOtherBrowser) {
		p.errorPage(w, http.StatusForbidden, "This sign-in was started in another browser.")
		return
	}
	if errors.Is(err, errReplaced) {
		p.errorPage(w, http.StatusConflict, "This sign-in was started again in the meantime. Use the latest page.")
		return
	}
	p.errorPage(w, http.StatusNotFound, "This sign-in has expired or is unknown.")
}

// loginRequest is the auth request a login form posts, checked: the post
// comes from this site, in the browser the request is bound to.
func (p *IdP) loginRequest(w http.ResponseWriter, r *http.Request, id string) (*authRequest, bool) {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" {
		p.errorPage(w, http.StatusForbidden, "This form can only be sent from this site.")
		return nil, false
	}
	a, err := p.store.request(id)
	if err == nil {
		c, cerr := r.Cookie(cookieName(id))
		if cerr != nil || a.browser == ([32]byte{}) {
			err = errOtherBrowser
		} else if h := sha256.Sum256([]byte(c.Value)); subtle.ConstantTimeCompare(h[:], a.browser[:]) != 1 {
			err = errOtherBrowser
		}
	}
	if err == nil && a.done {
		err = errNotFound // answered already
	}
	if err != nil {
		p.requestError(w, err)
		return nil, false
	}
	return a, true
}

// maxUsername bounds the username typed.
const maxUsername = 256

// begin starts keystep's step for the username typed.
func (p *IdP) begin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	id, username := r.PostFormValue("id"), strings.TrimSpace(r.PostFormValue("username"))
	a, ok := p.loginRequest(w, r, id)
	if !ok {
		return
	}
	if username == "" || len(username) > maxUsername || strings.ContainsFunc(username, unicode.IsControl) {
		p.render(w, http.StatusOK, "username", usernamePage{ID: id, Error: "Type your username."})
		return
	}
	req := step.BeginRequest{Username: username, Client: ClientName, IP: clientIP(r),
		UserAgent: cleanUserAgent(r.UserAgent()), Methods: Methods}
	shown, accountID := username, ""
	if p.accounts != nil {
		acc, err := p.accounts.GetAccount(r.Context(), step.AccountRef{Username: username})
		if err != nil {
			p.log.Info("look the account up", "auth_request", id, "username", username, "err", err)
			p.render(w, http.StatusOK, "username", usernamePage{ID: id, Username: username, Error: beginError(err)})
			return
		}
		req.Username, req.AccountID, shown, accountID = "", acc.ID, acc.Username, acc.ID
	}
	tx, err := p.step.Begin(r.Context(), req)
	if err != nil {
		p.log.Info("begin the step", "auth_request", id, "username", username, "err", err)
		p.render(w, http.StatusOK, "username", usernamePage{ID: id, Username: username, Error: beginError(err)})
		return
	}
	v := &txView{id: tx.ID, username: shown, accountID: accountID, number: tx.Number, expiresAt: tx.ExpiresAt,
		override: slices.Contains(tx.Fallbacks, flows.MethodOverride)}
	png := tx.QRPNG
	if png == nil && tx.QRPayload != "" {
		if png, err = qrcode.Encode(tx.QRPayload, qrcode.Medium, 256); err != nil {
			p.log.Warn("QR image", "err", err)
		}
	}
	if png != nil {
		v.qr = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
	}
	// Replace the step the form was posted over, and only that one: a
	// concurrent POST /login (or a completion) in between makes this one
	// lose, and once replaced the old step can no longer complete the
	// request (finish checks the step in place).
	var old *txView
	if _, err := p.store.update(id, func(x *authRequest) error {
		if x.done {
			return errNotFound // answered already
		}
		if !sameTx(x.tx, a.tx) {
			return errReplaced
		}
		old, x.username, x.tx = x.tx, username, v
		return nil
	}); err != nil {
		_, _ = p.step.Cancel(context.WithoutCancel(r.Context()), tx.ID, "the auth request was answered or started again")
		p.requestError(w, err)
		return
	}
	if old != nil { // the user went back and named someone else: end the old step
		if _, err := p.step.Cancel(context.WithoutCancel(r.Context()), old.id, "the user started over at the host IdP"); err != nil {
			p.log.Info("cancel the earlier step", "auth_request", id, "signin", old.id, "err", err)
		}
	}
	p.log.Info("step begun", "auth_request", id, "username", username, "signin", tx.ID)
	http.Redirect(w, r, "/login/step?id="+url.QueryEscape(id), http.StatusSeeOther)
}

// sameTx reports whether two views are of the same step (or both none).
func sameTx(a, b *txView) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.id == b.id
}

// beginError is what the username form says when Begin refuses.
func beginError(err error) string {
	var rl *flows.RateLimitError
	switch {
	case errors.As(err, &rl):
		return fmt.Sprintf("Too many sign-ins. Try again in %s.", rl.RetryAfter.Round(time.Second))
	case errors.Is(err, flows.ErrNotFound), errors.Is(err, flows.ErrAccountSuspended), errors.Is(err, flows.ErrAccountRemoved),
		errors.Is(err, flows.ErrNoDevice), errors.Is(err, flows.ErrInvalid):
		return "This user cannot sign in here. Ask your administrator."
	}
	return "The sign-in could not start. Try again later."
}

// stepForm shows the begun step.
func (p *IdP) stepForm(w http.ResponseWriter, r *http.Request) {
	a, ok := p.loginRequest(w, r, r.URL.Query().Get("id"))
	if !ok {
		return
	}
	if a.tx == nil {
		http.Redirect(w, r, "/login?id="+url.QueryEscape(a.id), http.StatusSeeOther)
		return
	}
	p.showStep(w, http.StatusOK, a, "")
}

func (p *IdP) showStep(w http.ResponseWriter, status int, a *authRequest, notice string) {
	p.render(w, status, "step", stepPage{ID: a.id, Username: a.tx.username, Number: a.tx.number, QR: a.tx.qr,
		Expires: formatExpiry(a.tx.expiresAt), Override: a.tx.override, Notice: notice})
}

// stepRequest is loginRequest for the forms of the step page.
func (p *IdP) stepRequest(w http.ResponseWriter, r *http.Request) (*authRequest, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	a, ok := p.loginRequest(w, r, r.PostFormValue("id"))
	if !ok {
		return nil, false
	}
	if a.tx == nil {
		p.errorPage(w, http.StatusConflict, "Type your username first.")
		return nil, false
	}
	return a, true
}

// continueStep waits, at most AwaitTimeout, for the phone's decision.
func (p *IdP) continueStep(w http.ResponseWriter, r *http.Request) {
	a, ok := p.stepRequest(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.awaitTimeout)
	defer cancel()
	res, err := p.step.Await(ctx, a.tx.id, nil)
	if err != nil {
		if ctx.Err() != nil && r.Context().Err() == nil {
			p.showStep(w, http.StatusOK, a, "Your phone has not answered yet. Approve the request on it, then press Continue.")
			return
		}
		p.stepFailed(w, r, a, err)
		return
	}
	p.finish(w, r, a, res)
}

// submitCode checks an administrative override code.
func (p *IdP) submitCode(w http.ResponseWriter, r *http.Request) {
	a, ok := p.stepRequest(w, r)
	if !ok {
		return
	}
	code := strings.TrimSpace(r.PostFormValue("code"))
	if code == "" || len(code) > 64 {
		p.showStep(w, http.StatusOK, a, "Type the code your administrator gave you.")
		return
	}
	res, err := p.step.SubmitCode(r.Context(), a.tx.id, code, clientIP(r))
	var rl *flows.RateLimitError
	switch {
	case errors.As(err, &rl):
		p.showStep(w, http.StatusOK, a, fmt.Sprintf("Too many attempts. Try again in %s.", rl.RetryAfter.Round(time.Second)))
	case errors.Is(err, flows.ErrWrongCode), errors.Is(err, flows.ErrLocked):
		p.log.Info("override code refused", "auth_request", a.id, "signin", a.tx.id, "err", err)
		p.showStep(w, http.StatusOK, a, "That code did not work.")
	case err != nil:
		p.stepFailed(w, r, a, err)
	default:
		p.finish(w, r, a, res)
	}
}

// cancel ends the step at the user's wish; the client hears access_denied.
func (p *IdP) cancel(w http.ResponseWriter, r *http.Request) {
	a, ok := p.stepRequest(w, r)
	if !ok {
		return
	}
	res, err := p.step.Cancel(r.Context(), a.tx.id, "the user cancelled at the host IdP")
	if err != nil && !errors.Is(err, flows.ErrAlreadyDecided) {
		p.stepFailed(w, r, a, err)
		return
	}
	if err != nil { // decided in the meantime: the decision stands
		if res, err = p.step.Await(r.Context(), a.tx.id, nil); err != nil {
			p.stepFailed(w, r, a, err)
			return
		}
	}
	p.finish(w, r, a, res)
}

// amrOf is the ID token's amr for the method that decided.
func amrOf(m flows.Method) []string {
	switch m {
	case flows.MethodOverride:
		return []string{"otp"}
	case flows.MethodPush, flows.MethodQR:
		return []string{"pop"}
	}
	return nil
}

// finish answers the client with the step's final result.
func (p *IdP) finish(w http.ResponseWriter, r *http.Request, a *authRequest, res step.Result) {
	if res.ID != a.tx.id {
		p.stepFailed(w, r, a, fmt.Errorf("the result is for sign-in %q, not %q", res.ID, a.tx.id))
		return
	}
	if !res.Approved() {
		if !res.Status.Final() {
			p.showStep(w, http.StatusOK, a, "Your phone has not answered yet.")
			return
		}
		p.log.Info("sign-in refused", "auth_request", a.id, "username", a.tx.username, "signin", res.ID, "status", res.Status)
		p.accessDenied(w, r, a, fmt.Sprintf("the sign-in was %s", res.Status))
		return
	}
	authTime := res.DecidedAt
	if authTime.IsZero() {
		authTime = time.Now()
	}
	if res.AccountID == "" || (a.tx.accountID != "" && res.AccountID != a.tx.accountID) {
		p.stepFailed(w, r, a, fmt.Errorf("sign-in %q approved account %q, not %q", res.ID, res.AccountID, a.tx.accountID))
		return
	}
	// The subject comes from the step in place, checked under the lock to
	// be the one that was approved: a later POST /login may have replaced
	// it since a was read.
	done, err := p.store.update(a.id, func(x *authRequest) error {
		if x.done {
			return errNotFound // a second Continue: the first got the code
		}
		if x.tx == nil || x.tx.id != res.ID {
			return errReplaced
		}
		x.done, x.subject, x.preferredUsername, x.authTime, x.amr = true, res.AccountID, x.tx.username, authTime, amrOf(res.Method)
		return nil
	})
	if err != nil {
		p.log.Info("approved sign-in not used", "auth_request", a.id, "signin", res.ID, "err", err)
		p.requestError(w, err)
		return
	}
	p.log.Info("sign-in approved", "auth_request", a.id, "username", done.preferredUsername, "account", done.subject,
		"signin", res.ID, "method", res.Method)
	op.AuthResponse(done, p.op, w, r)
}

// stepFailed answers an error of the step: one that ends the sign-in goes
// to the client as access_denied; anything else is an error page.
func (p *IdP) stepFailed(w http.ResponseWriter, r *http.Request, a *authRequest, err error) {
	if errors.Is(err, flows.ErrExpired) || errors.Is(err, flows.ErrNotFound) || errors.Is(err, flows.ErrAlreadyDecided) {
		p.log.Info("step ended", "auth_request", a.id, "signin", a.tx.id, "err", err)
		p.accessDenied(w, r, a, "the sign-in ended")
		return
	}
	p.log.Error("step", "auth_request", a.id, "signin", a.tx.id, "err", err)
	p.errorPage(w, http.StatusBadGateway, "The sign-in service is not available. Try again later.")
}

// accessDenied ends the auth request and sends the browser back to the
// client with error=access_denied (built here rather than with
// op.AuthRequestError, which logs through slog's default logger).
func (p *IdP) accessDenied(w http.ResponseWriter, r *http.Request, a *authRequest, desc string) {
	// Only the step in place ends the request: one replaced by a later
	// POST /login (and so cancelled) does not end its successor.
	if !p.store.dropIf(a.id, func(x *authRequest) bool { return !x.done && sameTx(x.tx, a.tx) }) {
		p.requestError(w, errReplaced)
		return
	}
	e := oidc.ErrAccessDenied().WithDescription("%s", desc)
	e.State = a.state
	u, err := op.AuthResponseURL(a.redirectURI, a.responseType, a.responseMode, e, p.op.Encoder())
	if err != nil {
		p.log.Error("access_denied response", "auth_request", a.id, "err", err)
		p.errorPage(w, http.StatusForbidden, "The sign-in was refused.")
		return
	}
	http.Redirect(w, r, u, http.StatusFound)
}

// clientIP is the browser's address (no proxy is trusted).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// maxUserAgent bounds the user agent passed to the step, in bytes.
const maxUserAgent = 512

// cleanUserAgent is the user agent as the step accepts it: valid UTF-8
// without control characters, at most maxUserAgent bytes cut on a rune
// boundary (flows refuses anything else, and the user would be told they
// cannot sign in).
func cleanUserAgent(ua string) string {
	ua = strings.ToValidUTF8(ua, "\uFFFD")
	ua = strings.Map(func(c rune) rune {
		if unicode.IsControl(c) {
			return -1
		}
		return c
	}, ua)
	ua = strings.TrimSpace(ua)
	if len(ua) <= maxUserAgent {
		return ua
	}
	n := maxUserAgent
	for n > 0 && !utf8.RuneStart(ua[n]) {
		n--
	}
	return strings.TrimSpace(ua[:n])
}
