// Package xmlguard checks untrusted XML (SAML AuthnRequests and
// LogoutRequests, SP metadata) before the SAML library parses it. It only
// ever refuses: a document it lets through is parsed as it came.
//
// Check refuses what a SAML message never needs and an attacker likes:
// DOCTYPE and ENTITY declarations (entity expansion, external entities),
// processing instructions, deep nesting, huge token counts, more than one
// root element, duplicate attributes and anything that is not well-formed
// UTF-8 XML.
package xmlguard

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Limits bound a document. A zero limit refuses every document.
type Limits struct {
	// MaxBytes bounds the document's length (for DecodeRequest, the
	// decoded and inflated XML).
	MaxBytes int
	// MaxDepth bounds the nesting of elements; the root is at depth 1.
	MaxDepth int
	// MaxTokens bounds the tokens: start tags, end tags (<a/> is both),
	// attributes, runs of text, comments and the XML declaration each
	// count one.
	MaxTokens int
}

// Request is the limit of a SAML AuthnRequest or LogoutRequest.
var Request = Limits{MaxBytes: 64 << 10, MaxDepth: 32, MaxTokens: 2000}

// Metadata is the limit of SP metadata.
var Metadata = Limits{MaxBytes: 4 << 20, MaxDepth: 64, MaxTokens: 200000}

// ErrRefused is wrapped by every refusal; the message says why.
var ErrRefused = errors.New("xml refused")

func refuse(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// bom is the UTF-8 byte-order mark, tolerated at the very start.
var bom = []byte("\ufeff")

// Check refuses data unless it is one well-formed UTF-8 XML document
// within l: an optional leading <?xml?> declaration (UTF-8, version 1.0),
// then comments, whitespace and exactly one root element, and no DOCTYPE
// or other <!…> directive and no other processing instruction anywhere.
// Element and attribute names are checked as written (prefix and local
// name); namespaces are not resolved.
func Check(data []byte, l Limits) error {
	if len(data) > l.MaxBytes {
		return refuse("longer than %d bytes", l.MaxBytes)
	}
	data = bytes.TrimPrefix(data, bom)
	if len(bytes.Trim(data, " \t\r\n")) == 0 {
		return refuse("an empty document")
	}
	if !utf8.Valid(data) {
		return refuse("not valid UTF-8")
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	d.CharsetReader = func(charset string, _ io.Reader) (io.Reader, error) {
		return nil, refuse("the encoding %q is not UTF-8", charset)
	}
	var (
		open   []xml.Name // the elements open, outermost first
		tokens int
		roots  int
	)
	at := func() string {
		line, col := d.InputPos()
		return fmt.Sprintf(" (line %d, column %d)", line, col)
	}
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, ErrRefused) {
				return err
			}
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
		tokens++
		switch t := tok.(type) {
		case xml.StartElement:
			tokens += len(t.Attr)
			if len(open) == 0 {
				if roots++; roots > 1 {
					return refuse("more than one root element%s", at())
				}
			}
			open = append(open, t.Name)
			if len(open) > l.MaxDepth {
				return refuse("nesting deeper than %d%s", l.MaxDepth, at())
			}
			if name, dup := duplicateAttr(t.Attr); dup {
				return refuse("the attribute %s is given twice%s", qname(name), at())
			}
		case xml.EndElement:
			// RawToken leaves the matching of start and end to the caller.
			if len(open) == 0 {
				return refuse("the end element </%s> closes nothing%s", qname(t.Name), at())
			}
			if top := open[len(open)-1]; top != t.Name {
				return refuse("the element <%s> is closed by </%s>%s", qname(top), qname(t.Name), at())
			}
			open = open[:len(open)-1]
		case xml.CharData:
			if len(open) == 0 && len(bytes.Trim(t, " \t\r\n")) > 0 {
				return refuse("text outside the root element%s", at())
			}
		case xml.Comment:
		case xml.ProcInst:
			if t.Target != "xml" || tokens != 1 {
				return refuse("a processing instruction <?%s?> is not allowed%s", t.Target, at())
			}
			if enc := procInstParam("encoding", string(t.Inst)); enc != "" && !strings.EqualFold(enc, "utf-8") {
				return refuse("the encoding %q is not UTF-8", enc)
			}
		case xml.Directive:
			return refuse("%s is not allowed%s", directiveKind(t), at())
		default:
			return refuse("an unexpected %T%s", tok, at())
		}
		if tokens > l.MaxTokens {
			return refuse("more than %d tokens%s", l.MaxTokens, at())
		}
	}
	if len(open) > 0 {
		return refuse("the element <%s> is not closed", qname(open[len(open)-1]))
	}
	if roots == 0 {
		return refuse("no root element")
	}
	return nil
}

// duplicateAttr reports the first attribute name given twice.
func duplicateAttr(attrs []xml.Attr) (xml.Name, bool) {
	if len(attrs) < 2 {
		return xml.Name{}, false
	}
	seen := make(map[xml.Name]bool, len(attrs))
	for _, a := range attrs {
		if seen[a.Name] {
			return a.Name, true
		}
		seen[a.Name] = true
	}
	return xml.Name{}, false
}

// qname is a raw name as written: prefix:local.
func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// directiveKind names a <!…> directive for a refusal.
func directiveKind(d xml.Directive) string {
	word, _, _ := strings.Cut(strings.TrimLeft(string(d), " \t\r\n"), " ")
	word = strings.ToUpper(strings.TrimRight(word, " \t\r\n[>"))
	switch word {
	case "DOCTYPE":
		return "a DOCTYPE"
	case "ENTITY":
		return "an ENTITY declaration"
	}
	return "a <!…> directive"
}

