package samlidp

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/crewjam/saml"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/provider/internal/keyring"
	"github.com/keystep/keystep/provider/samlidp/samltest"
)

// BenchmarkSAMLAssertion measures what keystep does for each successful
// SAML sign-in once the step is approved: make the assertion, sign it (and
// encrypt it for an SP that asks), sign the Response and encode the form.
// The XML signature dominates.
func BenchmarkSAMLAssertion(b *testing.B) {
	cases := []struct {
		name    string
		alg     keyring.Alg
		encrypt bool
	}{
		{"RS256", keyring.RS256, false},
		{"RS256-encrypted", keyring.RS256, true},
		{"ES256", keyring.ES256, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p, s := benchProvider(b, c.alg, c.encrypt)
			ctx := context.Background()
			meta, err := s.metadata(time.Now())
			if err != nil {
				b.Fatal(err)
			}
			a := flows.Account{ID: "acct", Username: "alice"}
			data := &requestData{NameID: &saml.NameID{Value: "alice"}}
			hr := httptest.NewRequest("POST", "/step/x/finish", nil)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				now := time.Now()
				idp, err := p.idpFor(ctx, s, now)
				if err != nil {
					b.Fatal(err)
				}
				req := &saml.IdpAuthnRequest{IDP: idp, HTTPRequest: hr, ServiceProviderMetadata: meta, Now: now,
					Request:         saml.AuthnRequest{ID: "id-1", Subject: &saml.Subject{NameID: &saml.NameID{Value: "alice"}}},
					SPSSODescriptor: &meta.SPSSODescriptors[0], ACSEndpoint: &meta.SPSSODescriptors[0].AssertionConsumerServices[0]}
				if err := (maker{p}).MakeAssertion(req, p.session(s, a, data, ClassDevice, now, "x")); err != nil {
					b.Fatal(err)
				}
				if _, err := req.PostBinding(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "assertions/s")
		})
	}
}

func benchProvider(b *testing.B, alg keyring.Alg, encrypt bool) (*Provider, *sp) {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "keystep.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	svc, err := flows.New(st, flows.Config{Origin: "https://keystep.example.com",
		CodeConfig: flows.CodeConfig{CodeKey: []byte("keystep-bench-code-key-0123456789abcdef")}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close() })
	tsp := samltest.NewSP(b, samltest.Options{BaseURL: "https://sp.example.com", Encrypt: encrypt})
	p, err := New(Options{Flows: svc, PublicURL: "https://keystep.example.com", Secret: []byte("keystep-bench-code-key-0123456789abcdef"),
		ServiceProviders: []SPConfig{{ID: "sp", EntityID: tsp.EntityID, MetadataFile: tsp.MetadataFile, SigningAlg: alg}},
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Reload(ctx); err != nil {
		b.Fatal(err)
	}
	return p, p.sps[0]
}
