package oidcop

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/keystep/keystep/flows"
)

// Authentication context classes keystep asserts. keystep is one factor,
// possession, added to the host's own first factor: none of them says mfa.
const (
	// ACRDevice: a registered device's key approved the sign-in (push, QR).
	ACRDevice = "urn:keystep:acr:device"
	// ACRCode: a one-time code proved possession of a phone or mailbox,
	// or an administrator vouched with an override code.
	ACRCode = "urn:keystep:acr:code"
	// ACRPossessionOrInherence is the class Microsoft Entra ID asks an
	// external authentication method for.
	ACRPossessionOrInherence = "possessionorinherence"
)

// ACRValuesSupported are the classes discovery lists.
var ACRValuesSupported = []string{ACRDevice, ACRCode, ACRPossessionOrInherence}

// acrMethods says which methods satisfy each class.
var acrMethods = map[string][]flows.Method{
	ACRDevice:                {flows.MethodPush, flows.MethodQR},
	ACRCode:                  {flows.MethodPush, flows.MethodQR, flows.MethodSMS, flows.MethodEmail, flows.MethodOverride},
	ACRPossessionOrInherence: {flows.MethodPush, flows.MethodQR, flows.MethodSMS, flows.MethodEmail, flows.MethodOverride},
}

// amrOf is the RFC 8176 amr value of a method; deviceAMR is the client's
// choice for a device key (pop, swk or hwk).
func amrOf(m flows.Method, deviceAMR string) string {
	switch m {
	case flows.MethodPush, flows.MethodQR:
		return deviceAMR
	case flows.MethodSMS:
		return "sms"
	}
	return "otp" // email and override codes
}

// acrOf is the class a method earns when nothing was asked for.
func acrOf(m flows.Method) string {
	if m == flows.MethodPush || m == flows.MethodQR {
		return ACRDevice
	}
	return ACRCode
}

// claimRequest is one member of the claims parameter (OpenID Connect Core
// §5.5.1): {"essential": true, "values": [...]} or {"value": "..."}.
type claimRequest struct {
	Essential bool     `json:"essential"`
	Value     *string  `json:"value"`
	Values    []string `json:"values"`
}

func (c *claimRequest) wanted() []string {
	if c == nil {
		return nil
	}
	if c.Value != nil {
		return []string{*c.Value}
	}
	return c.Values
}

// claimsParam is the part of the claims parameter keystep acts on.
type claimsParam struct {
	IDToken map[string]*claimRequest `json:"id_token"`
}

// maxClaimsLen bounds the claims parameter.
const maxClaimsLen = 8 << 10

// errBadClaims is a claims parameter that cannot be read (invalid_request),
// as opposed to one that cannot be met (access_denied).
var errBadClaims = errors.New("the claims parameter cannot be read")

// stepPolicy is what a request asks of the step: which methods may run,
// and what acr and amr the answer may carry.
type stepPolicy struct {
	Methods      []flows.Method `json:"methods"`
	ACRValues    []string       `json:"acr_values,omitempty"`    // voluntary, in preference order
	EssentialACR []string       `json:"essential_acr,omitempty"` // one of these, or fail
	AMRValues    []string       `json:"amr_values,omitempty"`    // the amr must be one of these (empty: any)
	OneACR       bool           `json:"one_acr,omitempty"`       // Entra: exactly one acr, one amr
	DeviceAMR    string         `json:"device_amr"`
}

// parsePolicy reads acr_values and the claims parameter against the
// client's methods. An essential acr or amr that none of the client's
// methods can give is an error (the request fails as OpenID Connect Core
// §5.5.1.1 says); a voluntary one only steers the choice.
func parsePolicy(c *ClientConfig, acrValues []string, claims string) (stepPolicy, error) {
	p := stepPolicy{Methods: slices.Clone(c.Methods), ACRValues: acrValues, DeviceAMR: c.DeviceAMR, OneACR: c.Profile == ProfileEntra}
	if len(claims) > maxClaimsLen {
		return p, fmt.Errorf("%w: it is longer than %d bytes", errBadClaims, maxClaimsLen)
	}
	if claims != "" {
		var cp claimsParam
		if err := json.Unmarshal([]byte(claims), &cp); err != nil {
			return p, fmt.Errorf("%w: it is not valid JSON of the right shape: %v", errBadClaims, err)
		}
		if acr := cp.IDToken["acr"]; acr != nil {
			if acr.Essential {
				p.EssentialACR = acr.wanted()
			} else {
				p.ACRValues = append(acr.wanted(), p.ACRValues...)
			}
		}
		if amr := cp.IDToken["amr"]; amr != nil && amr.Essential {
			p.AMRValues = amr.wanted()
		}
	}
	if len(p.EssentialACR) > 0 {
		p.Methods = slices.DeleteFunc(p.Methods, func(m flows.Method) bool {
			return !slices.ContainsFunc(p.EssentialACR, func(acr string) bool { return slices.Contains(acrMethods[acr], m) })
		})
		if len(p.Methods) == 0 {
			return p, errors.New("none of the requested acr values can be met")
		}
	}
	if len(p.AMRValues) > 0 {
		p.Methods = slices.DeleteFunc(p.Methods, func(m flows.Method) bool { return !slices.Contains(p.AMRValues, amrOf(m, p.DeviceAMR)) })
		if len(p.Methods) == 0 {
			return p, errors.New("none of the requested amr values can be met")
		}
	}
	return p, nil
}

// result is the acr and amr of a sign-in decided by method m.
func (p stepPolicy) result(m flows.Method) (acr string, amr []string, err error) {
	if !slices.Contains(p.Methods, m) {
		return "", nil, fmt.Errorf("method %s was not open for this request", m)
	}
	amr = []string{amrOf(m, p.DeviceAMR)}
	for _, list := range [][]string{p.EssentialACR, p.ACRValues} {
		for _, a := range list {
			if slices.Contains(acrMethods[a], m) {
				return a, amr, nil
			}
		}
	}
	if len(p.EssentialACR) > 0 {
		return "", nil, fmt.Errorf("method %s meets none of the essential acr values", m)
	}
	return acrOf(m), amr, nil
}
