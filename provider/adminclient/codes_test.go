package adminclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/provider"
	"github.com/keystep/keystep/provider/adminclient"
)

// smsOut is an SMS sender that keeps the last text.
type smsOut struct{ last chan flows.SMS }

func (s smsOut) SendSMS(_ context.Context, m flows.SMS) error {
	s.last <- m
	return nil
}

// TestCodeCalls drives the code routes of a real server through the client.
func TestCodeCalls(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sms := smsOut{last: make(chan flows.SMS, 1)}
	const token = "client-test-admin-token-0123456789"
	srv := httptest.NewServer(nil)
	defer srv.Close()
	svc, err := flows.New(st, flows.Config{Origin: srv.URL, CodeConfig: flows.CodeConfig{CodeKey: []byte("client-test-code-key-0123456789abcdef")}},
		flows.WithSMSSender(sms), flows.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	p, err := provider.New(provider.Options{Flows: svc, AdminToken: token})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = p.Handler()
	c, err := adminclient.New(srv.URL, token, adminclient.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddAccount(ctx, "admin", flows.NewAccount{Username: "alice", Phone: "+15551234567"}); err != nil {
		t.Fatal(err)
	}

	oc, err := c.IssueOverride(ctx, "alice", "90m", "phone at home")
	if err != nil || oc.User != "alice" || len(oc.Code) != 12 {
		t.Fatalf("IssueOverride = %+v, %v", oc, err)
	}
	if _, err := c.IssueOverride(ctx, "alice", "8d", ""); !errors.Is(err, flows.ErrInvalid) {
		t.Fatalf("IssueOverride 8d: %v", err)
	}
	ch, err := c.TestSignIn(ctx, "alice", "override", "sms")
	if err != nil {
		t.Fatal(err)
	}
	sent, err := c.SendCode(ctx, ch.ID, "sms")
	if err != nil || sent.To != "+1•••••4567" {
		t.Fatalf("SendCode = %+v, %v", sent, err)
	}
	if _, err := c.SendCode(ctx, ch.ID, "sms"); !errors.Is(err, flows.ErrRateLimited) {
		t.Fatalf("SendCode again: %v, want ErrRateLimited", err)
	}
	if _, err := c.SendCode(ctx, ch.ID, "email"); !errors.Is(err, flows.ErrMethodNotAllowed) {
		t.Fatalf("SendCode email: %v", err)
	}
	<-sms.last
	for range 9 {
		if _, err := c.SubmitCode(ctx, ch.ID, "000000000"); !errors.Is(err, flows.ErrWrongCode) {
			t.Fatalf("SubmitCode wrong: %v", err)
		}
	}
	_, err = c.SubmitCode(ctx, ch.ID, "000000000")
	if !errors.Is(err, flows.ErrLocked) || !adminclient.HasType(err, "urn:keystep:problem:locked") {
		t.Fatalf("SubmitCode at the limit: %v", err)
	}
	u, err := c.GetUser(ctx, "alice")
	if err != nil || !u.CodesLocked || u.FailedCodes != 10 {
		t.Fatalf("GetUser while locked = %+v, %v", u, err)
	}
	if u, err = c.UnlockCodes(ctx, "alice"); err != nil || u.CodesLocked {
		t.Fatalf("UnlockCodes = %+v, %v", u, err)
	}
	if _, err := c.SubmitCodeFrom(ctx, ch.ID, "000000000", "not-an-address"); !errors.Is(err, flows.ErrInvalid) {
		t.Fatalf("SubmitCodeFrom a malformed address: %v", err)
	}
	if _, err := c.SubmitCodeFrom(ctx, ch.ID, "000000000", "203.0.113.9"); !errors.Is(err, flows.ErrWrongCode) {
		t.Fatalf("SubmitCodeFrom wrong: %v", err)
	}
	s, err := c.SubmitCodeFrom(ctx, ch.ID, oc.Code, "2001:db8::9")
	if err != nil || s.Status != "approved" || s.DecidedBy != "override" {
		t.Fatalf("SubmitCode = %+v, %v", s, err)
	}
	if _, err := c.UnlockCodes(ctx, "nobody"); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("UnlockCodes nobody: %v", err)
	}
}
