package flows

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"
)

// BeginRequest starts a sign-in for an account.
type BeginRequest struct {
	AccountID string // the account's stable id, or
	Username  string // its username
	Client    string // the app the user is signing in to, shown on the phone
	IP        string // the sign-in's client IP, shown on the phone
	UserAgent string
	Methods   []Method // open methods; empty: push and QR
	Actor     string   // who asks (a client id, "admin:…"); for the audit log
	// For ties the sign-in to the federation request it serves (nil:
	// none), in Begin's own transaction.
	For *RequestBinding
}

// RequestBinding ties a sign-in to a federation request: Begin binds the
// request to the browser session (unless it is bound to it already) and
// records the sign-in as the request's current one, atomically with
// creating it. If it cannot (the request is bound to another session:
// ErrConflict; done: ErrAlreadyDecided; gone: ErrNotFound), Begin fails
// with ErrRequestBinding and that cause, and nothing is written: no
// sign-in, no push.
type RequestBinding struct {
	RequestID   string
	SessionHash []byte
}

// Challenge is what the sign-in screen shows: the number to match and the
// QR payload. Neither is ever sent to the device.
type Challenge struct {
	SignIn    SignIn
	Number    string // empty when push is not open
	QRPayload string // empty when QR is not open
	// PushSuppressed says why push was asked for but left out (QR took its
	// place): PushSuppressedRate or PushSuppressedFraud; empty otherwise.
	PushSuppressed string
}

func (r *BeginRequest) check() error {
	if (r.AccountID == "") == (r.Username == "") {
		return invalidf("give exactly one of account id and username")
	}
	if err := checkText("client", r.Client, true, 200); err != nil {
		return err
	}
	if err := checkText("IP", r.IP, false, 64); err != nil {
		return err
	}
	if err := checkText("user agent", r.UserAgent, false, 512); err != nil {
		return err
	}
	if r.For != nil && (r.For.RequestID == "" || len(r.For.SessionHash) == 0) {
		return invalidf("a request binding needs a request id and a session hash")
	}
	if len(r.Methods) == 0 {
		r.Methods = []Method{MethodPush, MethodQR}
	}
	for i, m := range r.Methods {
		if m != MethodPush && m != MethodQR && !m.IsCode() {
			return invalidf("unknown method %q", m)
		}
		if slices.Contains(r.Methods[:i], m) {
			return invalidf("method %q given twice", m)
		}
	}
	return nil
}

// Begin starts a sign-in: the account must be active. Push and QR need a
// registered device; without one they are left out, and the sign-in goes on
// if a code method (sms, email, override) is open, else it is ErrNoDevice.
// Push is left out, QR taking its place, past the push limit or while a
// fraud report blocks pushes (Challenge.PushSuppressed says which). Push
// requests become visible to the account's devices at once, and with a
// PushSender each active device with a push route gets a wake-up in the
// background (see WithPushSender); Begin does not wait for it.
func (s *Service) Begin(ctx context.Context, r BeginRequest) (Challenge, error) {
	ctx, end := s.obs.Start(ctx, "flows.Begin")
	ch, err := s.begin(ctx, r)
	end(err)
	return ch, err
}

