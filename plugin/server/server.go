// Package server is the plugin side of keystep's v1 plugin contract: the
// gRPC servers of the Step, Accounts and Health services over any
// step.Step and step.Accounts (in the keystep binary, step.Local over
// flows). Values cross with plugin/wire, and every error leaves through
// wire.ToStatus, so that the host's wire.FromStatus gives back flows' own
// error (errors.Is(err, flows.ErrAccountSuspended), a *flows.RateLimitError
// with its RetryAfter …).
//
// The servers check what they can before calling the implementation: an
// empty transaction id, an account named by both or neither of id and
// username, an unknown code channel or an empty code is flows.ErrInvalid
// (gRPC InvalidArgument).
package server

import (
	"context"
	"fmt"
	"sync"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/plugin/pluginapi"
	pb "github.com/keystep/keystep/plugin/proto/keystep/v1"
	"github.com/keystep/keystep/plugin/step"
	"github.com/keystep/keystep/plugin/wire"
)

// New returns the v1 services over s, a and health, ready for
// pluginapi.Versions. s must not be nil. A nil a answers every Accounts
// call with Unimplemented; a nil health reports serving, with no version
// and no device API URL.
func New(s step.Step, a step.Accounts, health func(context.Context) (*pb.HealthStatus, error)) *pluginapi.Services {
	svcs := &pluginapi.Services{Step: &stepServer{step: s}, Health: &healthServer{check: health}}
	if a != nil {
		svcs.Accounts = &accountsServer{accounts: a}
	} else {
		svcs.Accounts = pb.UnimplementedAccountsServer{}
	}
	return svcs
}

// invalidf is a flows.ErrInvalid that says what is wrong.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", flows.ErrInvalid, fmt.Sprintf(format, args...))
}

// checkID refuses an empty transaction id.
func checkID(id string) error {
	if id == "" {
		return invalidf("the transaction id is empty")
	}
	return nil
}

// checkRef refuses an account named by both or neither of id and username.
func checkRef(accountID, username string) error {
	if (accountID == "") == (username == "") {
		return invalidf("give exactly one of account_id and username")
	}
	return nil
}

// stepServer serves Step.
type stepServer struct {
	pb.UnimplementedStepServer
	step step.Step
}

// Begin implements pb.StepServer.
func (s *stepServer) Begin(ctx context.Context, r *pb.BeginRequest) (*pb.Transaction, error) {
	if err := checkRef(r.GetAccountId(), r.GetUsername()); err != nil {
		return nil, wire.ToStatus(err)
	}
	t, err := s.step.Begin(ctx, wire.BeginRequestFromPB(r))
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return wire.TransactionToPB(t), nil
}

