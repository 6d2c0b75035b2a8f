package server_test

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/phonetest"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/plugin/pluginapi"
	pb "github.com/keystep/keystep/plugin/proto/keystep/v1"
	"github.com/keystep/keystep/plugin/server"
	"github.com/keystep/keystep/plugin/step"
	"github.com/keystep/keystep/plugin/wire"
)

const origin = "https://keystep.test"

var codeKey = []byte("keystep-test-code-key-0123456789abcdef")

// env is the plugin's services over step.Local on a real SQLite store with
// a fake clock, reached through an in-memory gRPC connection.
type env struct {
	t      *testing.T
	ctx    context.Context
	clock  *clocktest.Clock
	svc    *flows.Service
	local  *step.Local
	c      *pluginapi.Clients
	emails chan flows.Email
}

// emailSender keeps the emails it is asked to send.
type emailSender chan flows.Email

func (s emailSender) SendEmail(_ context.Context, m flows.Email) error {
	s <- m
	return nil
}

type envOptions struct {
	// wrap, if set, wraps the Step the services run over.
	wrap   func(step.Step) step.Step
	health func(context.Context) (*pb.HealthStatus, error)
	noAcct bool // serve no Accounts
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, ctx: ctx, clock: clocktest.New(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)), emails: make(chan flows.Email, 10)}
	e.svc, err = flows.New(st, flows.Config{Origin: origin, CodeConfig: flows.CodeConfig{CodeKey: codeKey}},
		flows.WithClock(e.clock), flows.WithEmailSender(emailSender(e.emails)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.svc.Close)
	e.local = &step.Local{Flows: e.svc, Actor: "test-host"}
	var s step.Step = e.local
	if o.wrap != nil {
		s = o.wrap(s)
	}
	var a step.Accounts = e.local
	if o.noAcct {
		a = nil
	}

	gs := grpc.NewServer()
	if err := (&pluginapi.V1{Impl: server.New(s, a, o.health)}).GRPCServer(nil, gs); err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	served := make(chan struct{})
	go func() {
		defer close(served)
		gs.Serve(lis)
	}()
	t.Cleanup(func() { gs.Stop(); <-served })
	conn, err := grpc.NewClient("passthrough:///keystep-plugin",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := (&pluginapi.V1{}).GRPCClient(ctx, nil, conn)
	if err != nil {
		t.Fatal(err)
	}
	e.c = c.(*pluginapi.Clients)
	return e
}

// phone is an enrolled test device.
type phone struct {
	key *ecdsa.PrivateKey
	id  string
}

func (e *env) addUser(name string) flows.Account {
	e.t.Helper()
	a, err := e.svc.AddAccount(e.ctx, "admin", flows.NewAccount{Username: name, Email: name + "@example.com"})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) enroll(user string) phone {
	e.t.Helper()
	p := phonetest.Enroll(e.t, e.svc, user)
	return phone{key: p.Key, id: p.Device.ID}
}

// approve approves a push with the number, as the phone would.
func (e *env) approve(p phone, id, number string) {
	e.t.Helper()
	sgn, err := e.svc.GetSignIn(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.clock.Now()
	msg, err := flows.DecisionPayload(origin, sgn.ID, sgn.Nonce, flows.DecisionApprove, flows.MethodPush, number, now)
	if err != nil {
		e.t.Fatal(err)
	}
	sig, err := flows.SignES256(p.key, msg)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.svc.Decide(e.ctx, flows.DecisionRequest{SignInID: id, DeviceID: p.id, Decision: flows.DecisionApprove,
		Method: flows.MethodPush, Number: number, Time: now, Signature: sig}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) begin(r step.BeginRequest) (step.Transaction, error) {
	t, err := e.c.Step.Begin(e.ctx, wire.BeginRequestToPB(r))
	if err != nil {
		return step.Transaction{}, wire.FromStatus(err)
	}
	return wire.TransactionFromPB(t), nil
}

func (e *env) mustBegin(r step.BeginRequest) step.Transaction {
	e.t.Helper()
	t, err := e.begin(r)
	if err != nil {
		e.t.Fatalf("begin: %v", err)
	}
	return t
}

// recv reads one result from an Await stream.
func recv(t *testing.T, s pb.Step_AwaitClient) step.Result {
	t.Helper()
	r, err := s.Recv()
	if err != nil {
		t.Fatalf("await: %v", wire.FromStatus(err))
	}
	return wire.ResultFromPB(r)
}

// ends checks that an Await stream is over.
func ends(t *testing.T, s pb.Step_AwaitClient) {
	t.Helper()
	if r, err := s.Recv(); err != io.EOF {
		t.Fatalf("the stream goes on after the final result: %v, %v", r, err)
	}
}

// checkErr checks that err, from the host's side, is want with gRPC code.
func checkErr(t *testing.T, what string, err error, want error, code codes.Code) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
	var re *wire.RemoteError
	if !errors.As(err, &re) || re.Code != code {
		t.Errorf("%s: %#v, want a RemoteError with code %v", what, err, code)
	}
}

func TestBeginAwaitApproved(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.addUser("alice")
	p := e.enroll("alice")
	tx := e.mustBegin(step.BeginRequest{Username: "alice", Client: "Payroll", IP: "192.0.2.7", UserAgent: "test",
		BindingMessage: "ref 42"})
	if tx.ID == "" || len(tx.Number) == 0 || !strings.HasPrefix(tx.QRPayload, "keystep://") || len(tx.QRPNG) == 0 ||
		tx.ExpiresAt.IsZero() || len(tx.Methods) != 2 || tx.Fallbacks != nil {
		t.Fatalf("transaction %+v", tx)
	}
	if !tx.ExpiresAt.Equal(e.clock.Now().Add(e.svc.Config().SignInTTL)) {
		t.Errorf("expires at %v", tx.ExpiresAt)
	}
	sgn, err := e.svc.GetSignIn(e.ctx, tx.ID)
	if err != nil || sgn.Client != "Payroll · ref 42" {
		t.Errorf("sign-in %+v, %v", sgn, err)
	}

	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	stream, err := e.c.Step.Await(ctx, &pb.AwaitRequest{Id: tx.ID})
	if err != nil {
		t.Fatal(err)
	}
	if r := recv(t, stream); r.Status != flows.StatusPending || r.ID != tx.ID || r.AccountID != a.ID {
		t.Fatalf("first result %+v", r)
	}
	e.approve(p, tx.ID, tx.Number)
	r := recv(t, stream)
	if !r.Approved() || r.Method != flows.MethodPush || r.AccountID != a.ID || !r.DecidedAt.Equal(e.clock.Now()) {
		t.Fatalf("final result %+v", r)
	}
	ends(t, stream)

	// Awaiting a decided transaction gets the decision alone.
	stream, err = e.c.Step.Await(ctx, &pb.AwaitRequest{Id: tx.ID})
	if err != nil {
		t.Fatal(err)
	}
	if r := recv(t, stream); !r.Approved() {
		t.Fatalf("result %+v", r)
	}
	ends(t, stream)
}

func TestErrorsRoundTrip(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.addUser("alice")
	e.enroll("alice")
	e.addUser("susan")
	e.enroll("susan")
	if _, err := e.local.Suspend(e.ctx, step.AccountRef{Username: "susan"}, "on leave"); err != nil {
		t.Fatal(err)
	}
	rob := e.addUser("rob")
	e.enroll("rob")
	if _, err := e.svc.RemoveAccount(e.ctx, "admin", rob.ID, flows.SourceAdmin, "left"); err != nil {
		t.Fatal(err)
	}
	e.addUser("nina") // no device

	for _, c := range []struct {
		name string
		r    step.BeginRequest
		want error
		code codes.Code
	}{
		{"suspended", step.BeginRequest{Username: "susan", Client: "Payroll"}, flows.ErrAccountSuspended, codes.FailedPrecondition},
		{"removed", step.BeginRequest{AccountID: rob.ID, Client: "Payroll"}, flows.ErrAccountRemoved, codes.FailedPrecondition},
		{"no device", step.BeginRequest{Username: "nina", Client: "Payroll"}, flows.ErrNoDevice, codes.FailedPrecondition},
		{"not found", step.BeginRequest{Username: "nobody", Client: "Payroll"}, flows.ErrNotFound, codes.NotFound},
		{"no account", step.BeginRequest{Client: "Payroll"}, flows.ErrInvalid, codes.InvalidArgument},
		{"two accounts", step.BeginRequest{Username: "alice", AccountID: "x", Client: "Payroll"}, flows.ErrInvalid, codes.InvalidArgument},
		{"binding message", step.BeginRequest{Username: "alice", Client: "Payroll", BindingMessage: strings.Repeat("x", 65)}, flows.ErrInvalid, codes.InvalidArgument},
		{"unknown method", step.BeginRequest{Username: "alice", Client: "Payroll", Methods: []flows.Method{"carrier-pigeon"}}, flows.ErrInvalid, codes.InvalidArgument},
	} {
		_, err := e.begin(c.r)
		checkErr(t, c.name, err, c.want, c.code)
	}
	// The plugin's message travels with the error.
	_, err := e.begin(step.BeginRequest{Username: "susan", Client: "Payroll"})
	if !strings.Contains(err.Error(), `"susan"`) || !strings.Contains(err.Error(), "suspended") {
		t.Errorf("message %q", err)
	}

	// Empty and unknown ids.
	_, err = e.c.Step.Cancel(e.ctx, &pb.CancelRequest{})
	checkErr(t, "cancel without id", wire.FromStatus(err), flows.ErrInvalid, codes.InvalidArgument)
	_, err = e.c.Step.SubmitCode(e.ctx, &pb.SubmitCodeRequest{Code: "123456"})
	checkErr(t, "submit without id", wire.FromStatus(err), flows.ErrInvalid, codes.InvalidArgument)
	_, err = e.c.Step.SendCode(e.ctx, &pb.SendCodeRequest{Channel: "email"})
	checkErr(t, "send without id", wire.FromStatus(err), flows.ErrInvalid, codes.InvalidArgument)
	stream, err := e.c.Step.Await(e.ctx, &pb.AwaitRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	checkErr(t, "await without id", wire.FromStatus(err), flows.ErrInvalid, codes.InvalidArgument)
	stream, err = e.c.Step.Await(e.ctx, &pb.AwaitRequest{Id: flows.NewID()})
	if err == nil {
		_, err = stream.Recv()
	}
	checkErr(t, "await an unknown id", wire.FromStatus(err), flows.ErrNotFound, codes.NotFound)
	_, err = e.c.Step.Cancel(e.ctx, &pb.CancelRequest{Id: flows.NewID()})
	checkErr(t, "cancel an unknown id", wire.FromStatus(err), flows.ErrNotFound, codes.NotFound)
}

func TestRateLimitKeepsRetryAfter(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.addUser("alice")
	tx := e.mustBegin(step.BeginRequest{Username: "alice", Client: "Payroll", Methods: []flows.Method{flows.MethodEmail}})
	if len(tx.Fallbacks) != 1 || tx.Fallbacks[0] != flows.MethodEmail || tx.Number != "" || tx.QRPNG != nil {
		t.Fatalf("transaction %+v", tx)
	}
	sent, err := e.c.Step.SendCode(e.ctx, &pb.SendCodeRequest{Id: tx.ID, Channel: "email"})
	if err != nil {
		t.Fatal(wire.FromStatus(err))
	}
	if sc := wire.SentCodeFromPB(sent); sc.Channel != flows.MethodEmail || !strings.Contains(sc.To, "@example.com") ||
		strings.Contains(sc.To, "alice") || !sc.ResendAfter.Equal(e.clock.Now().Add(30*time.Second)) {
		t.Errorf("sent %+v", sc)
	}
	mail := <-e.emails
	code := regexp.MustCompile(`\b[0-9]{6}\b`).FindString(mail.Text)

	e.clock.Advance(10 * time.Second)
	_, err = e.c.Step.SendCode(e.ctx, &pb.SendCodeRequest{Id: tx.ID, Channel: "email"})
	err = wire.FromStatus(err)
	checkErr(t, "second code", err, flows.ErrRateLimited, codes.ResourceExhausted)
	var rl *flows.RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter != 20*time.Second || rl.What != "codes by email" {
		t.Errorf("rate limit %#v", rl)
	}
	if flows.RetryAfter(err) != 20*time.Second {
		t.Errorf("RetryAfter = %v", flows.RetryAfter(err))
	}

	_, err = e.c.Step.SendCode(e.ctx, &pb.SendCodeRequest{Id: tx.ID, Channel: "pigeon"})
	checkErr(t, "unknown channel", wire.FromStatus(err), flows.ErrInvalid, codes.InvalidArgument)
	_, err = e.c.Step.SubmitCode(e.ctx, &pb.SubmitCodeRequest{Id: tx.ID, Ip: "192.0.2.7"})
	checkErr(t, "empty code", wire.FromStatus(err), flows.ErrInvalid, codes.InvalidArgument)
	_, err = e.c.Step.SubmitCode(e.ctx, &pb.SubmitCodeRequest{Id: tx.ID, Code: "000000", Ip: "192.0.2.7"})
	checkErr(t, "wrong code", wire.FromStatus(err), flows.ErrWrongCode, codes.PermissionDenied)
	res, err := e.c.Step.SubmitCode(e.ctx, &pb.SubmitCodeRequest{Id: tx.ID, Code: code, Ip: "192.0.2.7"})
	if err != nil {
		t.Fatal(wire.FromStatus(err))
	}
	if r := wire.ResultFromPB(res); !r.Approved() || r.Method != flows.MethodEmail {
		t.Errorf("result %+v", r)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.addUser("alice")
	e.enroll("alice")
	tx := e.mustBegin(step.BeginRequest{Username: "alice", Client: "Payroll"})
	stream, err := e.c.Step.Await(e.ctx, &pb.AwaitRequest{Id: tx.ID})
	if err != nil {
		t.Fatal(err)
	}
	if r := recv(t, stream); r.Status != flows.StatusPending {
		t.Fatalf("first result %+v", r)
	}
	res, err := e.c.Step.Cancel(e.ctx, &pb.CancelRequest{Id: tx.ID, Reason: "the user went away"})
	if err != nil {
		t.Fatal(wire.FromStatus(err))
	}
	if r := wire.ResultFromPB(res); r.Status != flows.StatusCancelled || r.Reason != "the user went away" || r.Approved() {
		t.Errorf("cancel: %+v", r)
	}
	if r := recv(t, stream); r.Status != flows.StatusCancelled || r.Reason != "the user went away" {
		t.Errorf("awaited: %+v", r)
	}
	ends(t, stream)
	_, err = e.c.Step.Cancel(e.ctx, &pb.CancelRequest{Id: tx.ID})
	checkErr(t, "cancel twice", wire.FromStatus(err), flows.ErrAlreadyDecided, codes.FailedPrecondition)
}

func TestOverrideCode(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.addUser("alice")
	e.enroll("alice")
	tx := e.mustBegin(step.BeginRequest{AccountID: a.ID, Client: "Payroll",
		Methods: []flows.Method{flows.MethodPush, flows.MethodQR, flows.MethodOverride}})
	if len(tx.Fallbacks) != 1 || tx.Fallbacks[0] != flows.MethodOverride {
		t.Fatalf("fallbacks %v", tx.Fallbacks)
	}
	oc, err := e.c.Accounts.IssueOverride(e.ctx, &pb.OverrideRequest{Account: &pb.AccountRef{Username: "alice"}, Reason: "lost phone"})
	if err != nil {
		t.Fatal(wire.FromStatus(err))
	}
	code := wire.OverrideCodeFromPB(oc)
	if code.Code == "" || !code.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("override %+v", code)
	}
	stream, err := e.c.Step.Await(e.ctx, &pb.AwaitRequest{Id: tx.ID})
	if err != nil {
		t.Fatal(err)
	}
	if r := recv(t, stream); r.Status != flows.StatusPending {
		t.Fatalf("first result %+v", r)
	}
	res, err := e.c.Step.SubmitCode(e.ctx, &pb.SubmitCodeRequest{Id: tx.ID, Code: code.Code, Ip: "192.0.2.7"})
	if err != nil {
		t.Fatal(wire.FromStatus(err))
	}
	if r := wire.ResultFromPB(res); !r.Approved() || r.Method != flows.MethodOverride {
		t.Errorf("submit: %+v", r)
	}
	if r := recv(t, stream); !r.Approved() || r.Method != flows.MethodOverride {
		t.Errorf("awaited: %+v", r)
	}
	ends(t, stream)

	// Used once.
	tx = e.mustBegin(step.BeginRequest{Username: "alice", Client: "Payroll", Methods: []flows.Method{flows.MethodOverride}})
	_, err = e.c.Step.SubmitCode(e.ctx, &pb.SubmitCodeRequest{Id: tx.ID, Code: code.Code, Ip: "192.0.2.7"})
	checkErr(t, "override code used twice", wire.FromStatus(err), flows.ErrWrongCode, codes.PermissionDenied)
}

func TestAccounts(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.addUser("alice")
	p := e.enroll("alice")
	e.enroll("alice")
	ref := &pb.AccountRef{Username: "alice"}
	get := func(what string) step.Account {
		t.Helper()
		acc, err := e.c.Accounts.Get(e.ctx, &pb.AccountRef{AccountId: a.ID})
		if err != nil {
			t.Fatalf("%s: get: %v", what, wire.FromStatus(err))
		}
		return wire.AccountFromPB(acc)
	}
	if acc := get("enrolled"); acc.ID != a.ID || acc.Username != "alice" || acc.Email != "alice@example.com" ||
		acc.State != flows.AccountActive || acc.Devices != 2 {
		t.Errorf("account %+v", acc)
	}

	inv, err := e.c.Accounts.Invite(e.ctx, ref)
	if err != nil {
		t.Fatal(wire.FromStatus(err))
	}
	if i := wire.InvitationFromPB(inv); !strings.HasPrefix(i.Link, "keystep://enroll?") || !i.ExpiresAt.After(e.clock.Now()) {
		t.Errorf("invitation %+v", i)
	}

	acc, err := e.c.Accounts.Suspend(e.ctx, &pb.StateChange{Account: ref, Reason: "on leave"})
	if err != nil {
		t.Fatal(wire.FromStatus(err))
	}
	if s := wire.AccountFromPB(acc); s.State != flows.AccountSuspended || s.StateReason != "on leave" || s.StateSource != flows.SourceAdmin {
		t.Errorf("suspended %+v", s)
	}
	_, err = e.begin(step.BeginRequest{Username: "alice", Client: "Payroll"})
	checkErr(t, "begin while suspended", err, flows.ErrAccountSuspended, codes.FailedPrecondition)
	if _, err := e.c.Accounts.Restore(e.ctx, &pb.StateChange{Account: ref, Reason: "back"}); err != nil {
		t.Fatal(wire.FromStatus(err))
	}
	if acc := get("restored"); acc.State != flows.AccountActive {
		t.Errorf("restored %+v", acc)
	}

	acc, err = e.c.Accounts.Unregister(e.ctx, &pb.UnregisterRequest{Account: ref, DeviceId: p.id, Reason: "lost"})
	if err != nil {
		t.Fatal(wire.FromStatus(err))
	}
	if s := wire.AccountFromPB(acc); s.Devices != 1 {
		t.Errorf("after unregistering one device: %+v", s)
	}
	_, err = e.c.Accounts.Unregister(e.ctx, &pb.UnregisterRequest{Account: ref, DeviceId: p.id})
	if err = wire.FromStatus(err); err == nil {
		t.Error("unregistered a device twice")
	}
	acc, err = e.c.Accounts.Unregister(e.ctx, &pb.UnregisterRequest{Account: ref, Reason: "new phone"})
	if err != nil {
		t.Fatal(wire.FromStatus(err))
	}
	if s := wire.AccountFromPB(acc); s.Devices != 0 {
		t.Errorf("after unregistering every device: %+v", s)
	}
	_, err = e.begin(step.BeginRequest{Username: "alice", Client: "Payroll"})
	checkErr(t, "begin without a device", err, flows.ErrNoDevice, codes.FailedPrecondition)

	// Remove by username answers with the removed account (read back by id).
	acc, err = e.c.Accounts.Remove(e.ctx, &pb.StateChange{Account: &pb.AccountRef{Username: "alice"}, Reason: "left"})
	if err != nil {
		t.Fatal(wire.FromStatus(err))
	}
	if s := wire.AccountFromPB(acc); s.State != flows.AccountRemoved {
		t.Errorf("removed %+v", s)
	}
	_, err = e.begin(step.BeginRequest{AccountID: a.ID, Client: "Payroll"})
	checkErr(t, "begin after removal", err, flows.ErrAccountRemoved, codes.FailedPrecondition)

	added, err := e.c.Accounts.Add(e.ctx, &pb.NewAccount{Username: "bea", Email: "bea@example.com", DisplayName: "Bea"})
	if err != nil {
		t.Fatal(wire.FromStatus(err))
	}
	if b := wire.AccountFromPB(added); b.ID == "" || b.Username != "bea" || b.State != flows.AccountActive || b.Devices != 0 {
		t.Errorf("added %+v", b)
	}
	_, err = e.c.Accounts.Add(e.ctx, &pb.NewAccount{Username: "bea"})
	checkErr(t, "add twice", wire.FromStatus(err), flows.ErrConflict, codes.AlreadyExists)
	_, err = e.c.Accounts.Add(e.ctx, &pb.NewAccount{})
	checkErr(t, "add without a name", wire.FromStatus(err), flows.ErrInvalid, codes.InvalidArgument)

	_, err = e.c.Accounts.Get(e.ctx, &pb.AccountRef{Username: "nobody"})
	checkErr(t, "get unknown", wire.FromStatus(err), flows.ErrNotFound, codes.NotFound)
	_, err = e.c.Accounts.Get(e.ctx, &pb.AccountRef{})
	checkErr(t, "get nobody", wire.FromStatus(err), flows.ErrInvalid, codes.InvalidArgument)
	_, err = e.c.Accounts.Suspend(e.ctx, &pb.StateChange{Reason: "no account"})
	checkErr(t, "suspend nobody", wire.FromStatus(err), flows.ErrInvalid, codes.InvalidArgument)
	_, err = e.c.Accounts.IssueOverride(e.ctx, &pb.OverrideRequest{Account: &pb.AccountRef{Username: "alice", AccountId: a.ID}})
	checkErr(t, "override for two", wire.FromStatus(err), flows.ErrInvalid, codes.InvalidArgument)
}

func TestNoAccounts(t *testing.T) {
	e := newEnv(t, envOptions{noAcct: true})
	_, err := e.c.Accounts.Get(e.ctx, &pb.AccountRef{Username: "alice"})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("get without Accounts: %v", err)
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t, envOptions{})
	st, err := e.c.Health.Check(e.ctx, &pb.HealthRequest{})
	if err != nil || !st.GetServing() || st.GetVersion() != "" {
		t.Errorf("default health: %v, %v", st, err)
	}
	e = newEnv(t, envOptions{health: func(context.Context) (*pb.HealthStatus, error) {
		return &pb.HealthStatus{Serving: true, Version: "v1.2.3", DeviceApiUrl: "https://keystep.example.com"}, nil
	}})
	st, err = e.c.Health.Check(e.ctx, &pb.HealthRequest{})
	if err != nil || !st.GetServing() || st.GetVersion() != "v1.2.3" || st.GetDeviceApiUrl() != "https://keystep.example.com" {
		t.Errorf("health: %v, %v", st, err)
	}
	e = newEnv(t, envOptions{health: func(context.Context) (*pb.HealthStatus, error) {
		return nil, errors.New("store down")
	}})
	_, err = e.c.Health.Check(e.ctx, &pb.HealthRequest{})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "store down") {
		t.Errorf("failed health: %v", err)
	}
}

// awaitWatch reports when the wrapped Step's Await returns.
type awaitWatch struct {
	step.Step
	done chan error
}

func (w awaitWatch) Await(ctx context.Context, id string, progress func(step.Result)) (step.Result, error) {
	r, err := w.Step.Await(ctx, id, progress)
	w.done <- err
	return r, err
}

// TestAwaitEndsWithTheStream: a host that stops listening ends the wait on
// the plugin's side.
func TestAwaitEndsWithTheStream(t *testing.T) {
	done := make(chan error, 1)
	e := newEnv(t, envOptions{wrap: func(s step.Step) step.Step { return awaitWatch{Step: s, done: done} }})
	e.addUser("alice")
	e.enroll("alice")
	tx := e.mustBegin(step.BeginRequest{Username: "alice", Client: "Payroll"})
	ctx, cancel := context.WithCancel(e.ctx)
	stream, err := e.c.Step.Await(ctx, &pb.AwaitRequest{Id: tx.ID})
	if err != nil {
		t.Fatal(err)
	}
	if r := recv(t, stream); r.Status != flows.StatusPending {
		t.Fatalf("first result %+v", r)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the plugin's Await ended with %v", err)
	}
	_, err = stream.Recv()
	if err = wire.FromStatus(err); !errors.Is(err, context.Canceled) {
		t.Errorf("the host's stream ended with %v", err)
	}
	// The transaction is still pending: only the wait ended.
	if sgn, err := e.svc.GetSignIn(e.ctx, tx.ID); err != nil || sgn.Status != flows.StatusPending {
		t.Errorf("sign-in %+v, %v", sgn, err)
	}
}

// quietStep reports no progress: Await's final result still goes out.
type quietStep struct {
	step.Step
	res step.Result
}

func (q quietStep) Await(context.Context, string, func(step.Result)) (step.Result, error) {
	return q.res, nil
}

func TestAwaitSendsTheFinalResult(t *testing.T) {
	final := step.Result{ID: "x", Status: flows.StatusDenied, Method: flows.MethodPush, Reason: "not me", FraudReport: true}
	e := newEnv(t, envOptions{wrap: func(s step.Step) step.Step { return quietStep{Step: s, res: final} }})
	stream, err := e.c.Step.Await(e.ctx, &pb.AwaitRequest{Id: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if r := recv(t, stream); r != final {
		t.Errorf("result %+v, want %+v", r, final)
	}
	ends(t, stream)
}

// TestAwaitExpires: the stream ends with the expiry when nobody decides.
func TestAwaitExpires(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.addUser("alice")
	e.enroll("alice")
	tx := e.mustBegin(step.BeginRequest{Username: "alice", Client: "Payroll"})
	stream, err := e.c.Step.Await(e.ctx, &pb.AwaitRequest{Id: tx.ID})
	if err != nil {
		t.Fatal(err)
	}
	if r := recv(t, stream); r.Status != flows.StatusPending {
		t.Fatalf("first result %+v", r)
	}
	e.clock.BlockUntilWaiters(1) // flows.Await waits for the expiry
	e.clock.Advance(e.svc.Config().SignInTTL)
	if r := recv(t, stream); r.Status != flows.StatusExpired {
		t.Errorf("final result %+v", r)
	}
	ends(t, stream)
}