func (s *Service) begin(ctx context.Context, r BeginRequest) (Challenge, error) {
	if err := r.check(); err != nil {
		return Challenge{}, err
	}
	for _, m := range r.Methods {
		if m.IsCode() && !s.cfg.codeMethodOpen(m) {
			return Challenge{}, fmt.Errorf("begin sign-in: %s codes are turned off on this server: %w", m, ErrMethodNotAllowed)
		}
	}
	var a Account
	var err error
	if r.AccountID != "" {
		a, err = s.store.GetAccount(ctx, r.AccountID)
	} else {
		a, err = s.store.GetAccountByUsername(ctx, r.Username)
	}
	if err != nil {
		return Challenge{}, fmt.Errorf("begin sign-in: %w", err)
	}
	if err := usable(a); err != nil {
		return Challenge{}, fmt.Errorf("begin sign-in for %q: %w", a.Username, err)
	}
	if err := s.liveCheck(ctx, a); err != nil {
		return Challenge{}, fmt.Errorf("begin sign-in for %q: %w", a.Username, err)
	}
	ds, err := s.store.ListDevices(ctx, a.ID)
	if err != nil {
		return Challenge{}, fmt.Errorf("begin sign-in: %w", err)
	}
	methods := r.Methods
	if !slices.ContainsFunc(ds, func(d Device) bool { return d.State == DeviceActive }) {
		methods = slices.DeleteFunc(slices.Clone(methods), func(m Method) bool { return m == MethodPush || m == MethodQR })
		if len(methods) == 0 {
			return Challenge{}, fmt.Errorf("begin sign-in for %q: %w", a.Username, ErrNoDevice)
		}
	}
	now := s.now()
	actor := r.Actor
	if actor == "" {
		actor = "client:" + r.Client
	}
	var (
		sgn        SignIn
		ch         Challenge
		suppressed string
		tellAdmins bool
	)
	// The push gate counts inside the sign-in's own transaction: one commit
	// per Begin, and a sign-in that fails to start spends no push.
	err = s.write(ctx, func(tx Tx) error {
		open := methods
		suppressed, tellAdmins = "", false
		if slices.Contains(open, MethodPush) {
			var err error
			if open, suppressed, tellAdmins, err = s.pushGate(ctx, tx, a, open, now); err != nil {
				return err
			}
		}
		sgn, ch = s.newSignIn(a, r, open, now, suppressed)
		if err := tx.CreateSignIn(ctx, sgn); err != nil {
			return err
		}
		if b := r.For; b != nil {
			if err := tx.BindAuthRequest(ctx, b.RequestID, b.SessionHash); err != nil {
				return fmt.Errorf("%w: %w", ErrRequestBinding, err)
			}
			if err := tx.AttachSignIn(ctx, b.RequestID, sgn.ID); err != nil {
				return fmt.Errorf("%w: %w", ErrRequestBinding, err)
			}
		}
		ev := auditAt(now, actor, AuditSignInStarted)
		ev.AccountID, ev.SignInID, ev.Detail = a.ID, sgn.ID, r.Client
		if _, err := tx.AppendAudit(ctx, ev); err != nil {
			return err
		}
		if suppressed == "" {
			return nil
		}
		ev = auditAt(now, "system", AuditPushSuppressed)
		ev.AccountID, ev.SignInID, ev.Detail = a.ID, sgn.ID, pushSuppressedDetail(suppressed, s.cfg)
		_, err := tx.AppendAudit(ctx, ev)
		return err
	}, accountTopic(a.ID))
	if err != nil {
		return Challenge{}, fmt.Errorf("begin sign-in: %w", err)
	}
	s.obs.SignInStarted(sgn.Methods)
	if suppressed != "" {
		s.obs.RateLimited(suppressedLimit(suppressed))
	}
	if sgn.HasMethod(MethodPush) {
		s.sendPushes(ctx, a, ds, sgn)
	}
	if tellAdmins {
		s.alert(ctx, AdminAlert{Kind: AlertPushLimit, Account: a.Username, AccountID: a.ID, SignIn: sgn.ID,
			Detail: pushSuppressedDetail(suppressed, s.cfg), Time: now})
	}
	return ch, nil
}

// newSignIn makes a pending sign-in with the given methods open, and the
// challenge the sign-in screen shows for it.
func (s *Service) newSignIn(a Account, r BeginRequest, methods []Method, now time.Time, suppressed string) (SignIn, Challenge) {
	sgn := SignIn{
		ID: NewID(), AccountID: a.ID, Client: r.Client, IP: r.IP, UserAgent: r.UserAgent,
		Methods: methods, Nonce: NewSecret(16), CreatedAt: now, ExpiresAt: now.Add(s.cfg.SignInTTL), Status: StatusPending,
	}
	ch := Challenge{PushSuppressed: suppressed}
	if sgn.HasMethod(MethodPush) {
		ch.Number = randomDigits(s.cfg.NumberDigits)
		sgn.Number = ch.Number
	}
	if sgn.HasMethod(MethodQR) {
		secret := NewSecret(16)
		sgn.QRSecretHash = HashSecret(secret)
		ch.QRPayload = SignInQR{Server: s.cfg.Origin, SignInID: sgn.ID, Secret: secret}.String()
	}
	ch.SignIn = sgn
	return sgn, ch
}

