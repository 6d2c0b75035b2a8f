package directory

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/flows"
)

// Stable id attributes keystep knows the form of.
const (
	attrEntryUUID  = "entryUUID"  // RFC 4530, text: OpenLDAP, 389-DS
	attrObjectGUID = "objectGUID" // binary, 16 bytes: Active Directory
)

// Limits of the mapped fields (those of flows' accounts).
const (
	maxExternalID  = 128
	maxUsername    = 256
	maxDisplayName = 256
)

// withDefaults fills in the attributes left empty: entryUUID, uid, mail,
// mobile and displayName (cn when an entry has no displayName); on Active
// Directory (the active_directory preset) the id defaults to objectGUID and
// the username to sAMAccountName instead.
func (a AttributeMap) withDefaults(preset string) AttributeMap {
	ad := preset == PresetActiveDir
	if a.ID == "" {
		a.ID = attrEntryUUID
		if ad {
			a.ID = attrObjectGUID
		}
	}
	if a.Username == "" {
		a.Username = "uid"
		if ad {
			a.Username = "sAMAccountName"
		}
	}
	if a.Email == "" {
		a.Email = "mail"
	}
	if a.Phone == "" {
		a.Phone = "mobile"
	}
	if a.DisplayName == "" {
		a.DisplayName = "displayName"
	}
	return a
}

// validate checks that every attribute is an attribute description.
func (a AttributeMap) validate() error {
	for _, f := range []struct{ field, v string }{
		{"ID", a.ID}, {"Username", a.Username}, {"Email", a.Email}, {"Phone", a.Phone}, {"DisplayName", a.DisplayName},
	} {
		if !validAttrDesc(f.v) {
			return fmt.Errorf("%s: %q is not an attribute name", "Attributes."+f.field, f.v)
		}
	}
	return nil
}

// idKind is how an id attribute's value becomes an ExternalID.
type idKind uint8

const (
	idOther      idKind = iota // [A-Za-z0-9._-], at most 128 bytes, as is
	idEntryUUID                // a UUID in text, lowercased
	idObjectGUID               // 16 bytes, formatted like AD formats GUIDs
)

// kindOf returns the kind of id attribute a.
func kindOf(a string) idKind {
	switch {
	case strings.EqualFold(a, attrEntryUUID):
		return idEntryUUID
	case strings.EqualFold(a, attrObjectGUID):
		return idObjectGUID
	}
	return idOther
}

// mapper turns a source's search result entries into flows.DirectoryEntry
// values, as the source's AttributeMap and Suspension say.
type mapper struct {
	attrMap AttributeMap
	idKind  idKind
	// displayFallback is read when the entry has no (or a blank)
	// DisplayName attribute: cn, when DisplayName is displayName.
	displayFallback string
	rules           *rules
	attrs           []string

	// warn, when set, receives the problems that do not stop an entry
	// from mapping (a value a rule cannot read), with the entry's DN.
	warn func(dn string, err error)
}

// newMapper builds the mapper of cfg (whose defaults it fills in itself
// where missing); a bad attribute map or suspension rule is an error.
func newMapper(cfg SourceConfig) (*mapper, error) {
	am := cfg.Attributes.withDefaults(cfg.Suspension.Preset)
	if err := am.validate(); err != nil {
		return nil, err
	}
	r, err := newRules(cfg.Suspension)
	if err != nil {
		return nil, err
	}
	m := &mapper{attrMap: am, idKind: kindOf(am.ID), rules: r}
	if strings.EqualFold(am.DisplayName, "displayName") {
		m.displayFallback = "cn"
	}
	// The id, both well-known id attributes (the incremental syncs key
	// on them), the fields, then what the rules read.
	m.attrs = appendAttrs(nil, am.ID, attrEntryUUID, attrObjectGUID, am.Username, am.Email, am.Phone, am.DisplayName)
	if m.displayFallback != "" {
		m.attrs = appendAttrs(m.attrs, m.displayFallback)
	}
	m.attrs = appendAttrs(m.attrs, r.attributes()...)
	return m, nil
}

// attributes returns every attribute the search must request, operational
// ones included (entryUUID, objectGUID and the suspension preset's:
// userAccountControl, accountExpires, msDS-User-Account-Control-Computed
// and lockoutTime; pwdAccountLockedTime; nsAccountLock), and those of the
// suspension filter.
func (m *mapper) attributes() []string {
	return append([]string(nil), m.attrs...)
}

// idAttr returns the stable id's attribute (entryUUID, objectGUID, …).
func (m *mapper) idAttr() string { return m.attrMap.ID }

// entry maps a search result entry at time now. An entry without a usable
// id or username is an error (the caller skips and counts it); an unusable
// email, phone or display name is left empty.
func (m *mapper) entry(e *ldap.Entry, now time.Time) (flows.DirectoryEntry, error) {
	id, err := m.externalID(e)
	if err != nil {
		return flows.DirectoryEntry{}, err
	}
	user, err := m.username(e)
	if err != nil {
		return flows.DirectoryEntry{}, err
	}
	d := flows.DirectoryEntry{ExternalID: id, DN: e.DN, Username: user}
	if v, ok := firstValue(e, m.attrMap.Email); ok {
		if v = strings.TrimSpace(v); flows.CheckEmail(v) == nil {
			d.Email = v
		}
	}
	if v, ok := firstValue(e, m.attrMap.Phone); ok {
		d.Phone = normalizePhone(v)
	}
	v, _ := firstValue(e, m.attrMap.DisplayName)
	if d.DisplayName = cleanDisplayName(v); d.DisplayName == "" && m.displayFallback != "" {
		v, _ = firstValue(e, m.displayFallback)
		d.DisplayName = cleanDisplayName(v)
	}
	var warning error
	d.State, d.Reason, warning = m.rules.evaluate(e, now)
	if warning != nil && m.warn != nil {
		m.warn(e.DN, warning)
	}
	return d, nil
}

