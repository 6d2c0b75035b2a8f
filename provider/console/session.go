package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/keystep/keystep/provider/internal/seal"

	"github.com/keystep/keystep/flows"
)

// Cookie names: with Secure, the __Host- prefix pins a cookie to this
// host, path "/" and HTTPS.
const (
	CookieNameSecure        = "__Host-keystep-console"
	CookieNameInsecure      = "keystep-console"
	LoginCookieNameSecure   = "__Host-keystep-console-login"
	LoginCookieNameInsecure = "keystep-console-login"
	FlashCookieNameSecure   = "__Host-keystep-console-flash"
	FlashCookieNameInsecure = "keystep-console-flash"
)

// SessionKind is the flows.Session Kind of console sessions.
const SessionKind = "console"

// touchEvery is how stale a session's stored LastSeenAt may get before a
// request records its use: at most one write per session a minute, not one
// per page.
const touchEvery = time.Minute

// loginCookieAge is how long the login form's CSRF cookie lives, in seconds.
const loginCookieAge = 3600

// flashCookieAge is how long a flash message waits for its page, in seconds.
const flashCookieAge = 300

// maxFlashText bounds one flash message, so that the flash cookie stays small.
const maxFlashText = 300

// session is one signed-in admin's session as one request sees it: read
// from the store, where every instance finds it.
type session struct {
	id    string // hex SHA-256 of the cookie's token: the store's key
	token string // the cookie's token (keys the flash cookie's MAC)
	admin string
	csrf  string

	flash      []flash // shown on the next page rendered
	fromCookie bool    // some of flash came from the flash cookie
}

// sessionData is the JSON a console session keeps in the store. The CSRF
// token is kept as it is: it must be put in every form, and is worth
// nothing without the session's cookie, which the store never sees.
// Admin is the admin token of the login sealed with a key made from the
// cookie's token (AES-256-GCM): every request unseals it and checks it
// with the serving instance's admin check, so that an admin removed from
// the configuration, or whose token changed, loses their sessions on every
// instance that no longer accepts the token, and a session made with one
// instance's own admin token is no session on an instance that does not
// know it. Without the cookie the sealed token cannot be read.
type sessionData struct {
	CSRF  string `json:"csrf"`
	Admin []byte `json:"admin"`
}

// adminKey is the key that seals the admin token of the session whose
// cookie carries token (a 32-byte secret, base64).
func adminKey(token string) (seal.Key, error) {
	return seal.Derive([]byte(token), "keystep console admin token")
}

// sealAdmin seals an admin token for the session (id is its store key,
// bound in as additional data).
func sealAdmin(token, id, adminToken string) ([]byte, error) {
	k, err := adminKey(token)
	if err != nil {
		return nil, err
	}
	return k.Seal([]byte(adminToken), []byte(id)), nil
}

// openAdmin unseals what sealAdmin sealed.
func openAdmin(token, id string, sealed []byte) (string, bool) {
	k, err := adminKey(token)
	if err != nil {
		return "", false
	}
	plain, err := k.Open(sealed, []byte(id))
	if err != nil {
		return "", false
	}
	return string(plain), true
}

// flash is a message a POST leaves for the page it redirects to.
type flash struct {
	Error bool   `json:"e,omitempty"`
	Text  string `json:"t"`
}

// csrfOK reports, in constant time, whether token is the session's.
func (s *session) csrfOK(token string) bool {
	return s.csrf != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) == 1
}

// addFlash leaves a message for the next page.
func (s *session) addFlash(isErr bool, text string) {
	if len(text) > maxFlashText {
		text = text[:maxFlashText] + "…"
	}
	s.flash = append(s.flash, flash{Error: isErr, Text: text})
}

// takeFlash returns and forgets the messages.
func (s *session) takeFlash() []flash {
	f := s.flash
	s.flash = nil
	return f
}

