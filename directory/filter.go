package directory

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// Limits on the filters CompileMatcher accepts: a suspension filter is a
// line of configuration, and go-ldap's parser recurses once per nesting level.
const (
	maxFilterLen   = 8192
	maxFilterDepth = 64
)

// Active Directory's bitwise matching rules (also known to OpenLDAP by
// their names integerBitAndMatch and integerBitOrMatch).
const (
	ruleBitAnd = "1.2.840.113556.1.4.803"
	ruleBitOr  = "1.2.840.113556.1.4.804"
)

// Matcher is an LDAP filter (RFC 4515) that keystep evaluates itself on
// search result entries, such as the suspension filter. It is immutable and
// safe for concurrent use.
type Matcher struct {
	text  string
	root  *node
	attrs []string
}

// op is a filter node's operation.
type op uint8

const (
	opAnd op = iota
	opOr
	opNot
	opEqual // equality and approximate match
	opPresent
	opSubstrings
	opGreaterOrEqual
	opLessOrEqual
	opBitAnd
	opBitOr
)

// node is one compiled filter item.
type node struct {
	op       op
	children []*node // and, or, not
	attr     string  // attribute description, as written

	// value is the assertion value as sent (equality, ordering).
	value string
	// norm is value normalized (see normalize) for ordering comparisons.
	norm string
	// num is the assertion value as an integer when isNum (ordering,
	// bitwise rules).
	num   int64
	isNum bool
	// timeVal is the assertion value as a generalized time, when isTime.
	timeVal time.Time
	isTime  bool

	// Substrings, normalized; any holds the middle pieces.
	initial, final string
	any            []string
}

// CompileMatcher parses an LDAP filter such as
// (&(objectClass=person)(userAccountControl:1.2.840.113556.1.4.803:=2)) for
// evaluation by Match. It supports and, or, not, equality and approximate
// match (both compared like caseIgnoreMatch), presence, substrings, >= and
// <=, and the extensible match with Active Directory's bitwise AND
// (1.2.840.113556.1.4.803) and OR (1.2.840.113556.1.4.804) rules; any other
// extensible matching rule is an error.
func CompileMatcher(filter string) (*Matcher, error) {
	if len(filter) > maxFilterLen {
		return nil, fmt.Errorf("LDAP filter of %d bytes is longer than %d bytes", len(filter), maxFilterLen)
	}
	if !utf8.ValidString(filter) {
		return nil, fmt.Errorf("LDAP filter %q is not valid UTF-8", filter)
	}
	p, err := compileLDAPFilter(filter)
	if err != nil {
		return nil, fmt.Errorf("LDAP filter %q: %w", filter, err)
	}
	m := &Matcher{text: filter}
	m.root, err = m.build(p, 0)
	if err != nil {
		return nil, fmt.Errorf("LDAP filter %q: %w", filter, err)
	}
	return m, nil
}

// compileLDAPFilter calls ldap.CompileFilter, turning a panic in the parser
// into an error.
func compileLDAPFilter(filter string) (p *ber.Packet, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("cannot parse: %v", r)
		}
	}()
	p, err = ldap.CompileFilter(filter)
	if err == nil && p == nil {
		err = errors.New("cannot parse")
	}
	return p, err
}

// String returns the filter as it was given to CompileMatcher.
func (m *Matcher) String() string { return m.text }

// Attributes returns the attribute descriptions the filter reads, each once
// (compared case-insensitively), in their order of first use: the search
// must request them for Match to see them.
func (m *Matcher) Attributes() []string {
	return append([]string(nil), m.attrs...)
}

// addAttr records an attribute the filter reads.
func (m *Matcher) addAttr(a string) {
	for _, b := range m.attrs {
		if strings.EqualFold(a, b) {
			return
		}
	}
	m.attrs = append(m.attrs, a)
}

