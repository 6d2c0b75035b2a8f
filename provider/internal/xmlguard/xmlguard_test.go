package xmlguard

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// signedRequest is shaped like a signed AuthnRequest of the HTTP-POST
// binding.
const signedRequest = `<?xml version="1.0" encoding="UTF-8"?>
<!-- an SP's AuthnRequest -->
<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_8e8dc5f69a98cc4c1ff3427e5ce34606fd672f91e6" Version="2.0" IssueInstant="2026-01-01T00:00:00Z" Destination="https://idp.example.com/saml/sso" AssertionConsumerServiceURL="https://sp.example.com/acs" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST">
  <saml:Issuer>https://sp.example.com/metadata</saml:Issuer>
  <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
    <ds:SignedInfo>
      <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
      <ds:Reference URI="#_8e8dc5f69a98cc4c1ff3427e5ce34606fd672f91e6">
        <ds:Transforms>
          <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
          <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
        </ds:Transforms>
        <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
        <ds:DigestValue>Fs2Cm0Ojl7wGcPP1tbg6sL4t5Ck0mJ5BW2tZ0Ls4ZJ4=</ds:DigestValue>
      </ds:Reference>
    </ds:SignedInfo>
    <ds:SignatureValue>dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQ==</ds:SignatureValue>
    <ds:KeyInfo><ds:X509Data><ds:X509Certificate>MIIBszCCAVmgAwIBAgIU</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
  </ds:Signature>
  <samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified" AllowCreate="true"/>
</samlp:AuthnRequest>
`

const billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>
`

const externalEntity = `<?xml version="1.0"?>
<!DOCTYPE samlp:AuthnRequest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_1" Version="2.0"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">&xxe;</saml:Issuer></samlp:AuthnRequest>`

func nested(n int) string { return strings.Repeat("<a>", n) + strings.Repeat("</a>", n) }

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name string
		xml  string
		why  string // "" when the document passes
	}{
		{"signed AuthnRequest", signedRequest, ""},
		{"no declaration", `<a b="c">text</a>`, ""},
		{"byte-order mark", "\ufeff" + `<?xml version="1.0"?><a/>`, ""},
		{"comments and whitespace around the root", "<!-- x -->\n<a/>\n<!-- y -->\n", ""},
		{"CDATA", `<a><![CDATA[<!DOCTYPE not really>]]></a>`, ""},
		{"depth 32", nested(32), ""},
		{"2000 tokens", "<a>" + strings.Repeat("<b/>", 999) + "</a>", ""}, // <b/> is a start and an end
		{"64 KiB", "<a>" + strings.Repeat(" ", 64<<10-7) + "</a>", ""},

		{"DOCTYPE", `<!DOCTYPE a><a/>`, "a DOCTYPE is not allowed"},
		{"billion laughs", billionLaughs, "a DOCTYPE is not allowed"},
		{"external SYSTEM entity", externalEntity, "a DOCTYPE is not allowed"},
		{"ENTITY in the root", `<a><!ENTITY x "y"></a>`, "an ENTITY declaration is not allowed"},
		{"other directive", `<a><!ELEMENT a ANY></a>`, "directive is not allowed"},
		{"PI in the middle", `<a><?php system('id') ?></a>`, "processing instruction <?php?> is not allowed"},
		{"PI before the root", `<?xml-stylesheet href="x"?><a/>`, "processing instruction <?xml-stylesheet?>"},
		{"declaration twice", `<?xml version="1.0"?><?xml version="1.0"?><a/>`, "processing instruction <?xml?>"},
		{"declaration after whitespace", " <?xml version=\"1.0\"?><a/>", "processing instruction <?xml?>"},
		{"declaration after the root", `<a/><?xml version="1.0"?>`, "processing instruction <?xml?>"},
		{"two roots", `<a/><b/>`, "more than one root element"},
		{"depth 33", nested(33), "nesting deeper than 32"},
		{"too many tokens", "<a>" + strings.Repeat("<b/>", 1000) + "</a>", "more than 2000 tokens"},
		{"attributes count as tokens", "<a>" + strings.Repeat(`<b c="1" d="2"/>`, 500) + "</a>", "more than 2000 tokens"},
		{"too long", "<a>" + strings.Repeat(" ", 64<<10-6) + "</a>", "longer than 65536 bytes"},
		{"Latin-1", `<?xml version="1.0" encoding="ISO-8859-1"?><a/>`, `the encoding "ISO-8859-1" is not UTF-8`},
		{"UTF-16 declared", `<?xml version="1.0" encoding='UTF-16'?><a/>`, `the encoding "UTF-16" is not UTF-8`},
		{"XML 1.1", `<?xml version="1.1"?><a/>`, "version"},
		{"not UTF-8", "<a>\xff</a>", "not valid UTF-8"},
		{"empty", ``, "an empty document"},
		{"whitespace only", " \n\t", "an empty document"},
		{"no root", `<?xml version="1.0"?><!-- nothing -->`, "no root element"},
		{"text before the root", `hello<a/>`, "text outside the root element"},
		{"text after the root", `<a/>hello`, "text outside the root element"},
		{"unclosed", `<a><b></b>`, "the element <a> is not closed"},
		{"mismatched", `<a></b>`, "the element <a> is closed by </b>"},
		{"mismatched prefix", `<x:a xmlns:x="u"></y:a>`, "the element <x:a> is closed by </y:a>"},
		{"stray end", `</a>`, "closes nothing"},
		{"undefined entity", `<a>&xxe;</a>`, "syntax error"},
		{"duplicate attribute", `<a ID="1" ID="2"/>`, "the attribute ID is given twice"},
		{"syntax error", `<a b=c/>`, "syntax error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Check([]byte(c.xml), Request)
			switch {
			case c.why == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.why == "":
			case err == nil:
				t.Fatalf("passed, want %q", c.why)
			case !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.why):
				t.Fatalf("error %q, want one that wraps ErrRefused and says %q", err, c.why)
			}
		})
	}
}

// TestMetadataLimits: the looser metadata limits let through what the
// request limits refuse.
func TestMetadataLimits(t *testing.T) {
	for _, doc := range []string{nested(64), "<a>" + strings.Repeat("<b/>", 99_999) + "</a>"} {
		if err := Check([]byte(doc), Request); err == nil {
			t.Error("request limits let a big document through")
		}
		if err := Check([]byte(doc), Metadata); err != nil {
			t.Error(err)
		}
	}
	if err := Check([]byte(nested(65)), Metadata); err == nil || !strings.Contains(err.Error(), "nesting deeper than 64") {
		t.Errorf("depth 65: %v", err)
	}
}

func deflate(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// wrap breaks s into lines of 76 characters, as many SPs do.
func wrap(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return b.String() + s
}

func TestDecodeRequest(t *testing.T) {
	enc := base64.StdEncoding.EncodeToString
	// exactly is a document of exactly n bytes.
	exactly := func(n int) []byte { return []byte("<a>" + strings.Repeat(" ", n-7) + "</a>") }
	for _, c := range []struct {
		name     string
		value    string
		deflated bool
		why      string // "" when the value passes
	}{
		{"redirect binding", enc(deflate(t, []byte(signedRequest))), true, ""},
		{"POST binding", enc([]byte(signedRequest)), false, ""},
		{"POST binding, wrapped", wrap(enc([]byte(signedRequest))), false, ""},
		{"spaces and tabs", " " + strings.Join(strings.SplitAfter(enc([]byte(signedRequest)), "AA"), "\t ") + "\n", false, ""},
		{"inflates to exactly the limit", enc(deflate(t, exactly(64<<10))), true, ""},
		{"stored, not compressed", func() string {
			var b bytes.Buffer
			w, _ := flate.NewWriter(&b, flate.NoCompression)
			_, _ = w.Write(exactly(64 << 10))
			_ = w.Close()
			return enc(b.Bytes())
		}(), true, ""},

		{"empty", "", false, "an empty value"},
		{"only whitespace", " \r\n", true, "an empty value"},
		{"bad base64", "PHNhbWxwOkF1dGhuUmVxdWVzd!==", false, "not base64"},
		{"bad padding", "PGEvPg", false, "not base64"},
		{"URL alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(enc([]byte("<a>???>>></a>"))), false, "not base64"},
		{"not deflate", enc([]byte("<a/>")), true, "not raw DEFLATE"},
		{"truncated deflate", enc(deflate(t, []byte(signedRequest))[:100]), true, "not raw DEFLATE"},
		{"inflates past the limit", enc(deflate(t, exactly(64<<10+1))), true, "inflates to more than 65536 bytes"},
		{"too long, plain", enc(exactly(64<<10 + 1)), false, "longer than 65536 bytes"},
		{"encoded value far too long", strings.Repeat("A", 200_000), false, "too long"},
		{"deflated DOCTYPE", enc(deflate(t, []byte(billionLaughs))), true, "a DOCTYPE is not allowed"},
		{"plain DOCTYPE", enc([]byte(externalEntity)), false, "a DOCTYPE is not allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data, err := DecodeRequest(c.value, c.deflated, Request)
			switch {
			case c.why == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.why == "":
				if len(data) == 0 || Check(data, Request) != nil {
					t.Fatalf("returned %d bytes that Check refuses", len(data))
				}
			case err == nil:
				t.Fatalf("passed, want %q", c.why)
			case !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.why):
				t.Fatalf("error %q, want one that wraps ErrRefused and says %q", err, c.why)
			}
		})
	}
	data, err := DecodeRequest(wrap(enc(deflate(t, []byte(signedRequest)))), true, Request)
	if err != nil || string(data) != signedRequest {
		t.Fatalf("DecodeRequest did not return the request: %v", err)
	}
}

// bomb is 1 KiB or less of DEFLATE that inflates to about 1 MB.
func bomb(t testing.TB) []byte {
	b := deflate(t, []byte("<a>"+strings.Repeat(" ", 1_000_000)+"</a>"))
	if len(b) > 1024 {
		t.Fatalf("the bomb is %d bytes", len(b))
	}
	return b
}

// TestDeflateBomb: 1 KiB that inflates to a megabyte is refused, and
// DecodeRequest allocates about the cap, not the megabyte.
func TestDeflateBomb(t *testing.T) {
	value := base64.StdEncoding.EncodeToString(bomb(t))
	_, err := DecodeRequest(value, true, Request)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "inflates to more than 65536 bytes") {
		t.Fatalf("the bomb: %v", err)
	}
	var before, after runtime.MemStats
	const runs = 10
	runtime.ReadMemStats(&before)
	for range runs {
		_, _ = DecodeRequest(value, true, Request)
	}
	runtime.ReadMemStats(&after)
	// The cap (64 KiB, reached by doubling), the decompressor (its 32 KiB
	// window and tables) and the decoded value: well under the 1 MB the
	// bomb inflates to.
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 400<<10 {
		t.Fatalf("DecodeRequest allocated %d bytes for a 1 KiB bomb", per)
	}
}

func TestSHA1Used(t *testing.T) {
	doc := func(elem, alg string) string {
		return `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://sp.example.com">` +
			`<ds:Signature><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>` +
			`<ds:` + elem + ` Algorithm="` + alg + `"/></ds:SignedInfo></ds:Signature></md:EntityDescriptor>`
	}
	for _, c := range []struct{ elem, alg, want string }{
		{"SignatureMethod", "http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#rsa-sha1"},
		{"SignatureMethod", "http://www.w3.org/2000/09/xmldsig#dsa-sha1", "http://www.w3.org/2000/09/xmldsig#dsa-sha1"},
		{"SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"},
		{"SignatureMethod", "http://www.w3.org/2000/09/xmldsig#hmac-sha1", "http://www.w3.org/2000/09/xmldsig#hmac-sha1"},
		{"DigestMethod", "http://www.w3.org/2000/09/xmldsig#sha1", "http://www.w3.org/2000/09/xmldsig#sha1"},
		{"DigestMethod", " http://www.w3.org/2000/09/xmldsig#sha1\n", "http://www.w3.org/2000/09/xmldsig#sha1"},
		{"SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", ""},
		{"SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256", ""},
		{"DigestMethod", "http://www.w3.org/2001/04/xmlenc#sha256", ""},
		{"DigestMethod", "http://www.w3.org/2001/04/xmlenc#sha512", ""},
		{"Transform", "http://www.w3.org/2000/09/xmldsig#sha1", ""}, // not a method element
	} {
		got, err := SHA1Used([]byte(doc(c.elem, c.alg)))
		if err != nil || got != c.want {
			t.Errorf("%s %q: %q, %v; want %q", c.elem, c.alg, got, err, c.want)
		}
	}
	for name, d := range map[string]string{
		"signed AuthnRequest (rsa-sha256, sha256)": signedRequest,
		// The metadata algorithm-support extension advertises SHA-1
		// support; that is not a signature that uses it.
		"algsupport": `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:alg="urn:oasis:names:tc:SAML:metadata:algsupport" entityID="x"><md:Extensions>` +
			`<alg:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/><alg:SigningMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1"/>` +
			`</md:Extensions></md:EntityDescriptor>`,
		"SignatureMethod outside xmldsig": `<a><SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1"/></a>`,
	} {
		if got, err := SHA1Used([]byte(d)); err != nil || got != "" {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	// The default namespace counts as much as a prefix; the first use wins.
	d := `<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>` +
		`<SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1"/><Reference><DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/></Reference>` +
		`</SignedInfo></Signature>`
	if got, err := SHA1Used([]byte(d)); err != nil || got != "http://www.w3.org/2000/09/xmldsig#rsa-sha1" {
		t.Errorf("default namespace: %q, %v", got, err)
	}
	if _, err := SHA1Used([]byte(`<a><b></a>`)); !errors.Is(err, ErrRefused) {
		t.Errorf("a syntax error: %v", err)
	}
}

// anyElement takes any element, as xml.Unmarshal of a document would.
type anyElement struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   []byte     `xml:",innerxml"`
}