// sessionStore keeps the console's sessions in the flows store, so that
// every instance on that store shares them.
type sessionStore struct {
	store flows.Store
	// adminFor names the admin of an admin token (provider.Server.AdminFor).
	adminFor func(token string) (string, bool)
	clock    flows.Clock
	idle     time.Duration
	lifetime time.Duration
	secure   bool
	name     string // the session cookie's name
	login    string // the login form's cookie's name
	flash    string // the flash messages' cookie's name
}

func newSessionStore(store flows.Store, adminFor func(string) (string, bool), clock flows.Clock, secure bool,
	idle, lifetime time.Duration) *sessionStore {
	st := &sessionStore{store: store, adminFor: adminFor, clock: clock, idle: idle, lifetime: lifetime, secure: secure,
		name: CookieNameInsecure, login: LoginCookieNameInsecure, flash: FlashCookieNameInsecure}
	if secure {
		st.name, st.login, st.flash = CookieNameSecure, LoginCookieNameSecure, FlashCookieNameSecure
	}
	return st
}

// randomToken returns 32 random bytes as unpadded base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// validToken reports whether t has the form of a randomToken.
func validToken(t string) bool {
	if len(t) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	return err == nil && len(b) == 32
}

// sessionID is the store's key of the session whose cookie carries token:
// its SHA-256, so that a row read from the database is no cookie. A hash of
// a 256-bit random secret needs no constant-time lookup.
func sessionID(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// cookieToken is the session token of the request's session cookie.
func (st *sessionStore) cookieToken(r *http.Request) (string, bool) {
	c, err := r.Cookie(st.name)
	if err != nil || !validToken(c.Value) {
		return "", false
	}
	return c.Value, true
}

// load returns the request's live session or nil (no cookie, an unknown,
// ended or logged-out session). It records the use in the store at most
// once every touchEvery. An ended session is deleted.
func (st *sessionStore) load(r *http.Request) (*session, error) {
	token, ok := st.cookieToken(r)
	if !ok {
		return nil, nil
	}
	ctx := r.Context()
	id := sessionID(token)
	row, err := st.store.GetSession(ctx, id)
	if errors.Is(err, flows.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var data sessionData
	if row.Kind != SessionKind || json.Unmarshal(row.Data, &data) != nil || data.CSRF == "" {
		return nil, nil
	}
	now := st.clock.Now()
	if now.Sub(row.LastSeenAt) >= st.idle || now.Sub(row.CreatedAt) >= st.lifetime || !now.Before(row.ExpiresAt) {
		if err := st.store.DeleteSession(ctx, id); err != nil {
			return nil, err
		}
		return nil, nil
	}
	// The login's admin token must still name the session's admin here. A
	// session refused for that is left alone: it may be good on an instance
	// that knows the token (each instance's own admin token file), and it
	// ends by its timeouts.
	adminToken, ok := openAdmin(token, id, data.Admin)
	if !ok {
		return nil, nil
	}
	if name, ok := st.adminFor(adminToken); !ok || name != row.Subject {
		return nil, nil
	}
	if now.Sub(row.LastSeenAt) >= touchEvery {
		err := st.store.TouchSession(ctx, id, now)
		if errors.Is(err, flows.ErrNotFound) { // logged out meanwhile
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	s := &session{id: id, token: token, admin: row.Subject, csrf: data.CSRF}
	s.flash, s.fromCookie = st.readFlash(r, token)
	return s, nil
}

// start makes a new session in the store for admin, who signed in with
// adminToken (never reusing a session the browser brought: no fixation),
// and sets its cookie.
func (st *sessionStore) start(ctx context.Context, w http.ResponseWriter, admin, adminToken string) (*session, error) {
	now := st.clock.Now()
	token := randomToken()
	s := &session{id: sessionID(token), token: token, admin: admin, csrf: randomToken()}
	sealed, err := sealAdmin(token, s.id, adminToken)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(sessionData{CSRF: s.csrf, Admin: sealed})
	if err != nil {
		return nil, err
	}
	err = st.store.CreateSession(ctx, flows.Session{ID: s.id, Kind: SessionKind, Subject: admin, Data: data,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(st.lifetime)})
	if err != nil {
		return nil, err
	}
	http.SetCookie(w, &http.Cookie{Name: st.name, Value: token, Path: "/", MaxAge: int(st.lifetime / time.Second),
		Secure: st.secure, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return s, nil
}

// dropBrowsers deletes the session the request's cookie names, live or not
// (a new login replaces it).
func (st *sessionStore) dropBrowsers(r *http.Request) error {
	token, ok := st.cookieToken(r)
	if !ok {
		return nil
	}
	return st.store.DeleteSession(r.Context(), sessionID(token))
}

// drop deletes a session from the store.
func (st *sessionStore) drop(ctx context.Context, s *session) error {
	return st.store.DeleteSession(ctx, s.id)
}

// end deletes the session from the store, so that no instance accepts its
// cookie any more, and clears its cookies.
func (st *sessionStore) end(ctx context.Context, w http.ResponseWriter, s *session) error {
	if err := st.drop(ctx, s); err != nil {
		return err
	}
	http.SetCookie(w, st.expired(st.name))
	if s.fromCookie {
		http.SetCookie(w, st.expired(st.flash))
	}
	return nil
}

// expired is a cookie that deletes name.
func (st *sessionStore) expired(name string) *http.Cookie {
	return &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: st.secure,
		HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// loginToken returns the login form's CSRF token, from its cookie, or a new
// one with the cookie set (double submit: the form and the cookie must
// carry the same token). The cookie is a plain random token: any instance
// can check it, and with Secure its __Host- name keeps other hosts (a
// sibling subdomain) from planting one.
func (st *sessionStore) loginToken(w http.ResponseWriter, r *http.Request) string {
	if t, ok := st.cookieLoginToken(r); ok {
		return t
	}
	t := randomToken()
	http.SetCookie(w, &http.Cookie{Name: st.login, Value: t, Path: "/", MaxAge: loginCookieAge, Secure: st.secure,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return t
}

// cookieLoginToken is the token of the login cookie the browser brought.
func (st *sessionStore) cookieLoginToken(r *http.Request) (string, bool) {
	c, err := r.Cookie(st.login)
	if err != nil || !validToken(c.Value) {
		return "", false
	}
	return c.Value, true
}

// loginTokenOK reports, in constant time, whether the login form's token
// is the one of the browser's login cookie.
func (st *sessionStore) loginTokenOK(r *http.Request, token string) bool {
	t, ok := st.cookieLoginToken(r)
	return ok && subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1
}

// flashMAC authenticates a flash cookie's payload with the session's
// token: only the server that saw the session cookie could have written
// it, and it is worth nothing to another session.
func flashMAC(token, payload string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("keystep console flash\x00" + payload))
	return m.Sum(nil)
}

// saveFlash puts the session's messages in the flash cookie, for the page
// the answer redirects to (whichever instance serves it).
func (st *sessionStore) saveFlash(w http.ResponseWriter, s *session) {
	if len(s.flash) == 0 {
		return
	}
	b, err := json.Marshal(s.flash)
	if err != nil {
		return
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	value := payload + "." + base64.RawURLEncoding.EncodeToString(flashMAC(s.token, payload))
	http.SetCookie(w, &http.Cookie{Name: st.flash, Value: value, Path: "/", MaxAge: flashCookieAge, Secure: st.secure,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// readFlash returns the messages of the request's flash cookie if it is
// the session's (and whether there was one to clear).
func (st *sessionStore) readFlash(r *http.Request, token string) ([]flash, bool) {
	c, err := r.Cookie(st.flash)
	if err != nil || c.Value == "" {
		return nil, false
	}
	payload, mac, ok := strings.Cut(c.Value, ".")
	if !ok {
		return nil, true
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil || !hmac.Equal(got, flashMAC(token, payload)) {
		return nil, true
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, true
	}
	var f []flash
	if json.Unmarshal(b, &f) != nil {
		return nil, true
	}
	return f, true
}
