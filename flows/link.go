package flows

import (
	"net/url"
	"strings"
)

// Links the app reads: an enrollment link (sent in an invitation, shown as
// a QR to the admin) and the sign-in QR shown on the step page. Both name
// the server they belong to, so the app knows where to answer.
//
//	keystep://enroll?v=1&server=https%3A%2F%2Fidp.example.com&token=…
//	keystep://signin?v=1&server=https%3A%2F%2Fidp.example.com&id=…&secret=…
const linkScheme = "keystep"

// maxLinkLen bounds what the parsers accept.
const maxLinkLen = 2048

// EnrollLink is the content of an invitation.
type EnrollLink struct {
	Server string // the server's public URL
	Token  string // the one-use invitation token
}

// String formats the link.
func (l EnrollLink) String() string {
	q := url.Values{"v": {"1"}, "server": {l.Server}, "token": {l.Token}}
	return linkScheme + "://enroll?" + q.Encode()
}

// SignInQR is the content of the QR code on the step page.
type SignInQR struct {
	Server   string // the server's public URL
	SignInID string
	Secret   string // one-time secret proving the device saw this screen
}

// String formats the QR payload.
func (l SignInQR) String() string {
	q := url.Values{"v": {"1"}, "server": {l.Server}, "id": {l.SignInID}, "secret": {l.Secret}}
	return linkScheme + "://signin?" + q.Encode()
}

// ParseEnrollLink parses and checks an enrollment link.
func ParseEnrollLink(s string) (EnrollLink, error) {
	q, err := parseLink(s, "enroll", "server", "token")
	if err != nil {
		return EnrollLink{}, err
	}
	if !validToken(q["token"]) {
		return EnrollLink{}, invalidf("enrollment link: malformed token")
	}
	return EnrollLink{Server: q["server"], Token: q["token"]}, nil
}

// ParseSignInQR parses and checks a sign-in QR payload.
func ParseSignInQR(s string) (SignInQR, error) {
	q, err := parseLink(s, "signin", "server", "id", "secret")
	if err != nil {
		return SignInQR{}, err
	}
	if !validID(q["id"]) || !validToken(q["secret"]) {
		return SignInQR{}, invalidf("sign-in QR: malformed id or secret")
	}
	return SignInQR{Server: q["server"], SignInID: q["id"], Secret: q["secret"]}, nil
}

// parseLink checks the scheme, kind, version and exact parameter set of a
// link and returns its parameters, each given once.
func parseLink(s, kind string, params ...string) (map[string]string, error) {
	if len(s) > maxLinkLen {
		return nil, invalidf("%s link is too long", kind)
	}
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, invalidf("%s link: %v", kind, err)
	}
	if u.Scheme != linkScheme || u.Host != kind || (u.Path != "" && u.Path != "/") || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return nil, invalidf("not a keystep %s link", kind)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, invalidf("%s link: %v", kind, err)
	}
	if q.Get("v") != "1" {
		return nil, invalidf("%s link: unsupported version %q", kind, q.Get("v"))
	}
	out := map[string]string{}
	for _, p := range params {
		if len(q[p]) != 1 || q[p][0] == "" {
			return nil, invalidf("%s link: parameter %q must appear once", kind, p)
		}
		out[p] = q[p][0]
	}
	if len(q) != len(params)+1 || len(q["v"]) != 1 {
		return nil, invalidf("%s link: unexpected parameters", kind)
	}
	if err := CheckServerURL(out["server"]); err != nil {
		return nil, err
	}
	return out, nil
}

// CheckServerURL checks that s is an absolute http(s) URL with a host and no
// user info, query or fragment: a server the app may talk to.
func CheckServerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return invalidf("server URL: %v", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return invalidf("server URL %q must be http(s)://host[:port][/path]", s)
	}
	return nil
}

// validToken reports whether s looks like a secret from NewSecret with at
// least 128 bits.
func validToken(s string) bool {
	if len(s) < 22 || len(s) > 128 {
		return false
	}
	_, err := b64.DecodeString(s)
	return err == nil
}
