package step

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/keystep/keystep/flows"
)

// qrSize is the side of the QR image in pixels.
const qrSize = 256

// Local runs Step and Accounts in process over flows.
type Local struct {
	Flows *flows.Service
	// Actor names the host in the audit log (default "host").
	Actor string
}

var (
	_ Step     = (*Local)(nil)
	_ Accounts = (*Local)(nil)
)

func (l *Local) actor() string {
	if l.Actor == "" {
		return "host"
	}
	return l.Actor
}

// maxBindingMessage bounds the text shown next to the app's name.
const maxBindingMessage = 64

// Begin implements Step.
func (l *Local) Begin(ctx context.Context, r BeginRequest) (Transaction, error) {
	client := r.Client
	if m := strings.TrimSpace(r.BindingMessage); m != "" {
		// flows checks the whole text shown on the phone (no control,
		// invisible or direction-changing characters).
		if client == "" {
			return Transaction{}, fmt.Errorf("%w: a binding message needs the app's name (client)", flows.ErrInvalid)
		}
		if utf8.RuneCountInString(m) > maxBindingMessage {
			return Transaction{}, fmt.Errorf("%w: the binding message must be at most %d characters", flows.ErrInvalid, maxBindingMessage)
		}
		client += " · " + m
	}
	ch, err := l.Flows.Begin(ctx, flows.BeginRequest{AccountID: r.AccountID, Username: r.Username, Client: client,
		IP: r.IP, UserAgent: r.UserAgent, Methods: r.Methods, Actor: l.actor()})
	if err != nil {
		return Transaction{}, err
	}
	t := Transaction{ID: ch.SignIn.ID, ExpiresAt: ch.SignIn.ExpiresAt, Number: ch.Number, QRPayload: ch.QRPayload,
		Methods: slices.Clone(ch.SignIn.Methods), PushSuppressed: ch.PushSuppressed}
	for _, m := range ch.SignIn.Methods {
		if m == flows.MethodOverride || (m.IsCode() && l.Flows.CanDeliver(m)) {
			t.Fallbacks = append(t.Fallbacks, m)
		}
	}
	if ch.QRPayload != "" {
		if t.QRPNG, err = qrcode.Encode(ch.QRPayload, qrcode.Medium, qrSize); err != nil {
			return Transaction{}, fmt.Errorf("QR image: %w", err)
		}
	}
	return t, nil
}

// Await implements Step.
func (l *Local) Await(ctx context.Context, id string, progress func(Result)) (Result, error) {
	sgn, err := l.Flows.GetSignIn(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if progress != nil {
		progress(resultOf(sgn))
	}
	if sgn.Status.Final() {
		return resultOf(sgn), nil
	}
	sgn, err = l.Flows.Await(ctx, id)
	if err != nil {
		return Result{}, err
	}
	res := resultOf(sgn)
	if progress != nil {
		progress(res)
	}
	return res, nil
}

// SendCode implements Step.
func (l *Local) SendCode(ctx context.Context, id string, channel flows.Method) (SentCode, error) {
	return l.Flows.SendCode(ctx, id, channel)
}

// SubmitCode implements Step.
func (l *Local) SubmitCode(ctx context.Context, id, code, ip string) (Result, error) {
	sgn, err := l.Flows.SubmitCode(ctx, flows.SubmitCodeRequest{SignInID: id, Code: code, IP: ip})
	if err != nil {
		return Result{}, err
	}
	return resultOf(sgn), nil
}

// Cancel implements Step.
func (l *Local) Cancel(ctx context.Context, id, reason string) (Result, error) {
	sgn, err := l.Flows.Cancel(ctx, l.actor(), id, reason)
	if err != nil {
		return Result{}, err
	}
	return resultOf(sgn), nil
}

func resultOf(s flows.SignIn) Result {
	return Result{ID: s.ID, AccountID: s.AccountID, Status: s.Status, Method: s.DecidedBy, DecidedAt: s.DecidedAt,
		Reason: s.Reason, FraudReport: s.FraudReport}
}

// AddAccount implements Accounts.
func (l *Local) AddAccount(ctx context.Context, n NewAccount) (Account, error) {
	a, err := l.Flows.AddAccount(ctx, l.actor(), flows.NewAccount{Username: n.Username, Email: n.Email, Phone: n.Phone,
		DisplayName: n.DisplayName})
	if err != nil {
		return Account{}, err
	}
	return accountOf(a, nil), nil
}

// GetAccount implements Accounts.
func (l *Local) GetAccount(ctx context.Context, ref AccountRef) (Account, error) {
	a, devices, err := l.Flows.ListDevices(ctx, ref.ref())
	if err != nil {
		return Account{}, err
	}
	return accountOf(a, devices), nil
}

func accountOf(a flows.Account, devices []flows.Device) Account {
	n := 0
	for _, d := range devices {
		if d.State == flows.DeviceActive {
			n++
		}
	}
	return Account{ID: a.ID, Username: a.Username, Email: a.Email, DisplayName: a.DisplayName, State: a.State,
		StateSource: a.StateSource, StateReason: a.StateReason, Devices: n}
}

// Invite implements Accounts.
func (l *Local) Invite(ctx context.Context, ref AccountRef) (Invitation, error) {
	inv, link, err := l.Flows.Invite(ctx, l.actor(), ref.ref())
	if err != nil {
		return Invitation{}, err
	}
	return Invitation{Link: link.String(), ExpiresAt: inv.ExpiresAt}, nil
}

// Suspend implements Accounts.
func (l *Local) Suspend(ctx context.Context, ref AccountRef, reason string) (Account, error) {
	return l.state(ctx, ref, reason, l.Flows.SuspendAccount)
}

// Restore implements Accounts.
func (l *Local) Restore(ctx context.Context, ref AccountRef, reason string) (Account, error) {
	return l.state(ctx, ref, reason, l.Flows.RestoreAccount)
}

// Remove implements Accounts.
func (l *Local) Remove(ctx context.Context, ref AccountRef, reason string) (Account, error) {
	return l.state(ctx, ref, reason, l.Flows.RemoveAccount)
}

func (l *Local) state(ctx context.Context, ref AccountRef, reason string,
	set func(context.Context, string, string, flows.StateSource, string) (flows.Account, error)) (Account, error) {
	a, err := set(ctx, l.actor(), ref.ref(), flows.SourceAdmin, reason)
	if err != nil {
		return Account{}, err
	}
	// By id: a removed account is no longer found by its username.
	return l.GetAccount(ctx, AccountRef{AccountID: a.ID})
}

// Unregister implements Accounts.
func (l *Local) Unregister(ctx context.Context, ref AccountRef, deviceID, reason string) (Account, error) {
	var err error
	if deviceID == "" {
		_, err = l.Flows.UnregisterAllDevices(ctx, l.actor(), ref.ref(), reason)
	} else {
		_, err = l.Flows.UnregisterDevice(ctx, l.actor(), ref.ref(), deviceID, reason)
	}
	if err != nil {
		return Account{}, err
	}
	return l.GetAccount(ctx, ref)
}

// IssueOverride implements Accounts.
func (l *Local) IssueOverride(ctx context.Context, ref AccountRef, reason string) (OverrideCode, error) {
	oc, code, err := l.Flows.IssueOverride(ctx, l.actor(), ref.ref(), 0, reason)
	if err != nil {
		return OverrideCode{}, err
	}
	return OverrideCode{Code: code, ExpiresAt: oc.ExpiresAt}, nil
}