// build turns go-ldap's BER form of a filter into a node tree.
func (m *Matcher) build(p *ber.Packet, depth int) (*node, error) {
	if depth > maxFilterDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxFilterDepth)
	}
	if p.ClassType != ber.ClassContext {
		return nil, errors.New("unexpected filter element")
	}
	switch p.Tag {
	case ldap.FilterAnd, ldap.FilterOr:
		n := &node{op: opAnd}
		if p.Tag == ldap.FilterOr {
			n.op = opOr
		}
		for _, c := range p.Children {
			cn, err := m.build(c, depth+1)
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, cn)
		}
		return n, nil
	case ldap.FilterNot:
		if len(p.Children) != 1 {
			return nil, errors.New("'!' needs exactly one filter")
		}
		c, err := m.build(p.Children[0], depth+1)
		if err != nil {
			return nil, err
		}
		return &node{op: opNot, children: []*node{c}}, nil
	case ldap.FilterPresent:
		attr := packetString(p)
		if err := m.checkAttr(attr); err != nil {
			return nil, err
		}
		return &node{op: opPresent, attr: attr}, nil
	case ldap.FilterEqualityMatch, ldap.FilterApproxMatch, ldap.FilterGreaterOrEqual, ldap.FilterLessOrEqual:
		if len(p.Children) != 2 {
			return nil, errors.New("malformed comparison")
		}
		attr := packetString(p.Children[0])
		if err := m.checkAttr(attr); err != nil {
			return nil, err
		}
		n := &node{op: opEqual, attr: attr, value: packetString(p.Children[1])}
		switch p.Tag {
		case ldap.FilterGreaterOrEqual:
			n.op = opGreaterOrEqual
		case ldap.FilterLessOrEqual:
			n.op = opLessOrEqual
		}
		if n.op != opEqual {
			n.num, n.isNum = parseInt(n.value)
			n.timeVal, n.isTime = parseGeneralizedTime(n.value)
			n.norm = normalize(n.value, true, true)
		}
		return n, nil
	case ldap.FilterSubstrings:
		if len(p.Children) != 2 {
			return nil, errors.New("malformed substrings")
		}
		attr := packetString(p.Children[0])
		if err := m.checkAttr(attr); err != nil {
			return nil, err
		}
		n := &node{op: opSubstrings, attr: attr}
		for _, c := range p.Children[1].Children {
			v := packetString(c)
			switch c.Tag {
			case ldap.FilterSubstringsInitial:
				n.initial = normalize(v, true, false)
			case ldap.FilterSubstringsFinal:
				n.final = normalize(v, false, true)
			default:
				if s := normalize(v, false, false); s != "" {
					n.any = append(n.any, s)
				}
			}
		}
		return n, nil
	case ldap.FilterExtensibleMatch:
		return m.buildExtensible(p)
	}
	return nil, fmt.Errorf("unsupported filter element %d", p.Tag)
}

// buildExtensible accepts (attr:=value), matched like equality, and the
// Active Directory bitwise rules on an attribute.
func (m *Matcher) buildExtensible(p *ber.Packet) (*node, error) {
	var rule, attr, value string
	var dn bool
	for _, c := range p.Children {
		switch c.Tag {
		case ldap.MatchingRuleAssertionMatchingRule:
			rule = packetString(c)
		case ldap.MatchingRuleAssertionType:
			attr = packetString(c)
		case ldap.MatchingRuleAssertionMatchValue:
			value = packetString(c)
		case ldap.MatchingRuleAssertionDNAttributes:
			dn = true
		}
	}
	if dn {
		return nil, errors.New("extensible match with :dn is not supported")
	}
	if attr == "" {
		return nil, errors.New("extensible match without an attribute is not supported")
	}
	if err := m.checkAttr(attr); err != nil {
		return nil, err
	}
	n := &node{attr: attr, value: value}
	switch {
	case rule == "":
		n.op = opEqual
		return n, nil
	case rule == ruleBitAnd || strings.EqualFold(rule, "integerBitAndMatch"):
		n.op = opBitAnd
	case rule == ruleBitOr || strings.EqualFold(rule, "integerBitOrMatch"):
		n.op = opBitOr
	default:
		return nil, fmt.Errorf("matching rule %q is not supported (only %s and %s)", rule, ruleBitAnd, ruleBitOr)
	}
	if n.num, n.isNum = parseInt(value); !n.isNum {
		return nil, fmt.Errorf("bitwise matching rule on %s needs an integer, not %q", attr, value)
	}
	return n, nil
}

