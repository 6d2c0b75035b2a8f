package samlidp_test

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rand"
	_ "crypto/sha1" // the SHA-1 rows sign with it
	_ "crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"

	"github.com/keystep/keystep/provider/samlidp"
	"github.com/keystep/keystep/provider/samlidp/samltest"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// attackEnv is the env of TestSAMLAttacks and its users: alice is whom the
// SP's genuine requests name, bob whom an attacker would rather have signed
// in, and ali what a parser that stops at a comment reads of
// "ali<!---->ce".
type attackEnv struct {
	*env
	alice, bob, ali user
}

// evilACS is where an attacker wants the Response posted.
const evilACS = "https://evil.example/saml/acs"

// TestSAMLAttacks sends the attacks of docs/design/saml-idp.md §9.4 to the
// IdP. Every row checks that the attacker gets nothing: the HTTP status (or
// the named SAML status), no auth request stored, no request ID used up,
// no SAMLResponse posted to any URL the request named, no prompt on any
// phone, and the reason the server logged. Where the attack is a change
// to a genuine request, the genuine request is sent afterwards and must
// still be accepted: the refusal is the attack's doing, not the harness's,
// and an attacker cannot burn a genuine request's ID.
func TestSAMLAttacks(t *testing.T) {
	a := &attackEnv{env: newEnv(t, envOptions{})}
	a.alice, a.bob, a.ali = a.newUser("alice"), a.newUser("bob"), a.newUser("ali")
	key, cert := a.sp.Key, a.sp.Certificate

	t.Run("XSW", func(t *testing.T) {
		t.Run("control: a re-signed SignedInfo is accepted", func(t *testing.T) {
			// The rows below change SignedInfo and sign it again with
			// resignSignedInfo: unchanged, its result must pass.
			signed := a.signedRoot(t, "alice", nil)
			resignSignedInfo(t, key, signed)
			m := a.mark(t)
			a.accepted(t, m, a.serve(a.post(xmlBytes(t, signed), "")), "alice")
		})
		t.Run("unsigned outer request wraps the signed one in Extensions", func(t *testing.T) {
			signed := a.signedRoot(t, "alice", nil)
			outer := signed.Copy()
			outer.RemoveChild(child(outer, "Signature"))
			outer.CreateAttr("ID", "_xsw-outer")
			outer.CreateAttr("AssertionConsumerServiceURL", evilACS)
			setNameID(t, outer, "bob")
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(signed.Copy())
			insertAfterIssuer(outer, ext)
			m := a.mark(t)
			a.refused(t, m, a.serve(a.post(xmlBytes(t, outer), "")), http.StatusBadRequest, "authn request is not signed")
			a.genuineAccepted(t, a.post(xmlBytes(t, signed), ""))
		})
		t.Run("signed root whose Reference names an inner copy", func(t *testing.T) {
			signed := a.signedRoot(t, "alice", nil)
			outer := wrapWithSignature(t, signed, "_xsw-evil")
			m := a.mark(t)
			a.refused(t, m, a.serve(a.post(xmlBytes(t, outer), "")), http.StatusBadRequest, "cannot verify signature of authn request")
			a.genuineAccepted(t, a.post(xmlBytes(t, signed), ""))
		})
		t.Run("signed root and inner copy share the ID", func(t *testing.T) {
			signed := a.signedRoot(t, "alice", nil)
			outer := wrapWithSignature(t, signed, signed.SelectAttrValue("ID", ""))
			m := a.mark(t)
			a.refused(t, m, a.serve(a.post(xmlBytes(t, outer), "")), http.StatusBadRequest, "cannot verify signature of authn request")
			a.genuineAccepted(t, a.post(xmlBytes(t, signed), ""))
		})
		for _, first := range []bool{true, false} {
			name := "two References, the root's first"
			if !first {
				name = "two References, the root's second"
			}
			t.Run(name, func(t *testing.T) {
				signed := a.signedRoot(t, "alice", nil)
				genuine := xmlBytes(t, signed)
				ref := signed.FindElement("./Signature/SignedInfo/Reference")
				other := ref.Copy()
				other.CreateAttr("URI", "#_other")
				at := ref.Index() + 1
				if !first {
					at = ref.Index()
				}
				ref.Parent().InsertChildAt(at, other)
				resignSignedInfo(t, key, signed)
				m := a.mark(t)
				a.refused(t, m, a.serve(a.post(xmlBytes(t, signed), "")), http.StatusBadRequest, "exactly one Reference")
				a.genuineAccepted(t, a.post(genuine, ""))
			})
		}
		t.Run(`Reference URI=""`, func(t *testing.T) {
			signed := a.signedRoot(t, "alice", nil)
			genuine := xmlBytes(t, signed)
			signed.FindElement("./Signature/SignedInfo/Reference").CreateAttr("URI", "")
			resignSignedInfo(t, key, signed)
			m := a.mark(t)
			a.refused(t, m, a.serve(a.post(xmlBytes(t, signed), "")), http.StatusBadRequest, "Reference URI must be")
			a.genuineAccepted(t, a.post(genuine, ""))
		})
		t.Run("NameID changed after signing", func(t *testing.T) {
			signed := a.signedRoot(t, "alice", nil)
			genuine := xmlBytes(t, signed)
			setNameID(t, signed, "bob")
			m := a.mark(t)
			a.refused(t, m, a.serve(a.post(xmlBytes(t, signed), "")), http.StatusBadRequest, "cannot verify signature of authn request")
			a.genuineAccepted(t, a.post(genuine, ""))
		})
		t.Run("comment in the NameID, signed after it was put in", func(t *testing.T) {
			// Exclusive c14n drops comments: the signature covers
			// "alice", and alice is who keystep asks, stores and asserts
			// (never "ali", what a parser stopping at the comment reads).
			req := a.newAuthnRequest(t, "placeholder")
			el := req.Element()
			commentNameID(t, el)
			signed := signEnveloped(t, key, cert, dsig.RSASHA256SignatureMethod, el)
			raw := xmlBytes(t, signed)
			if !bytes.Contains(raw, []byte(">ali<!---->ce<")) {
				t.Fatalf("the comment is not in the signed request:\n%s", raw)
			}
			b := steptest.NewBrowser(t)
			form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)}, "RelayState": {"relay-123"}}
			step := a.startStep(b, samltest.Request{URL: a.ssoURL(), Form: form})
			id := step.URL.Path[strings.LastIndexByte(step.URL.Path, '/')+1:]
			a.checkStored(t, id, "alice", a.alice)
			if n := a.ali.pending(t); n != 0 {
				t.Errorf("ali got %d prompts", n)
			}
			a.alice.approve(t, number(t, step))
			resp, _ := a.answer(b.Submit(step.Form(t, "/finish"), nil))
			as, err := a.sp.Assertion(t, resp, req.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got := as.Subject.NameID.Value; got != "alice" {
				t.Errorf("the assertion names %q, the signature covers \"alice\"", got)
			}
		})
		t.Run("comment put in the NameID after signing", func(t *testing.T) {
			// The signature still verifies (comments are not signed); what
			// keystep keeps must still be "alice".
			signed := a.signedRoot(t, "alice", nil)
			commentNameID(t, signed)
			m := a.mark(t)
			w := a.serve(a.post(xmlBytes(t, signed), ""))
			id := a.accepted(t, m, w, "alice")
			a.checkStored(t, id, "alice", a.alice)
		})
	})

	t.Run("Redirect", func(t *testing.T) {
		other := a.deflated(t, xmlBytes(t, a.newAuthnRequest(t, "bob").Element()))
		cases := []struct {
			name, reason string
			tamper       func(t testing.TB, q string) string
			noRelay      bool // the genuine request has no RelayState
		}{
			{"SAMLRequest replaced, signature kept", "cannot verify HTTP-Redirect signature", func(t testing.TB, q string) string {
				return setRawParam(t, q, "SAMLRequest", url.QueryEscape(other))
			}, false},
			{"RelayState changed, signature kept", "cannot verify HTTP-Redirect signature", func(t testing.TB, q string) string {
				return setRawParam(t, q, "RelayState", "elsewhere")
			}, false},
			{"RelayState added, signature kept", "cannot verify HTTP-Redirect signature", func(t testing.TB, q string) string {
				return q + "&RelayState=elsewhere"
			}, true},
			{"duplicate SAMLRequest", "given more than once", func(t testing.TB, q string) string {
				return q + "&SAMLRequest=" + url.QueryEscape(other)
			}, false},
			{"duplicate SAMLRequest before the signed one", "given more than once", func(t testing.TB, q string) string {
				return "SAMLRequest=" + url.QueryEscape(other) + "&" + q
			}, false},
			{"duplicate Signature", "given more than once", func(t testing.TB, q string) string {
				return q + "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("junk")))
			}, false},
			{"duplicate SigAlg", "given more than once", func(t testing.TB, q string) string {
				return q + "&SigAlg=" + url.QueryEscape(dsig.RSASHA1SignatureMethod)
			}, false},
			{"Signature dropped", "authn request is not signed", func(t testing.TB, q string) string {
				return dropRawParam(t, dropRawParam(t, q, "Signature"), "SigAlg")
			}, false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				relay := "relay-123"
				if c.noRelay {
					relay = ""
				}
				r := a.sp.AuthnRequest(t, saml.HTTPRedirectBinding, "alice", relay, nil)
				u, err := url.Parse(r.URL)
				if err != nil {
					t.Fatal(err)
				}
				genuine := u.RawQuery
				u.RawQuery = c.tamper(t, genuine)
				m := a.mark(t)
				a.refused(t, m, a.serve(httptest.NewRequest(http.MethodGet, u.String(), nil)), http.StatusBadRequest, c.reason)
				u.RawQuery = genuine
				a.genuineAccepted(t, httptest.NewRequest(http.MethodGet, u.String(), nil))
			})
		}
	})

	t.Run("Signature", func(t *testing.T) {
		stranger := samltest.NewSP(t, samltest.Options{BaseURL: spBase})
		stranger.IDPMetadata = a.sp.IDPMetadata
		sha1 := a.spSigningWith(dsig.RSASHA1SignatureMethod)
		cases := []struct {
			name    string
			sp      *samltest.SP
			binding string
			reason  string
		}{
			{"key not in the metadata, POST", stranger, saml.HTTPPostBinding, "cannot verify signature of authn request"},
			{"key not in the metadata, Redirect", stranger, saml.HTTPRedirectBinding, "cannot verify HTTP-Redirect signature"},
			{"rsa-sha1 SignatureMethod, POST", sha1, saml.HTTPPostBinding, "SHA-1 based signature algorithms are not accepted"},
			{"rsa-sha1 SigAlg, Redirect", sha1, saml.HTTPRedirectBinding, "SHA-1 based signature algorithms are not accepted"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := c.sp.AuthnRequest(t, c.binding, "alice", "", nil)
				// The SHA-1 rows must really carry rsa-sha1 (in the XML or
				// as SigAlg).
				if sent := a.requestText(t, r); c.sp == sha1 && !strings.Contains(sent, dsig.RSASHA1SignatureMethod) {
					t.Fatalf("the request is not signed with rsa-sha1:\n%s", sent)
				}
				m := a.mark(t)
				a.refused(t, m, a.serve(a.httpRequest(r)), http.StatusBadRequest, c.reason)
			})
		}
	})

	t.Run("UnsignedAllowedElsewhere", func(t *testing.T) {
		// The IdP allows unsigned requests, this SP does not, and its
		// metadata does not say it signs: the library accepts an unsigned
		// request, and keystep's own signed check is the gate. It must
		// agree with what the library verified.
		u := &attackEnv{env: newEnv(t, envOptions{
			options: func(o *samlidp.Options) { o.AllowUnsignedRequests = true },
			policy: func(c *samlidp.SPConfig) {
				data, err := os.ReadFile(c.MetadataFile)
				if err != nil {
					t.Fatal(err)
				}
				c.MetadataFile = filepath.Join(t.TempDir(), "sp-metadata.xml")
				data = bytes.Replace(data, []byte(` AuthnRequestsSigned="true"`), nil, 1)
				if err := os.WriteFile(c.MetadataFile, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}})}
		u.alice, u.bob, u.ali = u.newUser("alice"), u.newUser("bob"), u.newUser("ali")
		for _, c := range []struct{ name, sig, reason string }{
			{"unsigned", "", "the AuthnRequest is not signed"},
			{"a Signature element of another namespace", `<Signature xmlns="urn:example:not-dsig"/>`, "signature element not present"},
			{"an empty ds:Signature", `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>`, "cannot verify signature of authn request"},
		} {
			t.Run(c.name, func(t *testing.T) {
				root := parseXML(t, xmlBytes(t, u.newAuthnRequest(t, "alice").Element()))
				if c.sig != "" {
					insertAfterIssuer(root, parseXML(t, []byte(c.sig)))
				}
				m := u.mark(t)
				u.refused(t, m, u.serve(u.post(xmlBytes(t, root), "")), http.StatusBadRequest, c.reason)
			})
		}
		t.Run("control: signed", func(t *testing.T) {
			u.accepted(t, u.mark(t), u.serve(u.httpRequest(u.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", nil))), "alice")
		})
	})

	t.Run("NameAttribute", func(t *testing.T) {
		// An SP with a name attribute names the user in the Extensions of
		// a request without Subject; keystep reads it from the raw request
		// (session.go: extensionAttribute), so what it reads there must be
		// what the signature covers.
		n := &attackEnv{env: newEnv(t, envOptions{policy: func(c *samlidp.SPConfig) { c.NameAttribute = uidAttribute }})}
		n.alice, n.bob, n.ali = n.newUser("alice"), n.newUser("bob"), n.newUser("ali")
		// request is an unsigned request of n's SP naming the user by
		// attribute, value given as the text nodes and comments of values.
		request := func(t testing.TB, values ...etree.Token) *etree.Element {
			req := n.newAuthnRequest(t, "")
			req.Subject = nil
			el := req.Element()
			insertAfterIssuer(el, nameExtensions(values...))
			return el
		}
		sign := func(t testing.TB, el *etree.Element) *etree.Element {
			return signEnveloped(t, n.sp.Key, n.sp.Certificate, dsig.RSASHA256SignatureMethod, el)
		}
		t.Run("control: signed, naming alice", func(t *testing.T) {
			id := n.accepted(t, n.mark(t), n.serve(n.post(xmlBytes(t, sign(t, request(t, etree.NewText("alice")))), "")), "alice")
			n.checkStored(t, id, "", n.alice)
		})
		t.Run("value changed after signing", func(t *testing.T) {
			signed := sign(t, request(t, etree.NewText("alice")))
			signed.FindElement("./Extensions/Attribute/AttributeValue").SetText("bob")
			m := n.mark(t)
			n.refused(t, m, n.serve(n.post(xmlBytes(t, signed), "")), http.StatusBadRequest, "cannot verify signature of authn request")
		})
		t.Run("unsigned outer request naming bob wraps the signed one", func(t *testing.T) {
			signed := sign(t, request(t, etree.NewText("alice")))
			outer := request(t, etree.NewText("bob"))
			outer.CreateAttr("ID", "_na-outer")
			outer.FindElement("./Extensions").AddChild(signed)
			m := n.mark(t)
			n.refused(t, m, n.serve(n.post(xmlBytes(t, outer), "")), http.StatusBadRequest, "authn request is not signed")
		})
		t.Run("Extensions naming bob put in the unsigned KeyInfo", func(t *testing.T) {
			// The KeyInfo is not signed, and the signature still verifies:
			// keystep reads only the root's Extensions, and asks alice.
			signed := sign(t, request(t, etree.NewText("alice")))
			signed.FindElement("./Signature/KeyInfo").AddChild(nameExtensions(etree.NewText("bob")))
			id := n.accepted(t, n.mark(t), n.serve(n.post(xmlBytes(t, signed), "")), "alice")
			n.checkStored(t, id, "", n.alice)
		})
		t.Run("second Extensions naming bob after the Signature", func(t *testing.T) {
			signed := sign(t, request(t, etree.NewText("alice")))
			signed.AddChild(nameExtensions(etree.NewText("bob")))
			m := n.mark(t)
			n.refused(t, m, n.serve(n.post(xmlBytes(t, signed), "")), http.StatusBadRequest, "cannot verify signature of authn request")
		})
		t.Run("comment in the value, signed", func(t *testing.T) {
			id := n.accepted(t, n.mark(t), n.serve(n.post(xmlBytes(t, sign(t, request(t, etree.NewText("ali"), etree.NewComment(""), etree.NewText("ce")))), "")), "alice")
			n.checkStored(t, id, "", n.alice)
		})
		t.Run("comment put in the value after signing", func(t *testing.T) {
			signed := sign(t, request(t, etree.NewText("alice")))
			v := signed.FindElement("./Extensions/Attribute/AttributeValue")
			for _, c := range slices.Clone(v.Child) {
				v.RemoveChild(c)
			}
			v.CreateText("ali")
			v.CreateComment("")
			v.CreateText("ce")
			id := n.accepted(t, n.mark(t), n.serve(n.post(xmlBytes(t, signed), "")), "alice")
			n.checkStored(t, id, "", n.alice)
		})
	})

	t.Run("Metadata", func(t *testing.T) { a.metadataAttacks(t) })

	t.Run("DTD", func(t *testing.T) {
		doctype := `<!DOCTYPE samlp:AuthnRequest [<!ENTITY x "y">]>`
		laughs := `<!DOCTYPE samlp:AuthnRequest [<!ENTITY lol "lol">` +
			`<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
			`<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">` +
			`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">` +
			`<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">` +
			`<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">` +
			`<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">` +
			`<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">` +
			`<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">` +
			`<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>`
		external := `<!DOCTYPE samlp:AuthnRequest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`
		cases := []struct {
			name, prolog, nameID string // nameID: what replaces "alice", if not ""
		}{
			{"DOCTYPE before a signed request", doctype, ""},
			{"billion laughs", laughs, "&lol9;"},
			{"external SYSTEM entity", external, "&xxe;"},
			{"ENTITY without DOCTYPE", `<!ENTITY x "y">`, ""},
		}
		for _, c := range cases {
			for _, binding := range []string{saml.HTTPPostBinding, saml.HTTPRedirectBinding} {
				t.Run(c.name+", "+bindingName(binding), func(t *testing.T) {
					signed := a.signedRoot(t, "alice", nil)
					genuine := xmlBytes(t, signed)
					evil := []byte(c.prolog + string(genuine))
					if c.nameID != "" {
						evil = bytes.Replace(evil, []byte(">alice<"), []byte(">"+c.nameID+"<"), 1)
					}
					// Over HTTP-Redirect the query signature is valid: only
					// the DTD is wrong with the request.
					send, genuineReq := a.post(evil, ""), a.post(genuine, "")
					if binding == saml.HTTPRedirectBinding {
						send = a.redirect(t, evil, "", dsig.RSASHA256SignatureMethod, key)
						genuineReq = a.redirect(t, genuine, "", dsig.RSASHA256SignatureMethod, key)
					}
					m := a.mark(t)
					reason := "DOCTYPE"
					if !strings.Contains(c.prolog, "DOCTYPE") {
						reason = "ENTITY declaration"
					}
					a.refused(t, m, a.serve(send), http.StatusBadRequest, reason)
					if c.nameID == "" {
						a.genuineAccepted(t, genuineReq)
					}
				})
			}
		}
		t.Run("LogoutRequest", func(t *testing.T) { a.logoutDTD(t, doctype, laughs) })
	})

	t.Run("Logout", func(t *testing.T) {
		slo := a.ts.URL + "/saml/slo"
		stranger := samltest.NewSP(t, samltest.Options{BaseURL: spBase})
		stranger.IDPMetadata = a.sp.IDPMetadata
		send := func(t testing.TB, sp *samltest.SP, sign bool) (*saml.LogoutRequest, *http.Request) {
			lr, err := sp.MakeLogoutRequest(slo, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if !sign {
				lr.Signature = nil
			}
			return lr, postForm(slo, url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(xmlBytes(t, lr.Element()))}})
		}
		t.Run("replayed", func(t *testing.T) {
			lr, req := send(t, a.sp, true)
			if w := a.serve(req); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "SAMLResponse") {
				t.Fatalf("the genuine LogoutRequest got %d:\n%s", w.Code, w.Body)
			}
			m := a.mark(t)
			a.refused(t, m, a.serve(postForm(slo, url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(xmlBytes(t, lr.Element()))}})),
				http.StatusBadRequest, "use nonce: replayed request")
		})
		t.Run("unsigned", func(t *testing.T) {
			_, req := send(t, a.sp, false)
			m := a.mark(t)
			a.refused(t, m, a.serve(req), http.StatusBadRequest, "cannot verify signature of logout request")
		})
		t.Run("key not in the metadata", func(t *testing.T) {
			_, req := send(t, stranger, true)
			m := a.mark(t)
			a.refused(t, m, a.serve(req), http.StatusBadRequest, "cannot verify signature of logout request")
		})
	})

	t.Run("Size", func(t *testing.T) {
		t.Run("POST body over 64 KiB", func(t *testing.T) {
			r := a.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", nil)
			form := url.Values{"SAMLRequest": {r.Form.Get("SAMLRequest")}, "RelayState": {strings.Repeat("r", 64<<10)}}
			m := a.mark(t)
			a.refused(t, m, a.serve(postForm(a.ssoURL(), form)), http.StatusRequestEntityTooLarge, "request body too large")
		})
		t.Run("query over 16 KiB", func(t *testing.T) {
			r := a.sp.AuthnRequest(t, saml.HTTPRedirectBinding, "alice", "", nil)
			m := a.mark(t)
			a.refused(t, m, a.serve(httptest.NewRequest(http.MethodGet, r.URL+"&x="+strings.Repeat("q", 16<<10), nil)),
				http.StatusRequestURITooLong, "the query is too long")
		})
		for _, inflated := range []int{70 << 10, 2 << 20} {
			t.Run("deflate bomb to "+strconv.Itoa(inflated>>10)+" KiB", func(t *testing.T) {
				// A comment before the root does not touch the signature,
				// and the query signature is valid: only the size is wrong.
				bomb := append([]byte("<!--"+strings.Repeat(" ", inflated)+"-->"), xmlBytes(t, a.signedRoot(t, "alice", nil))...)
				compressed := deflate(t, bomb)
				if len(compressed) > 4<<10 || len(bomb) <= 64<<10 {
					t.Fatalf("the bomb is %d bytes deflated, %d inflated", len(compressed), len(bomb))
				}
				m := a.mark(t)
				a.refused(t, m, a.serve(a.redirect(t, bomb, "", dsig.RSASHA256SignatureMethod, key)), http.StatusBadRequest,
					"inflates to more than 65536 bytes")
			})
		}
	})

	t.Run("Replay", func(t *testing.T) {
		t.Run("same signed request twice", func(t *testing.T) {
			r := a.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", nil)
			a.accepted(t, a.mark(t), a.serve(a.httpRequest(r)), "alice")
			m := a.mark(t)
			a.refused(t, m, a.serve(a.httpRequest(r)), http.StatusBadRequest, "was already used")
		})
		t.Run("same ID over the other binding", func(t *testing.T) {
			id := "_replay-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			fix := func(r *saml.AuthnRequest) { r.ID = id }
			a.accepted(t, a.mark(t), a.serve(a.httpRequest(a.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", fix))), "alice")
			m := a.mark(t)
			r := a.sp.AuthnRequest(t, saml.HTTPRedirectBinding, "alice", "", fix)
			a.refused(t, m, a.serve(a.httpRequest(r)), http.StatusBadRequest, "was already used")
		})
		t.Run("20 at once", func(t *testing.T) {
			r := a.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", nil)
			m := a.mark(t)
			codes := make([]int, 20)
			var wg sync.WaitGroup
			for i := range codes {
				req := a.httpRequest(r)
				wg.Go(func() { codes[i] = a.serve(req).Code })
			}
			wg.Wait()
			won := 0
			for _, c := range codes {
				switch c {
				case http.StatusSeeOther:
					won++
				case http.StatusBadRequest:
				default:
					t.Errorf("answer %d", c)
				}
			}
			if won != 1 {
				t.Errorf("%d of 20 got the step page: %v", won, codes)
			}
			if n := a.storedRequests(t) - m.requests; n != 1 {
				t.Errorf("%d requests stored", n)
			}
		})
	})

	t.Run("ACS", func(t *testing.T) {
		for _, acs := range []string{evilACS, "javascript:alert(1)", "https://sp.example.com/saml/acs/../../evil"} {
			t.Run(acs, func(t *testing.T) {
				r := a.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", func(r *saml.AuthnRequest) {
					r.AssertionConsumerServiceURL = acs
				})
				m := a.mark(t)
				a.refused(t, m, a.serve(a.httpRequest(r)), http.StatusBadRequest, "cannot find assertion consumer service")
			})
		}
	})

	t.Run("Fields", func(t *testing.T) {
		now := a.clock.Now()
		cases := []struct {
			name    string
			binding string
			edit    func(*saml.AuthnRequest)
			reason  string
		}{
			{"unknown SP issuer", saml.HTTPPostBinding, func(r *saml.AuthnRequest) {
				r.Issuer.Value = "https://unknown.example/saml/metadata"
			}, "unknown service provider"},
			{"Destination is /saml/slo", saml.HTTPPostBinding, func(r *saml.AuthnRequest) {
				r.Destination = a.ts.URL + "/saml/slo"
			}, "expected destination"},
			{"Destination is another host", saml.HTTPRedirectBinding, func(r *saml.AuthnRequest) {
				r.Destination = "https://idp.example/saml/sso"
			}, "expected destination"},
			// A signed request is read again from what its signature
			// covers and checked again: still expired, it gets 400.
			{"IssueInstant 10 minutes old, POST", saml.HTTPPostBinding, func(r *saml.AuthnRequest) {
				r.IssueInstant = now.Add(-10 * time.Minute)
			}, "request expired"},
			{"IssueInstant 10 minutes ahead, POST", saml.HTTPPostBinding, func(r *saml.AuthnRequest) {
				r.IssueInstant = now.Add(10 * time.Minute)
			}, "is in the future"},
			{"IssueInstant 10 minutes ahead, Redirect", saml.HTTPRedirectBinding, func(r *saml.AuthnRequest) {
				r.IssueInstant = now.Add(10 * time.Minute)
			}, "is in the future"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := a.sp.AuthnRequest(t, c.binding, "alice", "", c.edit)
				m := a.mark(t)
				a.refused(t, m, a.serve(a.httpRequest(r)), http.StatusBadRequest, c.reason)
			})
		}
		t.Run("LogoutRequest sent to the SSO endpoint", func(t *testing.T) {
			lr, err := a.sp.MakeLogoutRequest(a.ssoURL(), "alice")
			if err != nil {
				t.Fatal(err)
			}
			m := a.mark(t)
			a.refused(t, m, a.serve(a.post(xmlBytes(t, lr.Element()), "")), http.StatusBadRequest, "expected element type <AuthnRequest>")
		})
		t.Run("AuthnRequest sent to the SLO endpoint", func(t *testing.T) {
			r := a.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", nil)
			m := a.mark(t)
			w := a.serve(postForm(a.ts.URL+"/saml/slo", r.Form))
			a.refused(t, m, w, http.StatusBadRequest, "cannot parse logout request")
		})
		t.Run("IssueInstant 10 minutes old, Redirect", func(t *testing.T) {
			// The query signature covers the request as sent: the library
			// answers a signed Requester status, to the ACS of the
			// metadata, before keystep sees the request.
			r := a.sp.AuthnRequest(t, saml.HTTPRedirectBinding, "alice", "relay-123", func(r *saml.AuthnRequest) {
				r.IssueInstant = now.Add(-10 * time.Minute)
			})
			m := a.mark(t)
			w := a.serve(a.httpRequest(r))
			a.statusAnswer(t, m, w, saml.StatusRequester, "", r.ID)
		})
	})

	t.Run("Binding", func(t *testing.T) {
		t.Run("SimpleSign fields in the form", func(t *testing.T) {
			r := a.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", nil)
			form := url.Values{"SAMLRequest": {r.Form.Get("SAMLRequest")}, "SigAlg": {dsig.RSASHA256SignatureMethod},
				"Signature": {base64.StdEncoding.EncodeToString([]byte("sig"))}}
			m := a.mark(t)
			a.refused(t, m, a.serve(postForm(a.ssoURL(), form)), http.StatusBadRequest, "SimpleSign binding is not offered")
			a.genuineAccepted(t, a.httpRequest(r))
		})
		t.Run("SimpleSign fields in the query of a POST", func(t *testing.T) {
			r := a.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", nil)
			m := a.mark(t)
			req := postForm(a.ssoURL()+"?SigAlg="+url.QueryEscape(dsig.RSASHA256SignatureMethod)+"&Signature=c2ln", r.Form)
			a.refused(t, m, a.serve(req), http.StatusBadRequest, "SimpleSign binding is not offered")
		})
		for _, method := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions, http.MethodHead} {
			t.Run(method, func(t *testing.T) {
				r := a.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", nil)
				req := postForm(a.ssoURL(), r.Form)
				req.Method = method
				m := a.mark(t)
				w := a.serve(req)
				a.refused(t, m, w, http.StatusMethodNotAllowed, "only GET and POST are accepted")
				if got := w.Header().Get("Allow"); got != "GET, POST" {
					t.Errorf("Allow: %q", got)
				}
			})
		}
	})

	t.Run("RateLimit", func(t *testing.T) {
		l := &attackEnv{env: newEnv(t, envOptions{options: func(o *samlidp.Options) { o.SSOPerIPPerMinute = 3 }})}
		l.alice, l.bob, l.ali = l.newUser("alice"), l.newUser("bob"), l.newUser("ali")
		send := func(ip string) *httptest.ResponseRecorder {
			req := l.httpRequest(l.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", nil))
			req.RemoteAddr = ip + ":4711"
			return l.serve(req)
		}
		for range 3 {
			l.accepted(t, l.mark(t), send("192.0.2.7"), "alice")
		}
		m := l.mark(t)
		w := send("192.0.2.7")
		l.refused(t, m, w, http.StatusTooManyRequests, "too many requests from one address")
		if s, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || s < 1 || s > 60 {
			t.Errorf("Retry-After: %q", w.Header().Get("Retry-After"))
		}
		l.accepted(t, l.mark(t), send("192.0.2.8"), "alice")
		l.clock.Advance(time.Minute)
		l.accepted(t, l.mark(t), send("192.0.2.7"), "alice")
	})
}

