package directory

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/flows"
)

// Attributes the suspension presets read.
const (
	attrUserAccountControl = "userAccountControl"
	attrAccountExpires     = "accountExpires"
	// attrUACComputed is constructed by Active Directory (and Samba) only
	// when a search asks for it by name.
	attrUACComputed          = "msDS-User-Account-Control-Computed"
	attrLockoutTime          = "lockoutTime"
	attrPwdAccountLockedTime = "pwdAccountLockedTime"
	attrNsAccountLock        = "nsAccountLock"
)

// Bits of userAccountControl and msDS-User-Account-Control-Computed.
const (
	uacAccountDisable = 0x2
	uacLockout        = 0x10
)

// Windows FILETIME: 100-ns intervals since 1601-01-01 UTC.
const (
	filetimeNever       = 0x7FFFFFFFFFFFFFFF // accountExpires: never (as is 0)
	filetimeUnixOffset  = 11644473600        // seconds from 1601-01-01 to 1970-01-01
	filetimeTicksPerSec = 10_000_000
)

// ppolicyAdminLock is the pwdAccountLockedTime of an account locked by an
// administrator until one unlocks it (draft-behera-ldap-password-policy).
const ppolicyAdminLock = "000001010000Z"

// Suspension reasons, as shown to administrators.
const (
	reasonADDisabled    = "disabled in Active Directory"
	reasonADExpired     = "account expired in Active Directory"
	reasonADLockedOut   = "locked out in Active Directory"
	reasonPPolicyAdmin  = "locked by an administrator (ppolicy)"
	reasonPPolicyLocked = "locked out (ppolicy)"
	reason389Locked     = "locked in the directory (nsAccountLock)"
	reasonFilter        = "matches the suspension filter"
)

// rules decides, from an entry's attributes, whether its account is
// suspended: the preset's rules, then the custom filter.
type rules struct {
	preset  string
	lockout bool
	filter  *Matcher // nil: no custom filter
	attrs   []string
}

// newRules compiles a Suspension; an unknown preset or a bad filter is an
// error.
func newRules(s Suspension) (*rules, error) {
	r := &rules{preset: s.Preset, lockout: s.Lockout}
	switch s.Preset {
	case "", PresetNone:
		r.preset = PresetNone
	case PresetActiveDir:
		r.attrs = []string{attrUserAccountControl, attrAccountExpires}
		if s.Lockout {
			r.attrs = append(r.attrs, attrUACComputed, attrLockoutTime)
		}
	case PresetOpenLDAP:
		r.attrs = []string{attrPwdAccountLockedTime}
	case Preset389DS:
		r.attrs = []string{attrNsAccountLock}
	default:
		return nil, fmt.Errorf("unknown suspension preset %q (want %s, %s, %s or %s)",
			s.Preset, PresetNone, PresetActiveDir, PresetOpenLDAP, Preset389DS)
	}
	if s.Filter != "" {
		m, err := CompileMatcher(s.Filter)
		if err != nil {
			return nil, fmt.Errorf("suspension filter: %w", err)
		}
		r.filter = m
		r.attrs = appendAttrs(r.attrs, m.Attributes()...)
	}
	return r, nil
}

// attributes returns the attributes the rules read.
func (r *rules) attributes() []string { return r.attrs }

// evaluate returns the state of the entry's account at now and, when
// suspended, why. A value it cannot read (such as an accountExpires that is
// no number) does not suspend; it is returned as warning, for the caller to
// log, alongside the state the other rules give.
func (r *rules) evaluate(e *ldap.Entry, now time.Time) (state flows.AccountState, reason string, warning error) {
	switch r.preset {
	case PresetActiveDir:
		reason, warning = r.activeDirectory(e, now)
	case PresetOpenLDAP:
		reason = r.ppolicy(e)
	case Preset389DS:
		if v, ok := firstValue(e, attrNsAccountLock); ok && strings.EqualFold(strings.TrimSpace(v), "TRUE") {
			reason = reason389Locked
		}
	}
	if reason == "" && r.filter != nil && r.filter.Match(e) {
		reason = reasonFilter
	}
	if reason != "" {
		return flows.AccountSuspended, reason, warning
	}
	return flows.AccountActive, "", warning
}

