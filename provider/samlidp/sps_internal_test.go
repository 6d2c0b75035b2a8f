package samlidp

import (
	"encoding/xml"
	"os"
	"testing"

	"github.com/crewjam/saml"

	"github.com/keystep/keystep/provider/samlidp/samltest"
)

// TestEncryptionPerDescriptor: with encrypt_assertions required, a
// descriptor without a usable key is dropped, so no assertion goes to its
// ACS unencrypted; with auto, it keeps its ACS and is answered in clear.
func TestEncryptionPerDescriptor(t *testing.T) {
	read := func(o samltest.Options) saml.SPSSODescriptor {
		sp := samltest.NewSP(t, o)
		data, err := os.ReadFile(sp.MetadataFile)
		if err != nil {
			t.Fatal(err)
		}
		var ed saml.EntityDescriptor
		if err := xml.Unmarshal(data, &ed); err != nil {
			t.Fatal(err)
		}
		return ed.SPSSODescriptors[0]
	}
	withKey := read(samltest.Options{BaseURL: "https://a.example", Encrypt: true})
	without := read(samltest.Options{BaseURL: "https://b.example"})
	ed := saml.EntityDescriptor{EntityID: "https://sp.example", SPSSODescriptors: []saml.SPSSODescriptor{withKey, without}}
	data, err := xml.Marshal(ed)
	if err != nil {
		t.Fatal(err)
	}
	for mode, want := range map[string]int{EncryptRequired: 1, EncryptAuto: 2, EncryptNever: 2} {
		c := SPConfig{ID: "sp", EntityID: "https://sp.example", MetadataFile: "x", Encrypt: mode}
		if err := c.check(false); err != nil {
			t.Fatal(err)
		}
		m, err := parseSPMetadata(data, &c, false)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if len(m.SPSSODescriptors) != want {
			t.Errorf("%s: %d descriptors kept, want %d", mode, len(m.SPSSODescriptors), want)
		}
		for _, d := range m.SPSSODescriptors {
			_, encErr := encryptionCert(d.KeyDescriptors)
			if (mode == EncryptRequired) != (encErr == nil) && mode != EncryptAuto {
				t.Errorf("%s: descriptor %s has an encryption key: %v", mode, d.AssertionConsumerServices[0].Location, encErr == nil)
			}
		}
	}
}
