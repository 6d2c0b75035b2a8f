package flows_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// mailbox is a flows.EmailSender that keeps what it is given, or fails
// with err when it is set.
type mailbox struct {
	mu   sync.Mutex
	msgs []flows.Email
	err  error
}

func (m *mailbox) SendEmail(_ context.Context, e flows.Email) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.msgs = append(m.msgs, e)
	return nil
}

func (m *mailbox) all() []flows.Email {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.msgs)
}

// smsbox is a flows.SMSSender that keeps what it is given.
type smsbox struct {
	mu   sync.Mutex
	msgs []flows.SMS
	err  error
}

func (m *smsbox) SendSMS(_ context.Context, s flows.SMS) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.msgs = append(m.msgs, s)
	return nil
}

func (m *smsbox) all() []flows.SMS {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.msgs)
}

// alertLog is a flows.AdminAlerter that keeps the alerts, or fails with err.
type alertLog struct {
	mu  sync.Mutex
	got []flows.AdminAlert
	err error
}

func (a *alertLog) Alert(_ context.Context, al flows.AdminAlert) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, al)
	return a.err
}

// kinds lists the kinds of the alerts so far.
func (a *alertLog) kinds() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, al := range a.got {
		out = append(out, al.Kind)
	}
	return out
}

func (a *alertLog) last() flows.AdminAlert {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.got) == 0 {
		return flows.AdminAlert{}
	}
	return a.got[len(a.got)-1]
}

// codeEnv is an env with recording senders, alerter and log.
type codeEnv struct {
	*env
	mail   *mailbox
	sms    *smsbox
	alerts *alertLog
	logs   *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newCodeEnv(t testing.TB, cfg flows.Config) *codeEnv {
	t.Helper()
	return newCodeEnvOn(t, nil, cfg)
}

// newCodeEnvOn is newCodeEnv on the store st (nil: a new SQLite store).
func newCodeEnvOn(t testing.TB, st flows.Store, cfg flows.Config) *codeEnv {
	t.Helper()
	c := &codeEnv{mail: &mailbox{}, sms: &smsbox{}, alerts: &alertLog{}, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(c.logs, nil))
	opts := []flows.Option{flows.WithEmailSender(c.mail), flows.WithSMSSender(c.sms),
		flows.WithAdminAlerter(c.alerts), flows.WithLogger(log)}
	if st == nil {
		c.env = newEnv(t, cfg, opts...)
	} else {
		c.env = newEnvOn(t, st, cfg, opts...)
	}
	return c
}

// addPerson adds an account with an email address and a phone number.
func (e *codeEnv) addPerson(name, phone string) flows.Account {
	e.t.Helper()
	a, err := e.svc.AddAccount(e.ctx, "admin", flows.NewAccount{Username: name, Email: name + "@example.com", Phone: phone})
	if err != nil {
		e.t.Fatalf("add %s: %v", name, err)
	}
	return a
}

// override issues an override code for user as admin:root.
func (e *codeEnv) override(user string, ttl time.Duration) (flows.OverrideCode, string) {
	e.t.Helper()
	oc, code, err := e.svc.IssueOverride(e.ctx, "admin:root", user, ttl, "phone at home")
	if err != nil {
		e.t.Fatalf("issue override for %s: %v", user, err)
	}
	return oc, code
}

// submit types code on sign-in id from 192.0.2.7.
func (e *codeEnv) submit(id, code string) (flows.SignIn, error) {
	return e.svc.SubmitCode(e.ctx, flows.SubmitCodeRequest{SignInID: id, Code: code, IP: "192.0.2.7"})
}

// mustApprove submits code and wants the sign-in approved by method m.
func (e *codeEnv) mustApprove(id, code string, m flows.Method) flows.SignIn {
	e.t.Helper()
	s, err := e.submit(id, code)
	if err != nil {
		e.t.Fatalf("submit %q: %v", code, err)
	}
	if s.Status != flows.StatusApproved || s.DecidedBy != m {
		e.t.Fatalf("after a right code: %+v, want approved by %s", s, m)
	}
	return s
}

// mustRefuse submits code and wants err to be target.
func (e *codeEnv) mustRefuse(id, code string, target error) error {
	e.t.Helper()
	_, err := e.submit(id, code)
	if !errors.Is(err, target) {
		e.t.Fatalf("submit %q: %v, want %v", code, err, target)
	}
	return err
}

// wrongCode is a well-formed code that is not code.
func wrongCode(code string) string {
	c := []byte(strings.ReplaceAll(code, " ", ""))
	c[0] = '0' + (c[0]-'0'+1)%10
	return string(c)
}

var digits = regexp.MustCompile(`\b\d{6,8}\b`)

// lastEmailCode is the code in the last email sent.
func (e *codeEnv) lastEmailCode() string {
	e.t.Helper()
	msgs := e.mail.all()
	if len(msgs) == 0 {
		e.t.Fatal("no email was sent")
	}
	c := digits.FindString(msgs[len(msgs)-1].Text)
	if c == "" {
		e.t.Fatalf("no code in %q", msgs[len(msgs)-1].Text)
	}
	return c
}

// limits returns an account's limits.
func (e *codeEnv) limits(accountID string) flows.AccountLimits {
	e.t.Helper()
	l, err := e.svc.CodeLimits(e.ctx, accountID)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// beginCode starts a sign-in for user with the given methods.
func (e *codeEnv) beginCode(user string, methods ...flows.Method) flows.Challenge {
	e.t.Helper()
	return e.begin(user, methods...)
}

// expectedHash is the documented keyed hash of a code, computed here on
// its own: HMAC-SHA256(key, "keystep-code-v1" ‖ kind ‖ account ‖ code),
// each field length-prefixed.
func expectedHash(key []byte, kind flows.Method, accountID, normalized string) []byte {
	m := hmac.New(sha256.New, key)
	for _, f := range []string{"keystep-code-v1", string(kind), accountID, normalized} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		m.Write(n[:])
		m.Write([]byte(f))
	}
	return m.Sum(nil)
}

// hasAction reports whether the audit log holds an event with action.
func (e *env) hasAction(action string) bool {
	return slices.Contains(e.auditActions(), action)
}

// countAction counts the audit events with action.
func (e *env) countAction(action string) int {
	n := 0
	for _, a := range e.auditActions() {
		if a == action {
			n++
		}
	}
	return n
}
