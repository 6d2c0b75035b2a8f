package samlidp

import (
	"crypto"
	"crypto/ecdsa"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
)

// rawECDSA is an ECDSA signer whose signatures are the fixed-width r‖s
// that XML Signature specifies for ecdsa-sha256 (XML-DSig 1.1 §6.4.3), not
// the ASN.1 DER that crypto.Signer returns and goxmldsig writes as is.
// xmlsec1 (Shibboleth, SimpleSAMLphp's xmlseclibs and others build on the
// same rule) refuses DER; goxmldsig up to v1.6.1 verifies only DER, so SPs
// built on it cannot verify keystep's ES256 signatures: RS256 stays the
// default.
type rawECDSA struct{ crypto.Signer }

// Sign signs digest and re-encodes the signature as r‖s.
func (s rawECDSA) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	der, err := s.Signer.Sign(rand, digest, opts)
	if err != nil {
		return nil, err
	}
	pub, ok := s.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("ecdsa signer: not an ECDSA key")
	}
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) != 0 {
		return nil, errors.New("ecdsa signer: the signature is not DER")
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	out := make([]byte, 2*size)
	sig.R.FillBytes(out[:size])
	sig.S.FillBytes(out[size:])
	return out, nil
}
