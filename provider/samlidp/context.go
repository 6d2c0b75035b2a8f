package samlidp

import (
	"fmt"
	"maps"

	"github.com/crewjam/saml"

	"github.com/keystep/keystep/flows"
)

// Authentication context classes keystep asserts (the same URIs as the
// OpenID Provider's acr values). keystep is one possession factor added to
// the host's first factor.
const (
	// ClassDevice: a registered device's key approved the sign-in after
	// the user matched the number (push) or scanned the code (QR).
	ClassDevice = "urn:keystep:acr:device"
	// ClassCode: a one-time code proved possession of a phone or mailbox,
	// or an administrator vouched with an override code.
	ClassCode = "urn:keystep:acr:code"
	// ClassREFEDSMFA is the REFEDS multi-factor profile. keystep asserts it
	// only for a service provider whose policy says the host proved a
	// different first factor before it sent the user.
	ClassREFEDSMFA = "https://refeds.org/profile/mfa"
	// ClassREFEDSSFA is the REFEDS single-factor profile.
	ClassREFEDSSFA = "https://refeds.org/profile/sfa"
)

// REFEDS MFA policies of a service provider.
const (
	REFEDSNever     = "never"     // never assert REFEDS MFA (the default)
	REFEDSRequested = "requested" // assert it when the request asks for it
	REFEDSAlways    = "always"    // always assert it
)

// classOf is the class a method earns by default.
func classOf(m flows.Method) string {
	if m == flows.MethodPush || m == flows.MethodQR {
		return ClassDevice
	}
	return ClassCode
}

// strengths ranks authentication context classes for RequestedAuthnContext
// comparisons: the library's table plus keystep's classes. A device
// approval ranks with the hardware-token classes, a code with
// PasswordProtectedTransport; REFEDS MFA above every single factor.
func strengths(extra map[string]int) map[string]int {
	s := saml.DefaultAuthnContextClassStrengths()
	s[ClassCode] = 3
	s[ClassREFEDSSFA] = 3
	s[ClassDevice] = 4
	s[ClassREFEDSMFA] = 6
	maps.Copy(s, extra)
	return s
}

// CheckStrengths refuses ranks an operator may not give: keystep's own
// classes keep their ranks (a code must never pass for a device, nor
// anything for REFEDS MFA), and a rank is 1 to 5 (6 is REFEDS MFA's).
func CheckStrengths(extra map[string]int) error {
	for class, rank := range extra {
		switch class {
		case ClassDevice, ClassCode, ClassREFEDSMFA, ClassREFEDSSFA:
			return fmt.Errorf("authn_context_strengths: %s is keystep's own class; its rank cannot change", class)
		}
		if rank < 1 || rank > 5 {
			return fmt.Errorf("authn_context_strengths: %s: a rank is 1 to 5, not %d", class, rank)
		}
	}
	return nil
}
