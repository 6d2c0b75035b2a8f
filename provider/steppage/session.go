package steppage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/sessions"

	"github.com/keystep/keystep/flows"
)

// Cookie keys and sessions.
const (
	// CookieKeyAlg names the stored cookie keys: 32 bytes of HMAC-SHA256
	// key, then 32 bytes of AES-256 key, sealed under the server's secret.
	CookieKeyAlg = "HS256+A256"
	// cookieKeyRotate is the age at which a new cookie key is made.
	cookieKeyRotate = 30 * 24 * time.Hour
	// cookieKeyRetire is the age at which an old cookie key is retired.
	cookieKeyRetire = 60 * 24 * time.Hour
	// keyReload is how often the keys are read again, so that a key one
	// instance made is soon used by all.
	keyReload = time.Hour
	// keyReloadOnFailure is how often a cookie that does not decode may
	// make the keys be read again (another instance may have a newer key).
	keyReloadOnFailure = time.Minute
	// sessionMaxAge is the session cookie's lifetime, in seconds.
	sessionMaxAge = 900
	// maxSteps is how many requests' sign-ins one session remembers: the
	// cookie must stay under 4 KiB.
	maxSteps = 4
	// sessionValue is the key of the one value the session keeps.
	sessionValue = "d"
)

// Cookie names: with Secure, the __Host- prefix pins the cookie to this
// host, path "/" and HTTPS.
const (
	CookieNameSecure   = "__Host-keystep-step"
	CookieNameInsecure = "keystep-step"
)

// sessionData is what the session cookie holds (encrypted).
type sessionData struct {
	ID    string      `json:"i"` // random; its hash binds auth requests
	CSRF  string      `json:"c"` // the token every POST carries
	Steps []stepEntry `json:"s,omitempty"`
}

// stepEntry is the current sign-in of one request, as this browser knows
// it: what the page shows and nobody else may learn (the QR secret).
type stepEntry struct {
	Request string `json:"r"`
	SignIn  string `json:"g"`
	Number  string `json:"n,omitempty"`
	QR      string `json:"q,omitempty"`
}

// session is one browser's session as loaded for a request.
type session struct {
	raw  *sessions.Session
	data sessionData
}

// hash is what BindAuthRequest records: SHA-256 of the session id.
func (s *session) hash() []byte {
	h := sha256.Sum256([]byte(s.data.ID))
	return h[:]
}

// boundTo reports, in constant time, whether the session is the one that
// bound ar.
func (s *session) boundTo(ar flows.AuthRequest) bool {
	if len(ar.SessionHash) == 0 || s.data.ID == "" {
		return false
	}
	return subtle.ConstantTimeCompare(s.hash(), ar.SessionHash) == 1
}

// csrfOK reports, in constant time, whether token is the session's.
func (s *session) csrfOK(token string) bool {
	if s.data.CSRF == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(token), []byte(s.data.CSRF)) == 1
}

// step returns the entry of a request's sign-in, if the session has one.
func (s *session) step(requestID string) (stepEntry, bool) {
	for _, e := range s.data.Steps {
		if e.Request == requestID {
			return e, true
		}
	}
	return stepEntry{}, false
}

// setStep records a request's current sign-in, dropping the oldest entries
// beyond maxSteps.
func (s *session) setStep(e stepEntry) {
	steps := make([]stepEntry, 0, maxSteps)
	for _, old := range s.data.Steps {
		if old.Request != e.Request {
			steps = append(steps, old)
		}
	}
	steps = append(steps, e)
	if len(steps) > maxSteps {
		steps = steps[len(steps)-maxSteps:]
	}
	s.data.Steps = steps
}

// randomToken returns 32 random bytes as unpadded base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// cookieKeys holds the session codecs made from the stored cookie keys,
// read again now and then.
type cookieKeys struct {
	store    atomic.Pointer[sessions.CookieStore]
	mu       sync.Mutex // serialises reloads
	loadedAt time.Time
	failedAt time.Time // the last reload a bad cookie caused
}