// Await sends each status the implementation reports (the current one
// first) and ends after the final one. If the implementation returns a
// final result it did not report, that result is sent last. The call ends
// with the stream's context; a failed send stops the wait.
func (s *stepServer) Await(r *pb.AwaitRequest, stream pb.Step_AwaitServer) error {
	if err := checkID(r.GetId()); err != nil {
		return wire.ToStatus(err)
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var (
		mu      sync.Mutex // a stream takes one Send at a time
		sendErr error
		over    bool // the final result went out, or the call returned
	)
	send := func(res step.Result) {
		mu.Lock()
		defer mu.Unlock()
		if over || sendErr != nil {
			return
		}
		if sendErr = stream.Send(wire.ResultToPB(res)); sendErr != nil {
			cancel()
			return
		}
		over = res.Status.Final()
	}
	res, err := s.step.Await(ctx, r.GetId(), send)
	if err == nil {
		send(res) // nothing if the final result already went out
	}
	mu.Lock()
	defer mu.Unlock()
	over = true // a late progress call sends nothing
	if sendErr != nil {
		return sendErr
	}
	return wire.ToStatus(err)
}

// SendCode implements pb.StepServer.
func (s *stepServer) SendCode(ctx context.Context, r *pb.SendCodeRequest) (*pb.SentCode, error) {
	if err := checkID(r.GetId()); err != nil {
		return nil, wire.ToStatus(err)
	}
	ch := flows.Method(r.GetChannel())
	if ch != flows.MethodSMS && ch != flows.MethodEmail {
		return nil, wire.ToStatus(invalidf("a code is sent by sms or email, not %q", r.GetChannel()))
	}
	c, err := s.step.SendCode(ctx, r.GetId(), ch)
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return wire.SentCodeToPB(c), nil
}

// SubmitCode implements pb.StepServer.
func (s *stepServer) SubmitCode(ctx context.Context, r *pb.SubmitCodeRequest) (*pb.Result, error) {
	if err := checkID(r.GetId()); err != nil {
		return nil, wire.ToStatus(err)
	}
	if r.GetCode() == "" {
		return nil, wire.ToStatus(invalidf("the code is empty"))
	}
	res, err := s.step.SubmitCode(ctx, r.GetId(), r.GetCode(), r.GetIp())
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return wire.ResultToPB(res), nil
}

// Cancel implements pb.StepServer.
func (s *stepServer) Cancel(ctx context.Context, r *pb.CancelRequest) (*pb.Result, error) {
	if err := checkID(r.GetId()); err != nil {
		return nil, wire.ToStatus(err)
	}
	res, err := s.step.Cancel(ctx, r.GetId(), r.GetReason())
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return wire.ResultToPB(res), nil
}

// accountsServer serves Accounts.
type accountsServer struct {
	pb.UnimplementedAccountsServer
	accounts step.Accounts
}

// ref checks and converts an account reference.
func ref(r *pb.AccountRef) (step.AccountRef, error) {
	if err := checkRef(r.GetAccountId(), r.GetUsername()); err != nil {
		return step.AccountRef{}, err
	}
	return wire.AccountRefFromPB(r), nil
}

// account answers an operation that returns an Account.
func account(a step.Account, err error) (*pb.Account, error) {
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return wire.AccountToPB(a), nil
}

// Add implements pb.AccountsServer.
func (s *accountsServer) Add(ctx context.Context, r *pb.NewAccount) (*pb.Account, error) {
	if r.GetUsername() == "" {
		return nil, wire.ToStatus(fmt.Errorf("%w: a new account needs a username", flows.ErrInvalid))
	}
	return account(s.accounts.AddAccount(ctx, wire.NewAccountFromPB(r)))
}

// Get implements pb.AccountsServer.
func (s *accountsServer) Get(ctx context.Context, r *pb.AccountRef) (*pb.Account, error) {
	ar, err := ref(r)
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return account(s.accounts.GetAccount(ctx, ar))
}

// Invite implements pb.AccountsServer.
func (s *accountsServer) Invite(ctx context.Context, r *pb.AccountRef) (*pb.Invitation, error) {
	ar, err := ref(r)
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	inv, err := s.accounts.Invite(ctx, ar)
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return wire.InvitationToPB(inv), nil
}

// stateChange runs Suspend, Restore or Remove.
func stateChange(ctx context.Context, r *pb.StateChange, set func(context.Context, step.AccountRef, string) (step.Account, error)) (*pb.Account, error) {
	ar, err := ref(r.GetAccount())
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return account(set(ctx, ar, r.GetReason()))
}

// Suspend implements pb.AccountsServer.
func (s *accountsServer) Suspend(ctx context.Context, r *pb.StateChange) (*pb.Account, error) {
	return stateChange(ctx, r, s.accounts.Suspend)
}

// Restore implements pb.AccountsServer.
func (s *accountsServer) Restore(ctx context.Context, r *pb.StateChange) (*pb.Account, error) {
	return stateChange(ctx, r, s.accounts.Restore)
}

// Remove implements pb.AccountsServer.
func (s *accountsServer) Remove(ctx context.Context, r *pb.StateChange) (*pb.Account, error) {
	return stateChange(ctx, r, s.accounts.Remove)
}

// Unregister implements pb.AccountsServer.
func (s *accountsServer) Unregister(ctx context.Context, r *pb.UnregisterRequest) (*pb.Account, error) {
	ar, err := ref(r.GetAccount())
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return account(s.accounts.Unregister(ctx, ar, r.GetDeviceId(), r.GetReason()))
}

// IssueOverride implements pb.AccountsServer.
func (s *accountsServer) IssueOverride(ctx context.Context, r *pb.OverrideRequest) (*pb.OverrideCode, error) {
	ar, err := ref(r.GetAccount())
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	oc, err := s.accounts.IssueOverride(ctx, ar, r.GetReason())
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return wire.OverrideCodeToPB(oc), nil
}

// healthServer serves Health.
type healthServer struct {
	pb.UnimplementedHealthServer
	check func(context.Context) (*pb.HealthStatus, error)
}

// Check implements pb.HealthServer.
func (s *healthServer) Check(ctx context.Context, _ *pb.HealthRequest) (*pb.HealthStatus, error) {
	if s.check == nil {
		return &pb.HealthStatus{Serving: true}, nil
	}
	st, err := s.check(ctx)
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	if st == nil {
		st = &pb.HealthStatus{}
	}
	return st, nil
}