// pushSuppressedDetail says why push was left out of a sign-in.
func pushSuppressedDetail(why string, c Config) string {
	if why == PushSuppressedFraud {
		return "pushes are blocked after a fraud report; QR and codes stay open"
	}
	return fmt.Sprintf("more than %d pushes in %s; QR and codes stay open", c.PushLimit, c.PushWindow)
}

// GetSignIn returns a sign-in, expiring it first if its time is up.
func (s *Service) GetSignIn(ctx context.Context, id string) (SignIn, error) {
	if !validID(id) {
		return SignIn{}, invalidf("malformed sign-in id")
	}
	sgn, err := s.store.GetSignIn(ctx, id)
	if err != nil {
		return SignIn{}, fmt.Errorf("sign-in %s: %w", id, err)
	}
	if sgn.Status == StatusPending && !s.now().Before(sgn.ExpiresAt) {
		return s.finish(ctx, sgn, StatusExpired, "system", "not decided in time")
	}
	return sgn, nil
}

// finish moves a pending sign-in to a final status on the server's own
// authority (expiry, cancellation) and returns it as it now stands.
func (s *Service) finish(ctx context.Context, sgn SignIn, to SignInStatus, actor, reason string) (SignIn, error) {
	now := s.now()
	d := sgn
	d.Status, d.DecidedAt, d.Reason = to, now, reason
	action := AuditSignInExpired
	if to == StatusCancelled {
		action = AuditSignInCancelled
	}
	err := s.write(ctx, func(tx Tx) error {
		if err := tx.DecideSignIn(ctx, d); err != nil {
			return err
		}
		ev := auditAt(now, actor, action)
		ev.AccountID, ev.SignInID, ev.Detail = sgn.AccountID, sgn.ID, reason
		_, err := tx.AppendAudit(ctx, ev)
		return err
	}, signInTopic(sgn.ID), accountTopic(sgn.AccountID))
	if errors.Is(err, ErrAlreadyDecided) {
		return s.store.GetSignIn(ctx, sgn.ID) // someone else decided first
	}
	if err != nil {
		return SignIn{}, fmt.Errorf("finish sign-in %s: %w", sgn.ID, err)
	}
	s.finished(d)
	return d, nil
}

// Cancel ends a pending sign-in (the user went away, the host gave up).
func (s *Service) Cancel(ctx context.Context, actor, id, reason string) (SignIn, error) {
	if err := checkText("reason", reason, false, 500); err != nil {
		return SignIn{}, err
	}
	sgn, err := s.GetSignIn(ctx, id)
	if err != nil {
		return SignIn{}, err
	}
	if sgn.Status.Final() {
		return sgn, fmt.Errorf("cancel sign-in %s: %w", id, ErrAlreadyDecided)
	}
	return s.finish(ctx, sgn, StatusCancelled, actor, reason)
}

// AwaitRecheck bounds how long Await trusts its events: it re-reads the
// sign-in at least this often, so that a notification lost between
// instances (a dropped LISTEN connection) delays a decision by at most
// this much instead of until the sign-in expires.
const AwaitRecheck = 5 * time.Second

// Await blocks until the sign-in is final (decided, expired, cancelled) or
// ctx ends. It is woken by the decision itself, not by polling; it re-reads
// the sign-in every AwaitRecheck in case a notification was lost (one
// timer at a time: the recheck or the expiry, whichever comes first).
func (s *Service) Await(ctx context.Context, id string) (SignIn, error) {
	wake, stop := s.events.Subscribe(signInTopic(id))
	defer stop()
	for {
		sgn, err := s.GetSignIn(ctx, id)
		if err != nil || sgn.Status.Final() {
			return sgn, err
		}
		select {
		case <-wake:
		case <-s.clock.After(min(sgn.ExpiresAt.Sub(s.now()), AwaitRecheck)):
		case <-ctx.Done():
			return sgn, ctx.Err()
		}
	}
}

// DecisionRequest is a device's signed decision on a sign-in.
type DecisionRequest struct {
	SignInID  string
	DeviceID  string
	Decision  Decision
	Method    Method    // push (Number is the number typed) or qr (Number is the QR secret)
	Number    string    // empty for deny and report
	Time      time.Time // the device's time, signed
	Signature []byte    // ES256 over DecisionPayload(...)
}

