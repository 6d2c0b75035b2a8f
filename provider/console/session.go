package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/sessions"

	"github.com/keystep/keystep/flows"
)

// Cookie names: with Secure, the __Host- prefix pins a cookie to this
// host, path "/" and HTTPS.
const (
	CookieNameSecure        = "__Host-keystep-console"
	CookieNameInsecure      = "keystep-console"
	LoginCookieNameSecure   = "__Host-keystep-console-login"
	LoginCookieNameInsecure = "keystep-console-login"
)

// maxSessions bounds the sessions kept in memory; past it, a login
// forgets the ended ones, then the oldest.
const maxSessions = 10000

// loginCookieAge is how long the login form's CSRF cookie lives, in seconds.
const loginCookieAge = 3600

// session is one signed-in admin's session, kept in memory.
type session struct {
	id      string
	admin   string
	csrf    string
	created time.Time

	mu    sync.Mutex
	seen  time.Time
	flash []flash // shown once, on the next page
}

// flash is a message a POST leaves for the page it redirects to.
type flash struct {
	Error bool
	Text  string
}

// csrfOK reports, in constant time, whether token is the session's.
func (s *session) csrfOK(token string) bool {
	return s.csrf != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.csrf)) == 1
}

// addFlash leaves a message for the next page.
func (s *session) addFlash(isErr bool, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flash = append(s.flash, flash{Error: isErr, Text: text})
}

// takeFlash returns and forgets the messages.
func (s *session) takeFlash() []flash {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flash
	s.flash = nil
	return f
}

// sessionStore keeps the sessions and signs their cookies.
type sessionStore struct {
	clock    flows.Clock
	idle     time.Duration
	lifetime time.Duration
	cookies  *sessions.CookieStore
	name     string // the session cookie's name
	login    string // the login form's cookie's name

	mu sync.Mutex
	m  map[string]*session
}

// newSessionStore makes a store whose cookie keys are random: sessions
// live in this process only, so their cookies need no key beyond it.
func newSessionStore(clock flows.Clock, secure bool, idle, lifetime time.Duration) *sessionStore {
	key := func() []byte {
		b := make([]byte, 32)
		_, _ = rand.Read(b) // never fails (crypto/rand)
		return b
	}
	cs := sessions.NewCookieStore(key(), key())
	cs.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(lifetime / time.Second),
		Secure:   secure,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	}
	cs.MaxAge(int(lifetime / time.Second))
	st := &sessionStore{clock: clock, idle: idle, lifetime: lifetime, cookies: cs, m: map[string]*session{},
		name: CookieNameInsecure, login: LoginCookieNameInsecure}
	if secure {
		st.name, st.login = CookieNameSecure, LoginCookieNameSecure
	}
	return st
}

// randomToken returns 32 random bytes as unpadded base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// live reports whether s may still be used at now.
func (st *sessionStore) live(s *session, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Sub(s.seen) < st.idle && now.Sub(s.created) < st.lifetime
}

// load returns the request's live session, touching it, or nil. An ended
// session is forgotten.
func (st *sessionStore) load(r *http.Request) *session {
	raw, err := st.cookies.Get(r, st.name)
	if err != nil || raw.IsNew {
		return nil
	}
	id, _ := raw.Values["id"].(string)
	if len(id) != 43 {
		return nil
	}
	st.mu.Lock()
	s := st.m[id]
	st.mu.Unlock()
	if s == nil {
		return nil
	}
	now := st.clock.Now()
	if !st.live(s, now) {
		st.drop(id)
		return nil
	}
	s.mu.Lock()
	s.seen = now
	s.mu.Unlock()
	return s
}

// start makes a new session for admin (never reusing one the browser
// brought: no fixation) and sets its cookie.
func (st *sessionStore) start(w http.ResponseWriter, r *http.Request, admin string) (*session, error) {
	now := st.clock.Now()
	s := &session{id: randomToken(), admin: admin, csrf: randomToken(), created: now, seen: now}
	raw := sessions.NewSession(st.cookies, st.name)
	opts := *st.cookies.Options
	raw.Options = &opts
	raw.Values["id"] = s.id
	if err := raw.Save(r, w); err != nil {
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.m) >= maxSessions {
		st.sweep(now)
	}
	st.m[s.id] = s
	return s, nil
}

// sweep forgets ended sessions, then the oldest until there is room; the
// caller holds st.mu.
func (st *sessionStore) sweep(now time.Time) {
	var oldest *session
	for id, s := range st.m {
		if !st.live(s, now) {
			delete(st.m, id)
		} else if oldest == nil || s.created.Before(oldest.created) {
			oldest = s
		}
	}
	if len(st.m) >= maxSessions && oldest != nil {
		delete(st.m, oldest.id)
	}
}

// drop forgets a session.
func (st *sessionStore) drop(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.m, id)
}

// end forgets the session and clears its cookie.
func (st *sessionStore) end(w http.ResponseWriter, s *session) {
	st.drop(s.id)
	http.SetCookie(w, st.expired(st.name))
}

// expired is a cookie that deletes name.
func (st *sessionStore) expired(name string) *http.Cookie {
	return &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: st.cookies.Options.Secure,
		HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// loginToken returns the login form's CSRF token, from its signed cookie,
// or a new one with the cookie set (double submit: the form and the
// cookie must carry the same token).
func (st *sessionStore) loginToken(w http.ResponseWriter, r *http.Request) (string, error) {
	if t, ok := st.cookieLoginToken(r); ok {
		return t, nil
	}
	raw := sessions.NewSession(st.cookies, st.login)
	raw.Options = &sessions.Options{Path: "/", MaxAge: loginCookieAge, Secure: st.cookies.Options.Secure,
		HttpOnly: true, SameSite: http.SameSiteStrictMode}
	t := randomToken()
	raw.Values["t"] = t
	if err := raw.Save(r, w); err != nil {
		return "", err
	}
	return t, nil
}

// cookieLoginToken is the token of the login cookie the browser brought.
func (st *sessionStore) cookieLoginToken(r *http.Request) (string, bool) {
	raw, err := st.cookies.Get(r, st.login)
	if err != nil || raw.IsNew {
		return "", false
	}
	t, _ := raw.Values["t"].(string)
	return t, len(t) == 43
}

// loginTokenOK reports, in constant time, whether the login form's token
// is the one of the browser's login cookie.
func (st *sessionStore) loginTokenOK(r *http.Request, token string) bool {
	t, ok := st.cookieLoginToken(r)
	return ok && subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1
}