// checkAttr validates an attribute description (RFC 4512: a name or an
// OID, then options) and records it.
func (m *Matcher) checkAttr(a string) error {
	if !validAttrDesc(a) {
		return fmt.Errorf("invalid attribute description %q", a)
	}
	m.addAttr(a)
	return nil
}

// validAttrDesc reports whether a is a descr or numericoid followed by
// ;options.
func validAttrDesc(a string) bool {
	name, opts, _ := strings.Cut(a, ";")
	if name == "" {
		return false
	}
	if name[0] >= '0' && name[0] <= '9' {
		// numericoid: digits separated by single dots
		prevDot := true
		for i := 0; i < len(name); i++ {
			switch c := name[i]; {
			case c >= '0' && c <= '9':
				prevDot = false
			case c == '.' && !prevDot:
				prevDot = true
			default:
				return false
			}
		}
		if prevDot {
			return false
		}
	} else if !isKeychars(name, true) {
		return false
	}
	if opts == "" {
		return !strings.HasSuffix(a, ";")
	}
	for o := range strings.SplitSeq(opts, ";") {
		if o == "" || !isKeychars(o, false) {
			return false
		}
	}
	return true
}

// isKeychars reports whether s is letters, digits and '-' (starting with a
// letter when leadAlpha).
func isKeychars(s string, leadAlpha bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && leadAlpha && !alpha {
			return false
		}
		if !alpha && !(c >= '0' && c <= '9') && c != '-' {
			return false
		}
	}
	return s != ""
}

// packetString returns a primitive BER element's value as a string.
func packetString(p *ber.Packet) string {
	if s, ok := p.Value.(string); ok {
		return s
	}
	if p.Data != nil {
		return ber.DecodeString(p.Data.Bytes())
	}
	return ""
}

// Match reports whether the entry matches the filter. Attribute names are
// compared case-insensitively. An item on an attribute the entry lacks is
// false (so (!(a=x)) matches an entry without a).
func (m *Matcher) Match(e *ldap.Entry) bool {
	if m == nil || e == nil {
		return false
	}
	return m.root.match(e)
}

func (n *node) match(e *ldap.Entry) bool {
	switch n.op {
	case opAnd:
		for _, c := range n.children {
			if !c.match(e) {
				return false
			}
		}
		return true
	case opOr:
		for _, c := range n.children {
			if c.match(e) {
				return true
			}
		}
		return false
	case opNot:
		return !n.children[0].match(e)
	}
	vals := attrValues(e, n.attr)
	if n.op == opPresent {
		return len(vals) > 0
	}
	for _, v := range vals {
		if n.matchValue(v) {
			return true
		}
	}
	return false
}

// matchValue applies a value assertion to one attribute value.
func (n *node) matchValue(v string) bool {
	switch n.op {
	case opEqual:
		return equalNorm(v, n.value)
	case opSubstrings:
		return n.matchSubstrings(normalize(v, true, true))
	case opGreaterOrEqual:
		return n.compare(v) >= 0
	case opLessOrEqual:
		return n.compare(v) <= 0
	case opBitAnd, opBitOr:
		x, ok := parseInt(v)
		if !ok {
			return false
		}
		if n.op == opBitAnd {
			return x&n.num == n.num
		}
		return x&n.num != 0
	}
	return false
}

// compare orders an attribute value against the assertion value: as
// integers when both are, as generalized times when both are, else as
// normalized (case-folded) strings.
func (n *node) compare(v string) int {
	if n.isNum {
		if x, ok := parseInt(v); ok {
			switch {
			case x < n.num:
				return -1
			case x > n.num:
				return 1
			}
			return 0
		}
	}
	if n.isTime {
		if t, ok := parseGeneralizedTime(v); ok {
			return t.Compare(n.timeVal)
		}
	}
	return strings.Compare(normalize(v, true, true), n.norm)
}

