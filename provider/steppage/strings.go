package steppage

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// texts holds every string a user can see on the step page, in one
// language. Placeholders in braces ({app}, {number}, {to}, {time}, {wait})
// are filled in by the page; the templates hold no words of their own.
//
// The promises made here follow the user troubleshooting guide: the IT
// administrator gives override codes, suspension is temporary and
// reversible, a removed account is gone from the organization, the phone's
// camera app cannot read the QR code, an unexpected request is denied and
// reported.
type texts struct {
	Lang string // the BCP 47 tag of the language (the html lang attribute)

	// The step page.
	StepTitle     string
	StepHeading   string // "{app} wants you to sign in"
	PushAsk       string // holds {number}
	NumberLabel   string // announced before the number
	QRAsk         string
	QRAlt         string
	QRHelp        string
	NoPhone       string // no phone method is open: only codes
	OtherWays     string
	SendSMS       string
	SendEmail     string
	HaveOverride  string
	OverrideHelp  string
	OverrideTitle string
	CodeLabel     string
	SubmitCode    string
	Continue      string
	ContinueHint  string // without JavaScript
	Cancel        string
	NotGettingIt  string
	NotGettingFix string

	// The code page.
	CodeTitle     string
	CodeHeading   string
	CodeSent      string // holds {to}
	CodeSentSMS   string // holds {to}
	CodeWrong     string
	CodeMalformed string
	SendAgain     string
	BackToStep    string

	// Messages on the step and code pages.
	MethodClosed      string
	RateLimited       string // holds {wait}
	NoPhoneOnFile     string
	NoEmailOnFile     string
	DeliveryFailed    string
	SignInStillOpen   string
	WaitSecondOne     string
	WaitSecondsMany   string // holds {n}
	WaitMinutesMany   string // holds {n}
	TimeLayout        string // a time later today
	DateTimeLayout    string // a time on another day
	TimeZoneNote      string // appended to times: the zone they are in
	ReturnToApp       string // holds {app}
	TryAgain          string
	UsePhoneInstead   string
	ApprovedTitle     string
	ApprovedHeading   string
	ApprovedText      string // holds {app}
	DeniedTitle       string
	DeniedText        string
	ReportedText      string
	WrongNumberText   string
	ExpiredTitle      string
	ExpiredText       string
	CancelledTitle    string
	CancelledText     string
	SuspendedTitle    string
	SuspendedText     string
	SuspendedMore     string
	RemovedTitle      string
	RemovedText       string
	RemovedMore       string
	UnavailableTitle  string // the directory could not confirm the account
	UnavailableText   string
	NoDeviceTitle     string
	NoDeviceText      string
	NoDeviceMore      string
	LockedTitle       string
	LockedText        string // holds {time}
	LockedAdminText   string // locked until an administrator unlocks
	GoneTitle         string
	GoneText          string
	OtherBrowserTitle string
	OtherBrowserText  string
	TheApp            string // the app, when the request does not name it
	ForbiddenTitle    string
	ForbiddenText     string
	BadRequestTitle   string
	BadRequestText    string
	ErrorTitle        string
	ErrorText         string

	// The auto-posting page.
	AutoPostTitle string
	AutoPostText  string
}