// activeDirectory applies the Active Directory preset: disabled, expired,
// then (with Lockout) locked out.
func (r *rules) activeDirectory(e *ldap.Entry, now time.Time) (string, error) {
	var warns []error
	if v, ok := firstValue(e, attrUserAccountControl); ok {
		if uac, ok := parseInt(v); !ok {
			warns = append(warns, fmt.Errorf("%s %q is not a number", attrUserAccountControl, v))
		} else if uac&uacAccountDisable != 0 {
			return reasonADDisabled, nil
		}
	}
	if v, ok := firstValue(e, attrAccountExpires); ok {
		expires, never, err := parseAccountExpires(v)
		switch {
		case err != nil:
			warns = append(warns, err)
		case !never && !expires.After(now):
			return reasonADExpired, errors.Join(warns...)
		}
	}
	if r.lockout {
		locked, err := adLockedOut(e)
		if err != nil {
			warns = append(warns, err)
		}
		if locked {
			return reasonADLockedOut, errors.Join(warns...)
		}
	}
	return "", errors.Join(warns...)
}

// adLockedOut reads the lockout from msDS-User-Account-Control-Computed
// when the entry has it: Active Directory computes it, taking the domain's
// lockout duration into account. A directory that leaves it out (it is a
// constructed attribute) falls back to lockoutTime > 0, which Active
// Directory and Samba set at the lockout and clear at an unlock; it stays
// set past the end of the lockout duration until the next logon, so a user
// whose lockout expired by itself may stay suspended until then.
func adLockedOut(e *ldap.Entry) (bool, error) {
	if v, ok := firstValue(e, attrUACComputed); ok {
		x, ok := parseInt(v)
		if !ok {
			return false, fmt.Errorf("%s %q is not a number", attrUACComputed, v)
		}
		return x&uacLockout != 0, nil
	}
	if v, ok := firstValue(e, attrLockoutTime); ok {
		x, ok := parseInt(v)
		if !ok {
			return false, fmt.Errorf("%s %q is not a number", attrLockoutTime, v)
		}
		return x > 0, nil
	}
	return false, nil
}

// ppolicy applies the OpenLDAP ppolicy preset. An administrator's lock
// (000001010000Z) always suspends; any other pwdAccountLockedTime is a
// lockout after failed binds, which suspends only with Lockout. (OpenLDAP
// keeps pwdAccountLockedTime past the policy's pwdLockoutDuration until the
// next bind, so such a user stays suspended until then.)
func (r *rules) ppolicy(e *ldap.Entry) string {
	v, ok := firstValue(e, attrPwdAccountLockedTime)
	if !ok {
		return ""
	}
	if strings.TrimSpace(v) == ppolicyAdminLock {
		return reasonPPolicyAdmin
	}
	if r.lockout {
		return reasonPPolicyLocked
	}
	return ""
}

// parseAccountExpires reads accountExpires: a Windows FILETIME, with 0 and
// 0x7FFFFFFFFFFFFFFF meaning never.
func parseAccountExpires(v string) (t time.Time, never bool, err error) {
	x, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if perr != nil || x < 0 {
		return time.Time{}, false, fmt.Errorf("%s %q is not a Windows FILETIME: treated as never", attrAccountExpires, v)
	}
	if x == 0 || x == filetimeNever {
		return time.Time{}, true, nil
	}
	return filetimeToTime(x), false, nil
}

// filetimeToTime converts a non-negative FILETIME to a time.
func filetimeToTime(x int64) time.Time {
	return time.Unix(x/filetimeTicksPerSec-filetimeUnixOffset, (x%filetimeTicksPerSec)*100).UTC()
}

// firstValue returns the first value of attribute a.
func firstValue(e *ldap.Entry, a string) (string, bool) {
	vs := attrValues(e, a)
	if len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// appendAttrs appends the attributes of add that list lacks (compared
// case-insensitively).
func appendAttrs(list []string, add ...string) []string {
outer:
	for _, a := range add {
		for _, b := range list {
			if strings.EqualFold(a, b) {
				continue outer
			}
		}
		list = append(list, a)
	}
	return list
}
