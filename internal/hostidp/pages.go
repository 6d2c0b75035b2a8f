package hostidp

import (
	"bytes"
	"html/template"
	"net/http"
	"time"
)

// The pages: plain HTML written with html/template (every value escaped),
// no script and no style, so the Content-Security-Policy can forbid both.
var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<title>Host IdP sign-in</title></head><body>
<h1>Host IdP</h1>{{end}}

{{define "foot"}}</body></html>
{{end}}

{{define "username"}}{{template "head"}}
<p>Sign in with your phone.</p>
{{with .Error}}<p class="error" role="alert">{{.}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="id" value="{{.ID}}">
<label>Username <input type="text" name="username" value="{{.Username}}" autocomplete="username" autofocus required></label>
<button type="submit">Next</button>
</form>
{{template "foot"}}{{end}}

{{define "step"}}{{template "head"}}
<p>Signing in as <strong class="username">{{.Username}}</strong>.</p>
{{with .Notice}}<p class="notice" role="status">{{.}}</p>{{end}}
{{if .Number}}<p>Open the keystep app on your phone and choose this number:</p>
<p><strong class="number">{{.Number}}</strong></p>{{end}}
{{if .QR}}<p>Or scan this code with the keystep app:</p>
<p><img class="qr" src="{{.QR}}" width="256" height="256" alt="QR code to sign in with the keystep app"></p>{{end}}
<p>The request expires at {{.Expires}}.</p>
<form method="post" action="/login/step">
<input type="hidden" name="id" value="{{.ID}}">
<button type="submit">Continue</button>
</form>
{{if .Override}}<form method="post" action="/login/code">
<input type="hidden" name="id" value="{{.ID}}">
<label>No phone? Code from your IT administrator <input type="text" name="code" autocomplete="one-time-code" inputmode="numeric"></label>
<button type="submit">Use code</button>
</form>{{end}}
<form method="post" action="/login/cancel">
<input type="hidden" name="id" value="{{.ID}}">
<button type="submit">Cancel</button>
</form>
{{template "foot"}}{{end}}

{{define "error"}}{{template "head"}}
<p class="error" role="alert">{{.}}</p>
<p>Go back to the application and sign in again.</p>
{{template "foot"}}{{end}}
`))

// usernamePage is the data of the username form.
type usernamePage struct {
	ID, Username, Error string
}

// stepPage is the data of the step page.
type stepPage struct {
	ID, Username, Number, Notice, Expires string
	QR                                    template.URL // a data: URL of the PNG
	Override                              bool         // the override code form is shown
}

// render writes a page with the security headers.
func (p *IdP) render(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		p.log.Error("host IdP page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// errorPage shows a message that ends the sign-in at the IdP.
func (p *IdP) errorPage(w http.ResponseWriter, status int, msg string) {
	p.render(w, status, "error", msg)
}

func formatExpiry(t time.Time) string {
	if t.IsZero() {
		return "soon"
	}
	return t.UTC().Format("15:04:05 UTC")
}