// FuzzCheck: Check never panics; it refuses with ErrRefused; and what it
// lets through, Go's full (namespace-aware, strict) decoder reads as one
// well-formed document within the limits, with no directive and no
// processing instruction but a leading declaration. The seeds in
// testdata/fuzz/FuzzCheck include the attacks of TestCheck.
func FuzzCheck(f *testing.F) {
	f.Add([]byte(signedRequest))
	f.Add([]byte(billionLaughs))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Check(data, Request)
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("an error that does not wrap ErrRefused: %v", err)
			}
			return
		}
		if len(data) > Request.MaxBytes {
			t.Fatalf("%d bytes passed", len(data))
		}
		if err := Check(data, Metadata); err != nil {
			t.Fatalf("the looser metadata limits refuse what the request limits let through: %v", err)
		}
		d := xml.NewDecoder(bytes.NewReader(data))
		d.Strict = true
		depth, roots, n := 0, 0, 0
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("passed, but the decoder says: %v", err)
			}
			n++
			switch tok := tok.(type) {
			case xml.StartElement:
				if depth == 0 {
					roots++
				}
				if depth++; depth > Request.MaxDepth {
					t.Fatalf("passed at depth %d", depth)
				}
			case xml.EndElement:
				depth--
			case xml.Directive:
				t.Fatalf("passed with the directive <!%s>", tok)
			case xml.ProcInst:
				first := n == 1 || (n == 2 && bytes.HasPrefix(data, bom)) // a byte-order mark is a token
				if tok.Target != "xml" || !first {
					t.Fatalf("passed with <?%s?> as token %d", tok.Target, n)
				}
			}
		}
		if roots != 1 || depth != 0 {
			t.Fatalf("passed with %d roots, %d elements left open", roots, depth)
		}
		var v anyElement
		if err := xml.Unmarshal(data, &v); err != nil {
			t.Fatalf("passed, but xml.Unmarshal says: %v", err)
		}
	})
}

