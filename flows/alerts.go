package flows

import (
	"context"
	"time"
)

// AdminAlerter tells the admins, at once, about something that needs a
// person: a user reporting a sign-in they did not start, an account whose
// codes were locked, a push limit reached, a code that could not be sent.
// flows/alert has email and webhook implementations.
type AdminAlerter interface {
	Alert(ctx context.Context, a AdminAlert) error
}

// Kinds of admin alerts.
const (
	AlertFraudReport    = "fraud_report"    // "I did not start this" on a device
	AlertCodesLocked    = "codes_locked"    // too many wrong codes: the account's codes are locked
	AlertPushLimit      = "push_limit"      // too many pushes: sign-ins fall back to QR and codes
	AlertDeliveryFailed = "delivery_failed" // an SMS or email code could not be sent
	AlertDirectoryGuard = "directory_guard" // a directory sync stopped before a mass removal
	AlertDirectoryDown  = "directory_down"  // a directory source keeps failing
)

// AdminAlert is one thing the admins should know.
type AdminAlert struct {
	Kind      string    `json:"kind"`
	Account   string    `json:"account"` // the username
	AccountID string    `json:"account_id"`
	SignIn    string    `json:"signin,omitempty"` // the sign-in's id
	Detail    string    `json:"detail"`
	Time      time.Time `json:"time"`
}

// AlertTimeout bounds one alert's delivery.
const AlertTimeout = 15 * time.Second

// WithAdminAlerter sets who tells the admins; without one, alerts are only
// logged.
func WithAdminAlerter(a AdminAlerter) Option { return func(s *Service) { s.alerter = a } }

// WithEmailSender makes email codes available; nil leaves them off.
func WithEmailSender(e EmailSender) Option { return func(s *Service) { s.email = e } }

// WithSMSSender makes SMS codes available; nil leaves them off.
func WithSMSSender(m SMSSender) Option { return func(s *Service) { s.sms = m } }

// AlertAdmins tells the admins about something outside the flows (a
// directory sync that stopped), like the flows' own alerts.
func (s *Service) AlertAdmins(ctx context.Context, a AdminAlert) {
	if a.Time.IsZero() {
		a.Time = s.now()
	}
	s.alert(ctx, a)
}

// alert tells the admins. It never undoes what caused the alert: a failure
// is logged and written to the audit log. It runs even if ctx is cancelled
// (the caller's client went away), within AlertTimeout.
func (s *Service) alert(ctx context.Context, a AdminAlert) {
	s.log.Warn("admin alert", "kind", a.Kind, "account", a.Account, "signin", a.SignIn, "detail", a.Detail)
	if s.alerter == nil {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), AlertTimeout)
	defer cancel()
	err := s.alerter.Alert(actx, a)
	if err == nil {
		return
	}
	s.log.Error("admin alert could not be delivered", "kind", a.Kind, "account", a.Account, "err", err)
	ev := auditAt(s.now(), "system", AuditAlertFailed)
	ev.AccountID, ev.SignInID = a.AccountID, a.SignIn
	ev.Detail = clipText(a.Kind+": "+err.Error(), 1024)
	if _, err := s.store.AppendAudit(actx, ev); err != nil {
		s.log.Error("recording a failed admin alert", "err", err)
		return
	}
	s.events.Publish(AuditTopic)
}