// Decide records a device's decision. The signature must verify with a
// registered device of the sign-in's account over this sign-in's nonce; the
// sign-in is decided exactly once, so a replay gets ErrAlreadyDecided. The
// device and the account must still be active when the decision is written
// (ErrDeviceUnregistered, ErrAccountSuspended, ErrAccountRemoved), and an
// approval resets the account's consecutive code failures. An
// approval with the wrong number denies the sign-in (and returns it with
// ErrWrongNumber): a user who cannot read the screen is not the one signing in.
func (s *Service) Decide(ctx context.Context, r DecisionRequest) (SignIn, error) {
	ctx, end := s.obs.Start(ctx, "flows.Decide")
	sgn, err := s.decide(ctx, r)
	end(err)
	return sgn, err
}

func (s *Service) decide(ctx context.Context, r DecisionRequest) (SignIn, error) {
	if !r.Decision.Valid() {
		return SignIn{}, invalidf("unknown decision %q", r.Decision)
	}
	if r.Method != MethodPush && r.Method != MethodQR {
		return SignIn{}, invalidf("unknown method %q", r.Method)
	}
	sgn, err := s.GetSignIn(ctx, r.SignInID)
	if err != nil {
		return SignIn{}, err
	}
	switch sgn.Status {
	case StatusPending:
	case StatusExpired:
		return sgn, fmt.Errorf("sign-in %s: %w", sgn.ID, ErrExpired)
	default:
		return sgn, fmt.Errorf("sign-in %s is %s: %w", sgn.ID, sgn.Status, ErrAlreadyDecided)
	}
	if !sgn.HasMethod(r.Method) {
		return sgn, fmt.Errorf("sign-in %s, %s: %w", sgn.ID, r.Method, ErrMethodNotAllowed)
	}
	d, pub, err := s.activeDevice(ctx, r.DeviceID, sgn.AccountID)
	if err != nil {
		return sgn, err
	}
	msg, err := DecisionPayload(s.cfg.Origin, sgn.ID, sgn.Nonce, r.Decision, r.Method, r.Number, r.Time)
	if err != nil {
		return sgn, err
	}
	if !VerifyES256(pub, msg, r.Signature) {
		return sgn, fmt.Errorf("decision on %s: %w", sgn.ID, ErrBadSignature)
	}
	now := s.now()
	if skew := now.Sub(r.Time); skew > s.cfg.MaxClockSkew || skew < -s.cfg.MaxClockSkew {
		return sgn, fmt.Errorf("decision on %s: device time is %s off: %w", sgn.ID, skew.Round(time.Second), ErrExpired)
	}
	a, err := s.store.GetAccount(ctx, sgn.AccountID)
	if err != nil {
		return sgn, fmt.Errorf("decision on %s: %w", sgn.ID, err)
	}
	if err := usable(a); err != nil {
		return sgn, fmt.Errorf("decision on %s: %w", sgn.ID, err)
	}

	out := sgn
	out.DecidedAt, out.DecidedBy, out.DeviceID = now, r.Method, d.ID
	action := AuditSignInDenied
	var result error
	switch r.Decision {
	case DecisionApprove:
		if r.Method == MethodQR {
			if !equalSecret(r.Number, sgn.QRSecretHash) {
				return sgn, invalidf("QR secret does not match this sign-in")
			}
			out.Status, action = StatusApproved, AuditSignInApproved
		} else if subtle.ConstantTimeCompare([]byte(r.Number), []byte(sgn.Number)) == 1 {
			out.Status, action = StatusApproved, AuditSignInApproved
		} else {
			out.Status, out.Reason, result = StatusDenied, "wrong number", ErrWrongNumber
		}
	case DecisionDeny:
		out.Status, out.Reason = StatusDenied, "denied on device"
	case DecisionReport:
		out.Status, out.Reason, out.FraudReport, action = StatusDenied, "user did not start this sign-in", true, AuditSignInFraud
	}
	blockUntil := time.Time{}
	if out.FraudReport && s.cfg.FraudPushBlock > 0 {
		blockUntil = now.Add(s.cfg.FraudPushBlock)
	}
	// Row writes come before the audit events: once a transaction holds the
	// audit chain's lock it takes no other, so no two transactions deadlock.
	err = s.write(ctx, func(tx Tx) error {
		// The store checks, in the same statement, that the device and the
		// account may still decide: an unregistration or suspension that
		// commits first wins over the checks above.
		if err := tx.DecideSignIn(ctx, out); err != nil {
			return err
		}
		if out.Status == StatusApproved {
			// A successful sign-in resets the consecutive code failures.
			if err := tx.ResetCodeFailures(ctx, sgn.AccountID); err != nil {
				return err
			}
		}
		if !blockUntil.IsZero() {
			if err := tx.BlockPush(ctx, sgn.AccountID, blockUntil); err != nil {
				return err
			}
		}
		ev := auditAt(now, "device:"+d.ID, action)
		ev.AccountID, ev.DeviceID, ev.SignInID, ev.Detail = sgn.AccountID, d.ID, sgn.ID, string(r.Method)
		if out.Reason != "" {
			ev.Detail += ": " + out.Reason
		}
		if _, err := tx.AppendAudit(ctx, ev); err != nil {
			return err
		}
		if blockUntil.IsZero() {
			return nil
		}
		ev = auditAt(now, "system", AuditPushBlocked)
		ev.AccountID, ev.SignInID, ev.Detail = sgn.AccountID, sgn.ID, "after a fraud report, until "+blockUntil.Format(time.RFC3339)
		_, err := tx.AppendAudit(ctx, ev)
		return err
	}, signInTopic(sgn.ID), accountTopic(sgn.AccountID))
	if err != nil {
		return sgn, fmt.Errorf("decision on %s: %w", sgn.ID, err)
	}
	s.finished(out)
	if out.FraudReport {
		s.obs.FraudReported()
		s.log.WarnContext(ctx, "user reported a sign-in they did not start", "account", a.Username, "signin", sgn.ID, "client", sgn.Client, "ip", sgn.IP)
		detail := fmt.Sprintf("the user reported a sign-in they did not start: client %q from %s", sgn.Client, sgn.IP)
		if !blockUntil.IsZero() {
			detail += "; pushes are blocked until " + blockUntil.Format(time.RFC3339)
		}
		s.alert(ctx, AdminAlert{Kind: AlertFraudReport, Account: a.Username, AccountID: a.ID, SignIn: sgn.ID, Detail: detail, Time: now})
	}
	if result != nil {
		return out, fmt.Errorf("decision on %s: %w", sgn.ID, result)
	}
	return out, nil
}

