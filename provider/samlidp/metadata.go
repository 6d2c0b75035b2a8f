package samlidp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/keystep/keystep/provider/internal/keyring"
)

// Metadata is the IdP's metadata: its entity ID, SSO and SLO endpoints,
// NameID formats, whether it wants signed requests, and every published
// signing certificate, the one that signs now first and then the next key
// (published before it signs, so SPs that refresh trust it in time) and
// the retiring ones. It offers no encryption key: keystep decrypts nothing.
func (p *Provider) Metadata(ctx context.Context) (*saml.EntityDescriptor, *keyring.Key, error) {
	now := p.clock.Now()
	signing, err := p.keys.Signing(ctx, keyring.RS256)
	if err != nil {
		return nil, nil, fmt.Errorf("saml signing key: %w", err)
	}
	keys, err := p.keys.Current(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("saml signing keys: %w", err)
	}
	idp := p.baseIDP(now)
	idp.Signer, idp.Certificate = signing.Signer, signing.Cert
	for _, k := range keys {
		if k.ID != signing.ID {
			idp.ExtraCertificates = append(idp.ExtraCertificates, k.Cert)
		}
	}
	ed := idp.Metadata()
	d := &ed.IDPSSODescriptors[0]
	d.KeyDescriptors = slices.DeleteFunc(d.KeyDescriptors, func(kd saml.KeyDescriptor) bool { return kd.Use == "encryption" })
	return ed, signing, nil
}

// metadataCache keeps the signed metadata for a while: signing it costs an
// RSA signature, and anyone may fetch it.
type metadataCache struct {
	mu    sync.Mutex
	keys  string // the published key ids it was made with
	until time.Time
	body  []byte
}

// metadataFresh is how long a signed metadata document is served again
// (its Cache-Control max-age).
const metadataFresh = 5 * time.Minute

func (p *Provider) serveMetadata(w http.ResponseWriter, r *http.Request) {
	keys, err := p.keys.Current(r.Context())
	if err != nil {
		p.internalError(w, "metadata", err)
		return
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	now := p.clock.Now()
	c := &p.metaCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if key := strings.Join(ids, " "); c.body == nil || c.keys != key || !now.Before(c.until) {
		body, err := p.metadataBody(r.Context())
		if err != nil {
			p.internalError(w, "metadata", err)
			return
		}
		c.keys, c.until, c.body = key, now.Add(metadataFresh), body
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(c.body)
}

// metadataBody is the metadata document, signed unless configured not to.
func (p *Provider) metadataBody(ctx context.Context) ([]byte, error) {
	ed, signing, err := p.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	var out []byte
	if p.signMeta {
		el, err := signMetadata(ed, signing)
		if err != nil {
			return nil, fmt.Errorf("sign the metadata: %w", err)
		}
		doc := etree.NewDocument()
		doc.SetRoot(el)
		if out, err = doc.WriteToBytes(); err != nil {
			return nil, fmt.Errorf("write the metadata: %w", err)
		}
	} else if out, err = xml.MarshalIndent(ed, "", "  "); err != nil {
		return nil, fmt.Errorf("write the metadata: %w", err)
	}
	return append([]byte(xml.Header), out...), nil
}

// signMetadata signs the metadata on its root element with RSA-SHA256 and
// exclusive canonicalization. The element must be written as it is.
func signMetadata(ed *saml.EntityDescriptor, k *keyring.Key) (*etree.Element, error) {
	unsigned := *ed
	unsigned.Signature = nil
	if unsigned.ID == "" {
		var b [20]byte
		_, _ = rand.Read(b[:])
		unsigned.ID = "id-" + hex.EncodeToString(b[:])
	}
	buf, err := xml.Marshal(unsigned)
	if err != nil {
		return nil, err
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(buf); err != nil {
		return nil, err
	}
	ctx, err := signingContext(k)
	if err != nil {
		return nil, err
	}
	el := doc.Root()
	sig, err := ctx.ConstructSignature(el, true)
	if err != nil {
		return nil, err
	}
	el.InsertChildAt(0, sig) // the schema wants ds:Signature first
	return el, nil
}

// signingContext is an XML signature context for k, an RSA key (the
// metadata is always signed with RS256).
func signingContext(k *keyring.Key) (*dsig.SigningContext, error) {
	ctx, err := dsig.NewSigningContext(k.Signer, [][]byte{k.Cert.Raw})
	if err != nil {
		return nil, err
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		return nil, err
	}
	return ctx, nil
}