// metadataAttacks loads SP metadata an attacker (or a careless operator)
// wrote into an IdP of its own: loading must fail, and the SP's genuine
// signed request must then get 400.
func (a *attackEnv) metadataAttacks(t *testing.T) {
	base, err := os.ReadFile(a.sp.MetadataFile)
	if err != nil {
		t.Fatal(err)
	}
	fedKey, fedCert := samltest.NewKey(t, "federation")
	otherKey, _ := samltest.NewKey(t, "another federation")
	certs := []*x509.Certificate{fedCert}
	withACS := func(loc string) []byte {
		return editXML(t, base, func(root *etree.Element) {
			for _, e := range root.FindElements("//AssertionConsumerService") {
				e.CreateAttr("Location", loc)
			}
		})
	}
	// withSecondACS adds an ACS at loc, index 7, before the genuine one.
	withSecondACS := func(loc string) []byte {
		return editXML(t, base, func(root *etree.Element) {
			acs := root.FindElement("//AssertionConsumerService")
			second := acs.Copy()
			second.CreateAttr("Location", loc)
			second.CreateAttr("index", "7")
			acs.Parent().InsertChildAt(acs.Index(), second)
		})
	}
	signedBy := func(key crypto.Signer, method string) []byte {
		return editXML(t, base, func(root *etree.Element) {
			root.CreateAttr("ID", "_md")
			signInPlace(t, root, key, fedCert, method)
		})
	}
	prolog := func(p string) []byte { return append([]byte(p), base...) }

	for _, c := range []struct {
		name  string
		data  []byte
		certs []*x509.Certificate
	}{
		{"control: unsigned", base, nil},
		{"control: signed with rsa-sha256", signedBy(fedKey, dsig.RSASHA256SignatureMethod), certs},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := a.idpWithSP(t, c.data, c.certs)
			if err != nil {
				t.Fatalf("the metadata does not load: %v", err)
			}
			m := a.mark(t)
			a.accepted(t, m, serveWith(p, a.httpRequest(a.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", nil))), "alice")
		})
	}

	billion := `<!DOCTYPE EntityDescriptor [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>`
	aggregate := func(inner func(*etree.Element)) []byte {
		entity := parseXML(t, base)
		entity.CreateAttr("ID", "_md")
		signInPlace(t, entity, fedKey, fedCert, dsig.RSASHA256SignatureMethod)
		agg := etree.NewElement("EntitiesDescriptor")
		agg.CreateAttr("xmlns", "urn:oasis:names:tc:SAML:2.0:metadata")
		agg.CreateAttr("ID", "_agg")
		agg.AddChild(entity)
		if inner != nil {
			inner(agg)
		}
		return xmlBytes(t, agg)
	}
	for _, c := range []struct {
		name   string
		data   []byte
		certs  []*x509.Certificate
		reason string
	}{
		{"DOCTYPE with billion laughs", append([]byte(billion), bytes.Replace(base, []byte(`entityID="`), []byte(`entityID="&lol3;`), 1)...), nil, "DOCTYPE"},
		{"DOCTYPE with an external SYSTEM entity", prolog(`<!DOCTYPE EntityDescriptor [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`), nil, "DOCTYPE"},
		{"javascript: ACS", withACS("javascript:alert(document.domain)"), nil, `invalid url scheme "javascript"`},
		{"data: ACS", withACS("data:text/html,<script>alert(1)</script>"), nil, `invalid url scheme "data"`},
		{"javascript: ACS next to an https one", withSecondACS("javascript:alert(1)"), nil, `invalid url scheme "javascript"`},
		{"http ACS on another host", withACS("http://sp.example.com/saml/acs"), nil, "no HTTP-POST AssertionConsumerService on https"},
		{"signed with rsa-sha1", signedBy(fedKey, dsig.RSASHA1SignatureMethod), certs, "SHA-1"},
		{"signed by another key", signedBy(otherKey, dsig.RSASHA256SignatureMethod), certs, "cannot validate signature"},
		{"unsigned while MetadataCerts is set", base, certs, "metadata is not signed"},
		{"unsigned aggregate around a signed EntityDescriptor", aggregate(nil), certs, "metadata is not signed"},
		{"aggregate whose signature references the inner EntityDescriptor", aggregate(func(agg *etree.Element) {
			entity := agg.ChildElements()[0]
			sig := child(entity, "Signature")
			entity.RemoveChild(sig)
			agg.InsertChildAt(0, sig)
		}), certs, "cannot validate signature"},
		{"another entityID", editXML(t, base, func(root *etree.Element) {
			root.CreateAttr("entityID", "https://other.example.com/saml/metadata")
		}), nil, "no entity found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := a.idpWithSP(t, c.data, c.certs)
			if err == nil {
				t.Fatalf("the metadata loads:\n%s", c.data)
			}
			if !strings.Contains(err.Error(), c.reason) {
				t.Errorf("the load fails with %q, not for %q", err, c.reason)
			}
			m := a.mark(t)
			a.refused(t, m, serveWith(p, a.httpRequest(a.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", nil))),
				http.StatusBadRequest, "unknown service provider")
		})
	}
	t.Run("http ACS next to an https one", func(t *testing.T) {
		// keystep drops the http endpoint and keeps the SP: a request
		// naming it, by URL or by index, gets 400.
		p, err := a.idpWithSP(t, withSecondACS("http://sp.example.com/saml/acs"), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, edit := range []func(*saml.AuthnRequest){
			func(r *saml.AuthnRequest) { r.AssertionConsumerServiceURL = "http://sp.example.com/saml/acs" },
			func(r *saml.AuthnRequest) { r.AssertionConsumerServiceURL, r.AssertionConsumerServiceIndex = "", "7" },
		} {
			m := a.mark(t)
			a.refused(t, m, serveWith(p, a.httpRequest(a.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", edit))),
				http.StatusBadRequest, "cannot find assertion consumer service")
		}
		m := a.mark(t)
		a.accepted(t, m, serveWith(p, a.httpRequest(a.sp.AuthnRequest(t, saml.HTTPPostBinding, "alice", "", nil))), "alice")
	})
}

// logoutDTD sends signed LogoutRequests with a DTD to /saml/slo; the same
// requests without it get a LogoutResponse.
func (a *attackEnv) logoutDTD(t *testing.T, doctype, laughs string) {
	slo := a.ts.URL + "/saml/slo"
	for _, c := range []struct{ name, prolog string }{{"DOCTYPE", doctype}, {"billion laughs", laughs}} {
		for _, redirect := range []bool{false, true} {
			name := c.name + ", POST"
			if redirect {
				name = c.name + ", Redirect"
			}
			t.Run(name, func(t *testing.T) {
				lr, err := a.sp.MakeLogoutRequest(slo, "alice")
				if err != nil {
					t.Fatal(err)
				}
				genuine := xmlBytes(t, lr.Element())
				evil := []byte(c.prolog + string(genuine))
				send := func(doc []byte) *httptest.ResponseRecorder {
					if redirect {
						return a.serve(httptest.NewRequest(http.MethodGet,
							slo+"?"+redirectQuery(t, a.deflated(t, doc), "", dsig.RSASHA256SignatureMethod, a.sp.Key), nil))
					}
					return a.serve(postForm(slo, url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(doc)}}))
				}
				m := a.mark(t)
				a.refused(t, m, send(evil), http.StatusBadRequest, "DOCTYPE")
				w := send(genuine)
				if w.Code == http.StatusBadRequest || !strings.Contains(w.Body.String()+w.Header().Get("Location"), "SAMLResponse") {
					t.Errorf("the genuine LogoutRequest got %d, no LogoutResponse:\n%s\nserver log:\n%s", w.Code, w.Body, a.logs.String()[m.log:])
				}
			})
		}
	}
}

// idpWithSP is a second IdP over the env's store whose one SP (the env's
// SP entity) has the given metadata file; it returns the IdP and what
// Reload said.
func (a *attackEnv) idpWithSP(t *testing.T, metadata []byte, certs []*x509.Certificate) (*samlidp.Provider, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sp-metadata.xml")
	if err := os.WriteFile(path, metadata, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := samlidp.New(samlidp.Options{Flows: a.svc, PublicURL: a.ts.URL, Secret: testSecret, SSOPerIPPerMinute: 1 << 30,
		ServiceProviders: []samlidp.SPConfig{{ID: "portal", EntityID: a.sp.EntityID, MetadataFile: path, MetadataCerts: certs}},
		Clock:            a.clock, Logger: slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return p, p.Reload(a.ctx)
}

func serveWith(p *samlidp.Provider, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	p.Handler().ServeHTTP(w, r)
	return w
}

// mark is what an attack may not change: the SAML auth requests stored, the
// AuthnRequest IDs used up, and how far the server log went.
type mark struct{ requests, nonces, log int }

func (a *attackEnv) mark(t testing.TB) mark {
	t.Helper()
	return mark{requests: a.storedRequests(t), nonces: a.usedRequestIDs(t), log: len(a.logs.String())}
}

// refused checks the answer to an attack: status, nothing stored or used
// up, nothing posted anywhere (no SAMLResponse in the answer, no step
// page), no prompt on any phone, and reason (if not "") in what the server
// logged since m.
func (a *attackEnv) refused(t testing.TB, m mark, w *httptest.ResponseRecorder, status int, reason string) {
	t.Helper()
	log := a.logs.String()[m.log:]
	if w.Code != status {
		t.Errorf("answer %d, want %d:\n%s\nserver log:\n%s", w.Code, status, w.Body, log)
	}
	if reason != "" && !strings.Contains(log, reason) {
		t.Errorf("the server log does not say %q:\n%s", reason, log)
	}
	if body := w.Body.String(); strings.Contains(body, "SAMLResponse") || strings.Contains(body, "<form") {
		t.Errorf("the answer posts something:\n%s", body)
	}
	if loc := w.Header().Get("Location"); loc != "" {
		t.Errorf("the answer redirects to %s", loc)
	}
	if n := a.storedRequests(t) - m.requests; n != 0 {
		t.Errorf("%d auth requests stored", n)
	}
	if n := a.usedRequestIDs(t) - m.nonces; n != 0 {
		t.Errorf("%d request IDs used up", n)
	}
	a.noPrompts(t)
}

// accepted checks that a request got the step page: one auth request
// stored, for the named user, and no prompt yet. It returns the request's id.
func (a *attackEnv) accepted(t testing.TB, m mark, w *httptest.ResponseRecorder, name string) string {
	t.Helper()
	loc := w.Header().Get("Location")
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "/step/") {
		t.Fatalf("answer %d → %q, not the step page:\n%s\nserver log:\n%s", w.Code, loc, w.Body, a.logs.String()[m.log:])
	}
	if n := a.storedRequests(t) - m.requests; n != 1 {
		t.Errorf("%d auth requests stored", n)
	}
	id := strings.TrimPrefix(loc, "/step/")
	ar, err := a.svc.Store().GetAuthRequest(a.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := a.svc.Store().GetAccount(a.ctx, ar.AccountID)
	if err != nil || acc.Username != name {
		t.Errorf("the request is for %q (%v), not %s", acc.Username, err, name)
	}
	a.noPrompts(t)
	return id
}

// genuineAccepted sends the genuine request an attack was made from: it
// must still be accepted.
func (a *attackEnv) genuineAccepted(t testing.TB, r *http.Request) {
	t.Helper()
	a.accepted(t, a.mark(t), a.serve(r), "alice")
}

// statusAnswer checks an error Response posted to the SP's ACS from its
// metadata, in response to id, and that nothing was stored or used up.
func (a *attackEnv) statusAnswer(t testing.TB, m mark, w *httptest.ResponseRecorder, top, second, id string) {
	t.Helper()
	action, fields := autoPostForm(w.Body.String())
	if w.Code != http.StatusOK || action != a.sp.AcsURL.String() {
		t.Fatalf("answer %d posting to %q, not to %s:\n%s", w.Code, action, a.sp.AcsURL.String(), w.Body)
	}
	st, raw := samltest.ReadStatus(t, fields.Get("SAMLResponse"))
	if st.Top != top || st.Second != second || !strings.Contains(string(raw), `InResponseTo="`+id+`"`) {
		t.Errorf("status %s in response to %s:\n%s", st, id, raw)
	}
	if strings.Contains(string(raw), "Assertion") {
		t.Errorf("the error response carries an assertion:\n%s", raw)
	}
	if n := a.storedRequests(t) - m.requests; n != 0 {
		t.Errorf("%d auth requests stored", n)
	}
	if n := a.usedRequestIDs(t) - m.nonces; n != 0 {
		t.Errorf("%d request IDs used up", n)
	}
	a.noPrompts(t)
}

func (a *attackEnv) noPrompts(t testing.TB) {
	t.Helper()
	for _, u := range []user{a.alice, a.bob, a.ali} {
		if n := u.pending(t); n != 0 {
			t.Errorf("%s has %d prompts", u.name, n)
		}
	}
}

// uidAttribute is the name attribute of the NameAttribute rows.
const uidAttribute = "urn:oid:0.9.2342.19200300.100.1.1"

// nameExtensions is <samlp:Extensions> with the attribute uidAttribute
// whose one value is made of tokens.
func nameExtensions(tokens ...etree.Token) *etree.Element {
	ext := etree.NewElement("samlp:Extensions")
	attr := ext.CreateElement("saml:Attribute")
	attr.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
	attr.CreateAttr("Name", uidAttribute)
	v := attr.CreateElement("saml:AttributeValue")
	for _, tok := range tokens {
		v.AddChild(tok)
	}
	return ext
}

// checkStored checks what keystep kept of request id: the NameID the
// signature covers ("": none, the user named by attribute), and the
// account it names.
func (a *attackEnv) checkStored(t testing.TB, id, nameID string, u user) {
	t.Helper()
	ar, err := a.svc.Store().GetAuthRequest(a.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var data struct {
		NameID *saml.NameID `json:"name_id"`
	}
	if err := json.Unmarshal(ar.Request, &data); err != nil {
		t.Fatal(err)
	}
	got := ""
	if data.NameID != nil {
		got = data.NameID.Value
	}
	if got != nameID || ar.AccountID != u.account.ID {
		t.Errorf("stored NameID %q for account %s, want %q for %s", got, ar.AccountID, nameID, u.name)
	}
}

// count runs a count query on the env's SQLite store.
func (e *env) count(t testing.TB, query string) int {
	t.Helper()
	s, ok := e.svc.Store().(interface{ DB() *sql.DB })
	if !ok {
		t.Fatalf("the store %T has no DB", e.svc.Store())
	}
	var n int
	if err := s.DB().QueryRowContext(e.ctx, query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// storedRequests is the number of SAML auth requests stored.
func (e *env) storedRequests(t testing.TB) int {
	return e.count(t, `SELECT count(*) FROM auth_requests WHERE protocol = 'saml'`)
}

// usedRequestIDs is the number of AuthnRequest IDs keystep recorded as used.
func (e *env) usedRequestIDs(t testing.TB) int {
	return e.count(t, `SELECT count(*) FROM nonces WHERE nonce LIKE 'saml-authn:%'`)
}

// serve sends r to the IdP's handler directly.
func (e *env) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.idp.Handler().ServeHTTP(w, r)
	return w
}

func (e *env) ssoURL() string { return e.ts.URL + "/saml/sso" }

// httpRequest is the request a browser sends for r.
func (e *env) httpRequest(r samltest.Request) *http.Request {
	if r.Form != nil {
		return postForm(r.URL, r.Form)
	}
	return httptest.NewRequest(http.MethodGet, r.URL, nil)
}

// requestText is r as sent: the XML of an HTTP-POST request, the decoded
// query of an HTTP-Redirect one.
func (e *env) requestText(t testing.TB, r samltest.Request) string {
	t.Helper()
	if r.Form != nil {
		raw, err := base64.StdEncoding.DecodeString(r.Form.Get("SAMLRequest"))
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	q, err := url.QueryUnescape(u.RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// post is an HTTP-POST binding request carrying doc.
func (e *env) post(doc []byte, relayState string) *http.Request {
	form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(doc)}}
	if relayState != "" {
		form.Set("RelayState", relayState)
	}
	return postForm(e.ssoURL(), form)
}

// redirect is an HTTP-Redirect binding request carrying doc, with a query
// signature by key when sigAlg is not "".
func (e *env) redirect(t testing.TB, doc []byte, relayState, sigAlg string, key crypto.Signer) *http.Request {
	t.Helper()
	return httptest.NewRequest(http.MethodGet, e.ssoURL()+"?"+redirectQuery(t, e.deflated(t, doc), relayState, sigAlg, key), nil)
}

func (e *env) deflated(t testing.TB, doc []byte) string {
	t.Helper()
	return base64.StdEncoding.EncodeToString(deflate(t, doc))
}

func postForm(target string, form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// newAuthnRequest is an unsigned AuthnRequest of the env's SP naming
// nameID, to the POST SSO endpoint.
func (e *env) newAuthnRequest(t testing.TB, nameID string) *saml.AuthnRequest {
	t.Helper()
	req, err := e.sp.MakeAuthenticationRequest(e.ssoURL(), saml.HTTPPostBinding, saml.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	req.Subject = &saml.Subject{NameID: &saml.NameID{Value: nameID}}
	req.Signature = nil
	return req
}

// signedRoot is the SP's genuine signed AuthnRequest (HTTP-POST) naming
// nameID, as an element.
func (e *env) signedRoot(t testing.TB, nameID string, edit func(*saml.AuthnRequest)) *etree.Element {
	t.Helper()
	r := e.sp.AuthnRequest(t, saml.HTTPPostBinding, nameID, "", edit)
	raw, err := base64.StdEncoding.DecodeString(r.Form.Get("SAMLRequest"))
	if err != nil {
		t.Fatal(err)
	}
	root := parseXML(t, raw)
	if child(root, "Signature") == nil {
		t.Fatalf("the genuine request is not signed:\n%s", raw)
	}
	return root
}

// wrapWithSignature is signed moved to an outer request with the given ID
// that names bob and the attacker's ACS, the original (unsigned) inside
// its Extensions.
func wrapWithSignature(t testing.TB, signed *etree.Element, id string) *etree.Element {
	t.Helper()
	sig := child(signed, "Signature")
	inner := signed.Copy()
	inner.RemoveChild(child(inner, "Signature"))
	outer := inner.Copy()
	outer.CreateAttr("ID", id)
	outer.CreateAttr("AssertionConsumerServiceURL", evilACS)
	setNameID(t, outer, "bob")
	ext := etree.NewElement("samlp:Extensions")
	ext.AddChild(inner)
	insertAfterIssuer(outer, ext)
	insertAfterIssuer(outer, sig.Copy())
	return outer
}

// spSigningWith is the env's SP (same entity and key) signing its requests
// with method.
func (e *env) spSigningWith(method string) *samltest.SP {
	s := e.sp.ServiceProvider
	return &samltest.SP{ServiceProvider: &saml.ServiceProvider{Key: s.Key, Certificate: s.Certificate,
		MetadataURL: s.MetadataURL, AcsURL: s.AcsURL, SloURL: s.SloURL, EntityID: s.EntityID,
		AuthnNameIDFormat: s.AuthnNameIDFormat, IDPMetadata: s.IDPMetadata, SignatureMethod: method}}
}

func bindingName(b string) string { return b[strings.LastIndexByte(b, ':')+1:] }

// child is el's first child element with the local name tag.
func child(el *etree.Element, tag string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == tag {
			return c
		}
	}
	return nil
}

func setNameID(t testing.TB, root *etree.Element, v string) {
	t.Helper()
	n := root.FindElement("./Subject/NameID")
	if n == nil {
		t.Fatal("no Subject/NameID")
	}
	n.SetText(v)
}

// commentNameID makes the NameID "ali<!---->ce".
func commentNameID(t testing.TB, root *etree.Element) {
	t.Helper()
	n := root.FindElement("./Subject/NameID")
	if n == nil {
		t.Fatal("no Subject/NameID")
	}
	for _, c := range slices.Clone(n.Child) {
		n.RemoveChild(c)
	}
	n.CreateText("ali")
	n.CreateComment("")
	n.CreateText("ce")
}

// insertAfterIssuer puts c right after root's Issuer (first if none).
func insertAfterIssuer(root, c *etree.Element) {
	at := 0
	if iss := child(root, "Issuer"); iss != nil {
		at = iss.Index() + 1
	}
	root.InsertChildAt(at, c)
}

func parseXML(t testing.TB, raw []byte) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	return doc.Root()
}

func xmlBytes(t testing.TB, el *etree.Element) []byte { return samltest.ElementBytes(t, el) }

// editXML parses raw, lets edit change its root, and serializes it again.
func editXML(t testing.TB, raw []byte, edit func(*etree.Element)) []byte {
	t.Helper()
	root := parseXML(t, raw)
	edit(root)
	return xmlBytes(t, root)
}

// signEnveloped returns a copy of el with an enveloped XML signature, as
// an SP makes it (exclusive c14n, the certificate in KeyInfo), after the
// Issuer, or first. The signature is made over another copy: goxmldsig's
// canonicalizer changes what it reads (it drops comments).
func signEnveloped(t testing.TB, key crypto.Signer, cert *x509.Certificate, method string, el *etree.Element) *etree.Element {
	t.Helper()
	ctx, err := dsig.NewSigningContext(key, [][]byte{cert.Raw})
	if err != nil {
		t.Fatal(err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(method); err != nil {
		t.Fatal(err)
	}
	sig, err := ctx.ConstructSignature(el.Copy(), true)
	if err != nil {
		t.Fatal(err)
	}
	out := el.Copy()
	insertAfterIssuer(out, sig)
	return out
}

// signInPlace signs root (which must have an ID) and puts the signature in.
func signInPlace(t testing.TB, root *etree.Element, key crypto.Signer, cert *x509.Certificate, method string) {
	t.Helper()
	insertAfterIssuer(root, child(signEnveloped(t, key, cert, method, root), "Signature"))
}

// resignSignedInfo signs the SignedInfo of root's Signature again with key
// (RSA-SHA256), after a test changed it, the way goxmldsig signs: the
// SignedInfo detached with the namespaces in scope, exclusive c14n.
func resignSignedInfo(t testing.TB, key crypto.Signer, root *etree.Element) {
	t.Helper()
	sig := child(root, "Signature")
	si := child(sig, "SignedInfo")
	ctx, err := etreeutils.NSBuildParentContext(si)
	if err != nil {
		t.Fatal(err)
	}
	detached, err := etreeutils.NSDetatch(ctx, si)
	if err != nil {
		t.Fatal(err)
	}
	canon, err := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("").Canonicalize(detached)
	if err != nil {
		t.Fatal(err)
	}
	h := crypto.SHA256.New()
	h.Write(canon)
	sv, err := key.Sign(rand.Reader, h.Sum(nil), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	child(sig, "SignatureValue").SetText(base64.StdEncoding.EncodeToString(sv))
}

// deflate is raw DEFLATE, as the HTTP-Redirect binding sends.
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

// redirectQuery is the query of an HTTP-Redirect binding message: the
// encoded SAMLRequest, RelayState if not "", and with sigAlg a query
// signature by key over the parameters as written (saml-bindings §3.4.4.1).
func redirectQuery(t testing.TB, samlRequest, relayState, sigAlg string, key crypto.Signer) string {
	t.Helper()
	q := buildRedirectQuery(samlRequest, relayState, sigAlg, "", "")
	if sigAlg == "" {
		return q
	}
	return buildRedirectQuery(samlRequest, relayState, sigAlg, querySignature(t, key, sigAlg, q), "")
}

// buildRedirectQuery writes the parameters that are not "" in the order
// the binding signs them, then extra (raw) if not "".
func buildRedirectQuery(samlRequest, relayState, sigAlg, signature, extra string) string {
	q := "SAMLRequest=" + url.QueryEscape(samlRequest)
	if relayState != "" {
		q += "&RelayState=" + url.QueryEscape(relayState)
	}
	if sigAlg != "" {
		q += "&SigAlg=" + url.QueryEscape(sigAlg)
	}
	if signature != "" {
		q += "&Signature=" + url.QueryEscape(signature)
	}
	if extra != "" {
		q += "&" + extra
	}
	return q
}

// querySignature is the base64 Signature parameter over signed (the query
// up to SigAlg) with sigAlg (rsa-sha256 or rsa-sha1).
func querySignature(t testing.TB, key crypto.Signer, sigAlg, signed string) string {
	t.Helper()
	hash := crypto.SHA256
	if sigAlg == dsig.RSASHA1SignatureMethod {
		hash = crypto.SHA1
	}
	h := hash.New()
	h.Write([]byte(signed))
	sig, err := key.Sign(rand.Reader, h.Sum(nil), hash)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// setRawParam replaces the raw value of the query parameter name.
func setRawParam(t testing.TB, q, name, raw string) string {
	t.Helper()
	pairs := strings.Split(q, "&")
	for i, p := range pairs {
		if k, _, _ := strings.Cut(p, "="); k == name {
			pairs[i] = name + "=" + raw
			return strings.Join(pairs, "&")
		}
	}
	t.Fatalf("no %s in %s", name, q)
	return ""
}

func dropRawParam(t testing.TB, q, name string) string {
	t.Helper()
	pairs := strings.Split(q, "&")
	for i, p := range pairs {
		if k, _, _ := strings.Cut(p, "="); k == name {
			return strings.Join(append(pairs[:i:i], pairs[i+1:]...), "&")
		}
	}
	t.Fatalf("no %s in %s", name, q)
	return ""
}

var (
	autoPostActionRE = regexp.MustCompile(`<form[^>]*\baction="([^"]*)"`)
	autoPostFieldRE  = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// autoPostForm reads keystep's auto-posting page: where it posts and what.
func autoPostForm(body string) (string, url.Values) {
	m := autoPostActionRE.FindStringSubmatch(body)
	if m == nil {
		return "", nil
	}
	fields := url.Values{}
	for _, f := range autoPostFieldRE.FindAllStringSubmatch(body, -1) {
		fields.Add(html.UnescapeString(f[1]), html.UnescapeString(f[2]))
	}
	return html.UnescapeString(m[1]), fields
}