// externalID reads the entry's stable id.
func (m *mapper) externalID(e *ldap.Entry) (string, error) {
	a := m.attrMap.ID
	v, err := singleValue(e, a)
	if err != nil {
		return "", err
	}
	switch m.idKind {
	case idEntryUUID:
		return canonicalUUID(v)
	case idObjectGUID:
		if len(v) != 16 {
			return "", fmt.Errorf("%s of %d bytes, not 16", a, len(v))
		}
		return formatGUID(v), nil
	}
	if v == "" || len(v) > maxExternalID {
		return "", fmt.Errorf("%s must be 1 to %d bytes", a, maxExternalID)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "", fmt.Errorf("%s %q has characters other than letters, digits, '.', '_' and '-'", a, v)
		}
	}
	return v, nil
}

// canonicalUUID checks a UUID in its text form (RFC 4122 / 9562) and
// returns it lowercased.
func canonicalUUID(v string) (string, error) {
	if len(v) != 36 {
		return "", fmt.Errorf("entryUUID %q is not a UUID", v)
	}
	upper := false
	for i := 0; i < 36; i++ {
		c := v[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return "", fmt.Errorf("entryUUID %q is not a UUID", v)
			}
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			upper = true
		default:
			return "", fmt.Errorf("entryUUID %q is not a UUID", v)
		}
	}
	if upper {
		return strings.ToLower(v), nil
	}
	return v, nil
}

// guidOrder is the order in which an objectGUID's bytes are written: the
// first three groups are little-endian.
var guidOrder = [16]int{3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15}

// formatGUID formats a 16-byte objectGUID (raw or as a string) as AD does
// (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), lowercased. b must hold 16 bytes.
func formatGUID[T string | []byte](b T) string {
	const hexDigits = "0123456789abcdef"
	var out [36]byte
	j := 0
	for i, k := range guidOrder {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[b[k]>>4], hexDigits[b[k]&0xf]
		j += 2
	}
	return string(out[:])
}

// parseGUID is formatGUID's inverse: the 16 bytes, in the order AD keeps
// them, of a GUID string.
func parseGUID(s string) ([16]byte, error) {
	var b [16]byte
	c, err := canonicalUUID(s)
	if err != nil {
		return b, errors.New("not a GUID")
	}
	hex := strings.ReplaceAll(c, "-", "")
	for i, k := range guidOrder {
		b[k] = unhex(hex[2*i])<<4 | unhex(hex[2*i+1])
	}
	return b, nil
}

// unhex decodes a lowercase hex digit.
func unhex(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

// singleValue returns the one value of the attribute a; an error if it has
// none or several.
func singleValue(e *ldap.Entry, a string) (string, error) {
	vals := attrValues(e, a)
	switch len(vals) {
	case 0:
		return "", fmt.Errorf("no %s", a)
	case 1:
		return vals[0], nil
	}
	return "", fmt.Errorf("%s has %d values", a, len(vals))
}

// username reads the entry's single username. It is used as is (a
// userPrincipalName keeps its @realm) and must be what flows accepts.
func (m *mapper) username(e *ldap.Entry) (string, error) {
	a := m.attrMap.Username
	v, err := singleValue(e, a)
	if err != nil {
		return "", err
	}
	if v == "" || len(v) > maxUsername || !utf8.ValidString(v) {
		return "", fmt.Errorf("%s must be valid UTF-8 of 1 to %d bytes", a, maxUsername)
	}
	for _, r := range v {
		if unicode.IsSpace(r) || invisible(r) {
			return "", fmt.Errorf("%s %q holds spaces or invisible characters", a, v)
		}
	}
	return v, nil
}

// invisible reports the runes flows refuses in shown text: control and
// format characters, line and paragraph separators, private-use and
// surrogate code points, and U+FFFD.
func invisible(r rune) bool {
	if r < utf8.RuneSelf {
		return r < 0x20 || r == 0x7f
	}
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Co, unicode.Cs) || r == utf8.RuneError
}

// normalizePhone strips spaces, dashes, parentheses and dots from a phone
// number and returns it if it is then in E.164 form (flows.CheckPhone),
// else "".
func normalizePhone(v string) string {
	var buf [32]byte
	n := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case ' ', '\t', '-', '(', ')', '.':
		default:
			if n == len(buf) {
				return ""
			}
			buf[n] = c
			n++
		}
	}
	if n == 0 {
		return ""
	}
	p := v // nothing stripped: no copy
	if n != len(v) {
		p = string(buf[:n])
	}
	if flows.CheckPhone(p) != nil {
		return ""
	}
	return p
}

// cleanDisplayName trims a display name, turns line breaks and tabs into
// spaces, drops other control and invisible characters and invalid UTF-8,
// and cuts it to 256 bytes (on a character boundary).
func cleanDisplayName(v string) string {
	clean := len(v) <= maxDisplayName
	for _, r := range v {
		if invisible(r) {
			clean = false
			break
		}
	}
	if clean {
		return strings.TrimSpace(v) // no copy
	}
	var b strings.Builder
	b.Grow(min(len(v), maxDisplayName+utf8.UTFMax))
	for _, r := range v {
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f' || r == '\u0085':
			r = ' '
		case invisible(r):
			continue
		}
		if b.Len() == 0 && unicode.IsSpace(r) {
			continue // trimmed anyway; keeps the 256 bytes for the name
		}
		if b.Len()+utf8.RuneLen(r) > maxDisplayName {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}