// procInstParam returns the value of param in the content of a processing
// instruction, such as encoding in <?xml version="1.0" encoding="UTF-8"?>.
func procInstParam(param, s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		name, rest, ok := strings.Cut(s, "=")
		if !ok {
			return ""
		}
		rest = strings.TrimLeft(rest, " \t\r\n")
		if rest == "" || (rest[0] != '"' && rest[0] != '\'') {
			return ""
		}
		value, after, ok := strings.Cut(rest[1:], rest[:1])
		if !ok {
			return ""
		}
		if strings.TrimSpace(name) == param {
			return value
		}
		s = after
	}
}

// DecodeRequest decodes a SAMLRequest (or SAMLResponse) parameter and
// checks the XML against l. The value is standard base64; ASCII
// whitespace in it (line breaks, spaces) is ignored. When deflated is true
// (the HTTP-Redirect binding) the decoded bytes are raw DEFLATE (RFC 1951)
// and are inflated to at most l.MaxBytes: a stream that inflates further is
// refused without being inflated past that. Every error wraps ErrRefused.
func DecodeRequest(value string, deflated bool, l Limits) ([]byte, error) {
	// A value this long cannot hold an acceptable document, whatever its
	// line breaks.
	if len(value) > 2*base64.StdEncoding.EncodedLen(maxInput(l, deflated))+1024 {
		return nil, refuse("the encoded value is too long")
	}
	value = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, value)
	if value == "" {
		return nil, refuse("an empty value")
	}
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, refuse("not base64: %v", err)
	}
	if len(raw) > maxInput(l, deflated) {
		return nil, refuse("longer than %d bytes", l.MaxBytes)
	}
	data := raw
	if deflated {
		if data, err = inflate(raw, l.MaxBytes); err != nil {
			return nil, err
		}
	}
	if err := Check(data, l); err != nil {
		return nil, err
	}
	return data, nil
}

// maxInput bounds the decoded value: the document itself, or a DEFLATE
// stream of it, which even stored uncompressed adds only 5 bytes per 64 KiB
// block.
func maxInput(l Limits, deflated bool) int {
	if !deflated {
		return max(0, l.MaxBytes)
	}
	return max(0, l.MaxBytes) + max(0, l.MaxBytes)/1024 + 64
}

// inflate inflates raw DEFLATE data, reading at most limit+1 bytes from the
// decompressor: more than limit is refused.
func inflate(raw []byte, limit int) ([]byte, error) {
	limit = max(0, limit)
	r := flate.NewReader(bytes.NewReader(raw))
	defer r.Close()
	// Start small (most requests are a few KiB) and grow by doubling, never
	// past limit+1.
	buf := make([]byte, 0, min(limit+1, max(512, 4*len(raw))))
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return nil, refuse("inflates to more than %d bytes", limit)
			}
			grown := make([]byte, len(buf), min(limit+1, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, refuse("not raw DEFLATE: %v", err)
		}
	}
	if len(buf) > limit {
		return nil, refuse("inflates to more than %d bytes", limit)
	}
	return buf, nil
}

// The XML Signature namespace, where SignatureMethod and DigestMethod live.
const dsigNS = "http://www.w3.org/2000/09/xmldsig#"

// sha1Algs are the XML Signature algorithm URIs that use SHA-1.
var sha1Algs = map[string]bool{
	"http://www.w3.org/2000/09/xmldsig#rsa-sha1":        true,
	"http://www.w3.org/2000/09/xmldsig#dsa-sha1":        true,
	"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1": true,
	"http://www.w3.org/2000/09/xmldsig#hmac-sha1":       true,
	"http://www.w3.org/2000/09/xmldsig#sha1":            true,
}

// SHA1Used returns the first SHA-1 algorithm URI (rsa-sha1, dsa-sha1,
// ecdsa-sha1, hmac-sha1, sha1) in the Algorithm attribute of a
// SignatureMethod or DigestMethod element of the XML Signature namespace
// anywhere in data, or "" if there is none. Elements of the same name in
// other namespaces (the algorithm support list of SAML metadata, which only
// advertises) do not count. Run Check first: SHA1Used resolves namespaces
// but sets no limits of its own. An error wraps ErrRefused.
func SHA1Used(data []byte) (string, error) {
	d := xml.NewDecoder(bytes.NewReader(bytes.TrimPrefix(data, bom)))
	d.Strict = true
	d.CharsetReader = func(charset string, _ io.Reader) (io.Reader, error) {
		return nil, refuse("the encoding %q is not UTF-8", charset)
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return "", nil
		}
		if err != nil {
			if errors.Is(err, ErrRefused) {
				return "", err
			}
			return "", fmt.Errorf("%w: %w", ErrRefused, err)
		}
		t, ok := tok.(xml.StartElement)
		if !ok || t.Name.Space != dsigNS || (t.Name.Local != "SignatureMethod" && t.Name.Local != "DigestMethod") {
			continue
		}
		for _, a := range t.Attr {
			if a.Name.Space == "" && a.Name.Local == "Algorithm" {
				if alg := strings.TrimSpace(a.Value); sha1Algs[alg] {
					return alg, nil
				}
			}
		}
	}
}