// FuzzDecodeRequest: DecodeRequest never panics; it refuses with
// ErrRefused; and what it returns is what the value encodes, within the
// limits, and passes Check. The seeds in testdata/fuzz/FuzzDecodeRequest
// include a deflate bomb and the attacks of TestCheck, encoded.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString(deflate(f, []byte(signedRequest))), true)
	f.Add(base64.StdEncoding.EncodeToString([]byte(signedRequest)), false)
	f.Fuzz(func(t *testing.T, value string, deflated bool) {
		data, err := DecodeRequest(value, deflated, Request)
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("an error that does not wrap ErrRefused: %v", err)
			}
			return
		}
		if len(data) > Request.MaxBytes {
			t.Fatalf("%d bytes returned", len(data))
		}
		if err := Check(data, Request); err != nil {
			t.Fatalf("returned what Check refuses: %v", err)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
			if strings.ContainsRune(" \t\r\n", r) {
				return -1
			}
			return r
		}, value))
		if err != nil {
			t.Fatalf("passed, but the value is not base64: %v", err)
		}
		if deflated {
			// Bounded: DecodeRequest inflated all of it within the limit.
			if raw, err = io.ReadAll(flate.NewReader(bytes.NewReader(raw))); err != nil {
				t.Fatalf("passed, but the value does not inflate: %v", err)
			}
		}
		if !bytes.Equal(raw, data) {
			t.Fatal("returned something else than the value encodes")
		}
	})
}
