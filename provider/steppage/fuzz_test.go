package steppage

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/keystep/keystep/flows"
)

// formState is what a POST to the step page may change.
type formState struct {
	audit         int64
	signIn        string
	status        flows.SignInStatus
	session       []byte
	done, refused int
	mails         int
	requestDone   bool
}

func (e *env) formState(id string) formState {
	e.t.Helper()
	ar := e.authRequest(id)
	s := formState{audit: e.auditSeq(), signIn: ar.SignInID, session: ar.SessionHash, requestDone: ar.Done()}
	if ar.SignInID != "" {
		sgn, err := e.store.GetSignIn(e.ctx, ar.SignInID)
		if err != nil {
			e.t.Fatal(err)
		}
		s.status = sgn.Status
	}
	done, refused := e.reqs.calls()
	s.done, s.refused = len(done), len(refused)
	s.mails = len(e.mail.All())
	return s
}

// auditSeq is the sequence number of the last audit event (read from
// where it was read last, so that a long fuzz run stays fast).
func (e *env) auditSeq() int64 {
	e.t.Helper()
	evs, err := e.svc.Audit(e.ctx, flows.AuditFilter{AfterSeq: e.lastSeq})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ev := range evs {
		e.lastSeq = max(e.lastSeq, ev.Seq)
	}
	return e.lastSeq
}

func (a formState) equal(b formState) bool {
	return a.audit == b.audit && a.signIn == b.signIn && a.status == b.status && bytes.Equal(a.session, b.session) &&
		a.done == b.done && a.refused == b.refused && a.mails == b.mails && a.requestDone == b.requestDone
}

var fuzzRoutes = []string{"finish", "send", "code", "retry", "abort"}

// FuzzStepForms posts arbitrary forms to the step page's POST routes, for
// the request of a bound browser ("@" in the id stands for its id) or any
// other id, with its CSRF token (mode 0), none (1) or a wrong one (2). No
// answer is a 5xx, and junk (a wrong token, another id, a channel, code or
// reason that cannot be) changes nothing.
func FuzzStepForms(f *testing.F) {
	e := newEnvWith(f, envOptions{noTS: true})
	a := e.addUser("jo")
	e.enroll("jo")
	realID := e.newRequest(a, flows.MethodPush, flows.MethodQR, flows.MethodEmail, flows.MethodOverride)
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/step/"+realID, nil))
	if rec.Code != http.StatusOK {
		f.Fatalf("step page: %d", rec.Code)
	}
	cookies := rec.Result().Cookies()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(rec.Body.String())
	if len(cookies) != 1 || m == nil {
		f.Fatal("no session")
	}
	csrf := m[1]

	f.Add(uint8(0), "@", "", uint8(0))
	f.Add(uint8(1), "@", "fax", uint8(0))
	f.Add(uint8(2), "@", "<script>", uint8(0))
	f.Add(uint8(4), "@", "approved", uint8(0))
	f.Add(uint8(4), "@", "cancelled", uint8(1))
	f.Add(uint8(3), "..", "", uint8(0))

	f.Fuzz(func(t *testing.T, route uint8, id, value string, csrfMode uint8) {
		e.t = t
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		id = strings.ReplaceAll(id, "@", realID)
		form := url.Values{}
		field := map[string]string{"send": "channel", "code": "code", "abort": "reason"}[rt]
		if field != "" {
			form.Set(field, value)
		}
		switch csrfMode % 3 {
		case 0:
			form.Set("csrf", csrf)
		case 2:
			form.Set("csrf", value)
		}
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
		req.URL = &url.URL{Path: "/step/" + id + "/" + rt}
		req.RequestURI = req.URL.RequestURI()
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(cookies[0])

		refused := csrfMode%3 != 0 || id != realID
		junk := refused
		switch rt {
		case "send":
			junk = junk || value != "sms" && value != "email"
			refused = junk
		case "code":
			_, err := flows.NormalizeCode(value)
			junk = junk || err != nil // a typo: the form again, with a message
		case "abort":
			_, ok := parseReason(value)
			junk = junk || !ok
			refused = junk
		}
		before := e.formState(realID)
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s: %d\n%s", req.URL.Path, rec.Code, rec.Body)
		}
		if !junk {
			return
		}
		if refused && rec.Code < 300 {
			t.Errorf("junk POST %s (%q) answered %d", req.URL.Path, value, rec.Code)
		}
		if after := e.formState(realID); !after.equal(before) {
			t.Fatalf("junk POST %s (%q) changed the state: %+v -> %+v", req.URL.Path, value, before, after)
		}
	})
}