// ClaimQR is what a device does after scanning a sign-in QR: it proves it
// saw the screen (the secret) and gets the sign-in to show the user and to
// sign. The device must belong to the sign-in's account.
func (s *Service) ClaimQR(ctx context.Context, deviceID string, qr SignInQR) (SignIn, error) {
	if qr.Server != s.cfg.Origin {
		return SignIn{}, invalidf("this QR code belongs to another server (%s)", qr.Server)
	}
	sgn, err := s.GetSignIn(ctx, qr.SignInID)
	if err != nil {
		return SignIn{}, err
	}
	if !sgn.HasMethod(MethodQR) || !equalSecret(qr.Secret, sgn.QRSecretHash) {
		return SignIn{}, fmt.Errorf("sign-in %s: %w", qr.SignInID, ErrNotFound)
	}
	if _, _, err := s.activeDevice(ctx, deviceID, sgn.AccountID); err != nil {
		return SignIn{}, err
	}
	if sgn.Status == StatusExpired {
		return sgn, fmt.Errorf("sign-in %s: %w", sgn.ID, ErrExpired)
	}
	if sgn.Status.Final() {
		return sgn, fmt.Errorf("sign-in %s is %s: %w", sgn.ID, sgn.Status, ErrAlreadyDecided)
	}
	return sgn, nil
}

// PendingForDevice lists the push requests waiting for a device's decision.
func (s *Service) PendingForDevice(ctx context.Context, d Device) ([]SignIn, error) {
	all, err := s.store.ListPendingSignIns(ctx, d.AccountID, s.now())
	if err != nil {
		return nil, fmt.Errorf("pending sign-ins: %w", err)
	}
	out := all[:0]
	for _, sgn := range all {
		if sgn.HasMethod(MethodPush) {
			out = append(out, sgn)
		}
	}
	return out, nil
}

// WatchAccount returns a channel woken whenever an account's sign-ins or
// devices change (a device's request stream listens on it).
func (s *Service) WatchAccount(accountID string) (<-chan struct{}, func()) {
	return s.events.Subscribe(accountTopic(accountID))
}