var english = texts{
	Lang: "en",

	StepTitle:     "Sign in",
	StepHeading:   "{app} wants you to sign in",
	PushAsk:       "We sent a request to your phone. Tap {number} to approve.",
	NumberLabel:   "Your number",
	QRAsk:         "Or scan this code with the keystep app.",
	QRAlt:         "QR code to scan with the keystep app",
	QRHelp:        "Open the keystep app and use its scanner: your phone's camera app won't work. Hold your phone steady, about 15-30 cm (6-12 inches) from the screen.",
	NoPhone:       "There is no phone set up for your account. Use a code below, or contact your IT administrator to set up the keystep app.",
	OtherWays:     "Other ways to sign in",
	SendSMS:       "Text me a code",
	SendEmail:     "Email me a code",
	HaveOverride:  "I have an override code",
	OverrideTitle: "Enter your override code",
	OverrideHelp:  "If you don't have your phone with you, contact your IT administrator. They can give you an Administrative Override: a one-time code that lets you sign in without your phone. It works once.",
	CodeLabel:     "Code",
	SubmitCode:    "Sign in with this code",
	Continue:      "Continue",
	ContinueHint:  "When you have approved on your phone, choose Continue.",
	Cancel:        "Cancel",
	NotGettingIt:  "Not getting the notification?",
	NotGettingFix: "Check that notifications are turned on for the keystep app and that your phone is online, then restart the app. Meanwhile you can scan the QR code, or use a code.",

	CodeTitle:     "Enter your code",
	CodeHeading:   "Enter your code",
	CodeSent:      "We sent a code to {to}.",
	CodeSentSMS:   "We sent a code by text message to {to}.",
	CodeWrong:     "That code is not right. Check it and try again.",
	CodeMalformed: "That code is not right: a code has only digits and letters.",
	SendAgain:     "Send a new code",
	BackToStep:    "Back to other ways to sign in",

	MethodClosed:      "That way of signing in is not open for this app.",
	RateLimited:       "Too many tries. Try again in {wait}.",
	NoPhoneOnFile:     "We can't text you a code: there is no phone number on file for you, or text messages can't be sent from here. Contact your IT administrator.",
	NoEmailOnFile:     "We can't email you a code: there is no email address on file for you, or email can't be sent from here. Contact your IT administrator.",
	DeliveryFailed:    "We couldn't send the code. Try again in a moment, or use another way to sign in.",
	SignInStillOpen:   "The sign-in is still waiting for you.",
	WaitSecondOne:     "1 second",
	WaitSecondsMany:   "{n} seconds",
	WaitMinutesMany:   "{n} minutes",
	TimeLayout:        "15:04",
	DateTimeLayout:    "2 January 15:04",
	TimeZoneNote:      " UTC",
	ReturnToApp:       "Return to {app}",
	TryAgain:          "Try again",
	UsePhoneInstead:   "Sign in with your phone instead",
	ApprovedTitle:     "Approved",
	ApprovedHeading:   "You're signed in",
	ApprovedText:      "Continue to {app}.",
	DeniedTitle:       "Sign-in denied",
	DeniedText:        "You denied this sign-in. If it wasn't you trying to sign in, tell your IT administrator now.",
	ReportedText:      "You reported that you didn't start this sign-in. It was stopped, and your IT administrator has been told.",
	WrongNumberText:   "The number chosen on your phone didn't match, so the sign-in was stopped. If it wasn't you trying to sign in, tell your IT administrator now.",
	ExpiredTitle:      "Sign-in timed out",
	ExpiredText:       "This sign-in was not approved in time.",
	CancelledTitle:    "Sign-in cancelled",
	CancelledText:     "This sign-in was cancelled.",
	SuspendedTitle:    "Account suspended",
	SuspendedText:     "Your account is suspended. Contact your IT administrator.",
	SuspendedMore:     "A suspension is temporary and can be reversed. Your IT team can tell you its status.",
	RemovedTitle:      "Account removed",
	RemovedText:       "Your account has been removed from the organization, so you can't sign in.",
	RemovedMore:       "If you believe this was done in error, contact your IT administrator.",
	UnavailableTitle:  "Account not confirmed",
	UnavailableText:   "Your directory could not confirm your account. Try again in a moment; if it keeps happening, contact your IT administrator.",
	NoDeviceTitle:     "No phone set up",
	NoDeviceText:      "There is no phone set up for your account, so you can't sign in here yet.",
	NoDeviceMore:      "Contact your IT administrator: they can send you an invitation to set up the keystep app.",
	LockedTitle:       "Too many wrong codes",
	LockedText:        "Too many wrong codes. Try again after {time} or contact your IT administrator.",
	LockedAdminText:   "Too many wrong codes. Contact your IT administrator to unlock your sign-in.",
	GoneTitle:         "Sign-in link expired",
	GoneText:          "This sign-in link has expired or is not valid. Go back to the app and sign in again.",
	OtherBrowserTitle: "Started in another browser",
	TheApp:            "the app",
	OtherBrowserText:  "This sign-in was started in another browser. Go back to the app and start again.",
	ForbiddenTitle:    "Not allowed",
	ForbiddenText:     "This page was out of date or sent from another site, so nothing was changed. Go back to the app and start again.",
	BadRequestTitle:   "Something is wrong with that request",
	BadRequestText:    "Nothing was changed. Go back and try again.",
	ErrorTitle:        "Something went wrong",
	ErrorText:         "Something went wrong on our side. Try again in a moment; if it keeps happening, contact your IT administrator.",

	AutoPostTitle: "Returning to the app",
	AutoPostText:  "Taking you back to the app…",
}

// catalog is every language the page speaks, by primary language tag.
var catalog = map[string]*texts{
	"en": &english,
}

// fill replaces the {name} placeholders in s.
func fill(s string, kv ...string) string {
	pairs := make([]string, 0, len(kv))
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, "{"+kv[i]+"}", kv[i+1])
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// wait says how long to wait, rounded up to a second or a minute.
func (t *texts) wait(d time.Duration) string {
	secs := int((d + time.Second - 1) / time.Second)
	switch {
	case secs <= 1:
		return t.WaitSecondOne
	case secs < 120:
		return fill(t.WaitSecondsMany, "n", strconv.Itoa(secs))
	}
	mins := (secs + 59) / 60
	return fill(t.WaitMinutesMany, "n", strconv.Itoa(mins))
}

// at formats a time in UTC: the time alone if it is on the day of now.
func (t *texts) at(when, now time.Time) string {
	when, now = when.UTC(), now.UTC()
	layout := t.DateTimeLayout
	if y, m, d := when.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		layout = t.TimeLayout
	}
	return when.Format(layout) + t.TimeZoneNote
}

// pickTexts chooses the language: the client's ui_locales first, then the
// browser's Accept-Language, then English.
func pickTexts(locales []string, r *http.Request) *texts {
	for _, l := range locales {
		if t, ok := catalog[primaryTag(l)]; ok {
			return t
		}
	}
	if r != nil {
		for _, l := range acceptLanguages(r.Header.Get("Accept-Language")) {
			if t, ok := catalog[primaryTag(l)]; ok {
				return t
			}
		}
	}
	return &english
}

// primaryTag returns the lower-cased primary subtag of a language tag.
func primaryTag(tag string) string {
	tag = strings.TrimSpace(tag)
	if i := strings.IndexAny(tag, "-_"); i >= 0 {
		tag = tag[:i]
	}
	return strings.ToLower(tag)
}

// acceptLanguages returns the languages of an Accept-Language header,
// most preferred first (q=0 left out). It reads at most 32 entries.
func acceptLanguages(h string) []string {
	type entry struct {
		tag string
		q   float64
	}
	var es []entry
	for i, part := range strings.Split(h, ",") {
		if i >= 32 {
			break
		}
		tag, params, _ := strings.Cut(part, ";")
		tag = strings.TrimSpace(tag)
		if tag == "" || tag == "*" {
			continue
		}
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		if q > 0 {
			es = append(es, entry{tag, q})
		}
	}
	slices.SortStableFunc(es, func(a, b entry) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.tag
	}
	return out
}
