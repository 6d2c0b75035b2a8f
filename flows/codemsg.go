package flows

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"time"
	"unicode/utf8"
)

// MaskPhone shows a phone number the way a sign-in screen may: its first
// two characters and last four, "+1•••••4567".
func MaskPhone(p string) string {
	if utf8.RuneCountInString(p) < 8 {
		return "•••••"
	}
	return p[:2] + "•••••" + p[len(p)-4:]
}

// MaskEmail shows an address the way a sign-in screen may: the first
// character of its local part and its domain, "a•••@example.com".
func MaskEmail(e string) string {
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" {
		return "•••"
	}
	r, _ := utf8.DecodeRuneInString(local)
	return string(r) + "•••@" + domain
}

// minutes is d in whole minutes, at least one.
func minutes(d time.Duration) int {
	return max(1, int((d+30*time.Second)/time.Minute))
}

// codeSMS is the text of an SMS code: short, one message.
func codeSMS(code, app string, left time.Duration) string {
	if utf8.RuneCountInString(app) > 30 {
		app = string([]rune(app)[:29]) + "…"
	}
	return fmt.Sprintf("%s is your code to sign in to %s. It expires in %d min. Not you? Tell your IT administrator.", code, app, minutes(left))
}

var codeEmailHTML = template.Must(template.New("code").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Your sign-in code</title></head>
<body style="font-family: sans-serif">
<p>Your code to sign in to <strong>{{.App}}</strong> is:</p>
<p style="font-size: 1.6em; font-family: monospace; letter-spacing: 0.2em">{{.Code}}</p>
<p>It expires at {{.Expires}} (in {{.Minutes}} minutes) and works once.</p>
<p>If you did not try to sign in, do not share this code: tell your IT administrator.</p>
</body></html>
`))

// codeEmail is the email of an email code, with a plain-text and an HTML
// body (the app name is escaped in the HTML).
func codeEmail(to, code, app string, expires time.Time, left time.Duration) (Email, error) {
	data := struct {
		App, Code, Expires string
		Minutes            int
	}{app, code, expires.UTC().Format("15:04 MST"), minutes(left)}
	var h bytes.Buffer
	if err := codeEmailHTML.Execute(&h, data); err != nil {
		return Email{}, fmt.Errorf("render code email: %w", err)
	}
	text := fmt.Sprintf("Your code to sign in to %s is: %s\n\nIt expires at %s (in %d minutes) and works once.\n\n"+
		"If you did not try to sign in, do not share this code: tell your IT administrator.\n",
		data.App, data.Code, data.Expires, data.Minutes)
	return Email{To: to, Subject: "Your code to sign in to " + app, Text: text, HTML: h.String()}, nil
}
