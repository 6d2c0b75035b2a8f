// Package steptest drives keystep's step page the way a browser without
// JavaScript does: it keeps cookies, reads the page's forms and submits
// them. Tests of the OpenID Provider (and of the SAML IdP) use it to walk a
// user through the step.
package steptest

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Browser is one browser: its own cookie jar. It does not follow
// redirects by itself, so tests see where each answer points.
type Browser struct {
	t      testing.TB
	Client *http.Client
}

// NewBrowser makes a browser with an empty cookie jar.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Browser{t: t, Client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Page is a response as the browser read it.
type Page struct {
	URL      *url.URL
	Status   int
	Header   http.Header
	Body     string
	Location string // for a redirect: where it points, resolved
	Forms    []Form
}

// Form is a form of a page, with its hidden and prefilled fields.
type Form struct {
	Action string // resolved against the page's URL
	Fields url.Values
}

// Get loads a URL.
func (b *Browser) Get(rawURL string) *Page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.Do(req)
}

// Post submits a form body to a URL, as a same-origin form would.
func (b *Browser) Post(rawURL string, fields url.Values) *Page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(fields.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.Do(req)
}

// Submit submits a form, with fields set over its own.
func (b *Browser) Submit(f Form, set url.Values) *Page {
	b.t.Helper()
	v := url.Values{}
	for k, vs := range f.Fields {
		v[k] = append([]string(nil), vs...)
	}
	for k, vs := range set {
		v[k] = vs
	}
	return b.Post(f.Action, v)
}

// Do sends a request and reads the answer.
func (b *Browser) Do(req *http.Request) *Page {
	b.t.Helper()
	resp, err := b.Client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	p := &Page{URL: req.URL, Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
	if loc := resp.Header.Get("Location"); loc != "" {
		if u, err := req.URL.Parse(loc); err == nil {
			p.Location = u.String()
		}
	}
	p.Forms = parseForms(req.URL, p.Body)
	return p
}

// Follow loads where a redirect points.
func (b *Browser) Follow(p *Page) *Page {
	b.t.Helper()
	if p.Location == "" {
		b.t.Fatalf("%s answered %d, not a redirect:\n%s", p.URL, p.Status, p.Body)
	}
	return b.Get(p.Location)
}

// Form returns the page's form whose action path ends with suffix.
func (p *Page) Form(t testing.TB, suffix string) Form {
	t.Helper()
	if f, ok := p.FindForm(suffix); ok {
		return f
	}
	t.Fatalf("%s (%d) has no form posting to …%s:\n%s", p.URL, p.Status, suffix, p.Body)
	return Form{}
}

// FindForm is Form without failing.
func (p *Page) FindForm(suffix string) (Form, bool) {
	for _, f := range p.Forms {
		u, err := url.Parse(f.Action)
		if err == nil && (strings.HasSuffix(u.Path, suffix) || f.Action == suffix) {
			return f, true
		}
	}
	return Form{}, false
}

// Text is the page's visible text, roughly: tags removed, entities
// decoded, spaces collapsed.
func (p *Page) Text() string {
	s := tagRE.ReplaceAllString(p.Body, " ")
	return strings.Join(strings.Fields(html.UnescapeString(s)), " ")
}

var (
	formRE  = regexp.MustCompile(`(?s)<form\b([^>]*)>(.*?)</form>`)
	inputRE = regexp.MustCompile(`<input\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`([a-zA-Z-]+)="([^"]*)"`)
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
)

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(s, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2])
	}
	return m
}

// parseForms reads the forms of keystep's own pages (which it writes with
// html/template, attributes always double-quoted).
func parseForms(base *url.URL, body string) []Form {
	var out []Form
	for _, m := range formRE.FindAllStringSubmatch(body, -1) {
		fa := attrs(m[1])
		action := base.String()
		if a, ok := fa["action"]; ok {
			if u, err := base.Parse(a); err == nil {
				action = u.String()
			}
		}
		f := Form{Action: action, Fields: url.Values{}}
		for _, in := range inputRE.FindAllStringSubmatch(m[2], -1) {
			ia := attrs(in[1])
			if name := ia["name"]; name != "" {
				f.Fields.Add(name, ia["value"])
			}
		}
		out = append(out, f)
	}
	return out
}