// matchSubstrings matches a normalized value against the pieces.
func (n *node) matchSubstrings(v string) bool {
	if !strings.HasPrefix(v, n.initial) {
		return false
	}
	v = v[len(n.initial):]
	for _, a := range n.any {
		i := strings.Index(v, a)
		if i < 0 {
			return false
		}
		v = v[i+len(a):]
	}
	return strings.HasSuffix(v, n.final)
}

// attrValues returns the entry's values of attribute a (compared
// case-insensitively), without allocating.
func attrValues(e *ldap.Entry, a string) []string {
	for _, at := range e.Attributes {
		if at != nil && strings.EqualFold(at.Name, a) {
			return at.Values
		}
	}
	return nil
}

// parseInt parses an LDAP Integer (surrounding spaces allowed); values
// beyond int64 but within uint64 wrap, as AD's unsigned flags do.
func parseInt(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if x, err := strconv.ParseInt(s, 10, 64); err == nil {
		return x, true
	}
	if x, err := strconv.ParseUint(s, 10, 64); err == nil {
		return int64(x), true
	}
	return 0, false
}

// parseGeneralizedTime parses a generalized time (RFC 4517 §3.3.13), such
// as 20240131120000Z or 202401311200.5+0100.
func parseGeneralizedTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 11 || s[0] < '0' || s[0] > '9' {
		return time.Time{}, false
	}
	t, err := ber.ParseGeneralizedTime([]byte(s))
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// Normalized strings: insignificant spaces and case removed (like
// caseIgnoreMatch with RFC 4518's insignificant space handling). Each rune
// is mapped to the smallest rune of its Unicode simple case-folding orbit;
// bytes that are not UTF-8 stay as they are and only equal themselves.

// foldRune maps r to its case-folding orbit's representative.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < m {
			m = f
		}
	}
	return m
}

// isSpaceRune reports the runes treated as insignificant space.
func isSpaceRune(r rune) bool {
	return r == ' ' || unicode.IsSpace(r)
}

// normIter walks a string's normalized runes: a run of spaces reads as one
// ' ' (none at the ends when trimmed), an invalid byte b as -1-b.
type normIter struct {
	s         string
	i         int
	trimRight bool
}

func newNormIter(s string, trimLeft, trimRight bool) normIter {
	it := normIter{s: s, trimRight: trimRight}
	if trimLeft {
		for it.i < len(s) {
			r, w := utf8.DecodeRuneInString(s[it.i:])
			if !isSpaceRune(r) || (r == utf8.RuneError && w == 1) {
				break
			}
			it.i += w
		}
	}
	return it
}

// next returns the next normalized rune, or ok false at the end.
func (it *normIter) next() (r rune, ok bool) {
	if it.i >= len(it.s) {
		return 0, false
	}
	r, w := utf8.DecodeRuneInString(it.s[it.i:])
	if r == utf8.RuneError && w == 1 {
		b := it.s[it.i]
		it.i++
		return -1 - rune(b), true
	}
	if !isSpaceRune(r) {
		it.i += w
		return foldRune(r), true
	}
	for it.i < len(it.s) {
		r, w = utf8.DecodeRuneInString(it.s[it.i:])
		if !isSpaceRune(r) || (r == utf8.RuneError && w == 1) {
			break
		}
		it.i += w
	}
	if it.i >= len(it.s) && it.trimRight {
		return 0, false
	}
	return ' ', true
}

// equalNorm reports whether a and b are equal once normalized, without
// allocating.
func equalNorm(a, b string) bool {
	if a == b {
		return true
	}
	ia, ib := newNormIter(a, true, true), newNormIter(b, true, true)
	for {
		ra, oka := ia.next()
		rb, okb := ib.next()
		if oka != okb || ra != rb {
			return false
		}
		if !oka {
			return true
		}
	}
}

// normalize returns s normalized, trimmed at either end as asked.
func normalize(s string, trimLeft, trimRight bool) string {
	var b strings.Builder
	b.Grow(len(s))
	it := newNormIter(s, trimLeft, trimRight)
	for {
		r, ok := it.next()
		if !ok {
			return b.String()
		}
		if r < 0 {
			b.WriteByte(byte(-1 - r))
		} else {
			b.WriteRune(r)
		}
	}
}
