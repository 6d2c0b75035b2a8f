package flows

import "context"

// The senders keystep uses to reach people and phones. flows owns these
// interfaces; small packages under flows/notify implement them (SMTP, SMS
// gateways, APNs, FCM), chosen by configuration. A send failure is returned,
// never swallowed: the caller tells the user and writes it to the log.

// Email is one message to one address, with a plain-text and an HTML body.
type Email struct {
	To      string
	Subject string
	Text    string
	HTML    string
}

// EmailSender delivers email.
type EmailSender interface {
	SendEmail(ctx context.Context, m Email) error
}

// SMS is one text message to one E.164 number.
type SMS struct {
	To   string
	Text string
}

// SMSSender delivers text messages.
type SMSSender interface {
	SendSMS(ctx context.Context, m SMS) error
}

// Push is a wake-up for the app: it says a sign-in is waiting and carries no
// secret. The app fetches the request itself over the signed device API.
type Push struct {
	Route    string // the device's push route, e.g. "apns:<token>" or "fcm:<token>"
	SignInID string
	Title    string // shown on the lock screen, e.g. "Sign-in request"
	Body     string // e.g. "Payroll wants you to sign in"
}

// PushSender delivers pushes to one kind of route.
type PushSender interface {
	SendPush(ctx context.Context, p Push) error
}