// loadKeys reads the cookie keys from the store: it makes a new key if
// there is none or the newest is older than cookieKeyRotate, retires keys
// older than cookieKeyRetire (never the newest), and builds the cookie
// store with the newest key first.
func (h *Handler) loadKeys(ctx context.Context) error {
	st := h.flows.Store()
	now := h.clock.Now().UTC()
	keys, err := st.ListKeys(ctx, flows.KeyUseCookie, now)
	if err != nil {
		return fmt.Errorf("list cookie keys: %w", err)
	}
	if len(keys) == 0 || now.Sub(keys[len(keys)-1].CreatedAt) >= cookieKeyRotate {
		k, err := h.newCookieKey(ctx, now)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	pairs := make([][]byte, 0, 2*len(keys))
	for i := len(keys) - 1; i >= 0; i-- { // newest first
		k := keys[i]
		if i < len(keys)-1 && now.Sub(k.CreatedAt) >= cookieKeyRetire {
			if err := st.RetireKey(ctx, k.ID, now); err != nil && !errors.Is(err, flows.ErrNotFound) {
				return fmt.Errorf("retire cookie key %s: %w", k.ID, err)
			}
			continue
		}
		if k.Alg != CookieKeyAlg {
			return fmt.Errorf("cookie key %s: unknown algorithm %q", k.ID, k.Alg)
		}
		raw, err := h.seal.Open(k.Sealed, []byte(k.ID))
		if err != nil {
			return fmt.Errorf("cookie key %s (is the server secret the same on every instance?): %w", k.ID, err)
		}
		if len(raw) != 64 {
			return fmt.Errorf("cookie key %s: %d bytes, not 64", k.ID, len(raw))
		}
		pairs = append(pairs, raw[:32], raw[32:])
	}
	cs := sessions.NewCookieStore(pairs...)
	cs.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   sessionMaxAge,
		Secure:   h.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	cs.MaxAge(sessionMaxAge)
	h.keys.store.Store(cs)
	h.keys.loadedAt = now
	return nil
}

// newCookieKey makes and stores a new cookie key.
func (h *Handler) newCookieKey(ctx context.Context, now time.Time) (flows.StoredKey, error) {
	raw := make([]byte, 64)
	_, _ = rand.Read(raw) // never fails (crypto/rand)
	id := flows.NewID()
	k := flows.StoredKey{
		ID: id, Use: flows.KeyUseCookie, Alg: CookieKeyAlg,
		Sealed: h.seal.Seal(raw, []byte(id)), CreatedAt: now, ActiveAt: now,
	}
	if err := h.flows.Store().CreateKey(ctx, k); err != nil {
		return flows.StoredKey{}, fmt.Errorf("create cookie key: %w", err)
	}
	h.log.InfoContext(ctx, "made a new session cookie key", "kid", id)
	return k, nil
}

// reloadKeys reads the keys again if they were last read before
// now-after (and, for a bad cookie, no other bad cookie did so within
// keyReloadOnFailure). A failure is logged; the old keys stay in use.
func (h *Handler) reloadKeys(ctx context.Context, badCookie bool) bool {
	h.keys.mu.Lock()
	defer h.keys.mu.Unlock()
	now := h.clock.Now().UTC()
	switch {
	case badCookie && now.Sub(h.keys.failedAt) >= keyReloadOnFailure:
		h.keys.failedAt = now
	case now.Sub(h.keys.loadedAt) >= keyReload:
	default:
		return false
	}
	if err := h.loadKeys(context.WithoutCancel(ctx)); err != nil {
		h.log.ErrorContext(ctx, "reloading the session cookie keys", "err", err)
		return false
	}
	return true
}

// loadSession returns the browser's session, or a new one (with a fresh id
// and CSRF token) if it has none that decodes.
func (h *Handler) loadSession(r *http.Request) *session {
	h.reloadKeys(r.Context(), false)
	raw, err := h.keys.store.Load().New(r, h.cookieName)
	if err != nil && h.reloadKeys(r.Context(), true) {
		raw, err = h.keys.store.Load().New(r, h.cookieName)
	}
	s := &session{raw: raw}
	if err == nil && !raw.IsNew {
		if v, ok := raw.Values[sessionValue].(string); ok && json.Unmarshal([]byte(v), &s.data) == nil &&
			len(s.data.ID) == 43 && len(s.data.CSRF) == 43 {
			return s
		}
	}
	raw.Values = map[any]any{}
	s.data = sessionData{ID: randomToken(), CSRF: randomToken()}
	return s
}

// saveSession writes the session cookie (before the response's header).
// A cookie grown too large keeps only the newest step.
func (h *Handler) saveSession(w http.ResponseWriter, r *http.Request, s *session) error {
	cs := h.keys.store.Load()
	for {
		b, err := json.Marshal(s.data)
		if err != nil {
			return fmt.Errorf("encode session: %w", err)
		}
		s.raw.Values = map[any]any{sessionValue: string(b)}
		err = cs.Save(r, w, s.raw)
		if err == nil {
			return nil
		}
		if len(s.data.Steps) <= 1 {
			return fmt.Errorf("save session: %w", err)
		}
		s.data.Steps = s.data.Steps[len(s.data.Steps)-1:]
	}
}
