package directory

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// toFiletime converts a time to a Windows FILETIME.
func toFiletime(t time.Time) int64 {
	return (t.Unix()+filetimeUnixOffset)*filetimeTicksPerSec + int64(t.Nanosecond()/100)
}

func TestFiletime(t *testing.T) {
	tests := []struct {
		ft   int64
		want time.Time
	}{
		{1, time.Date(1601, 1, 1, 0, 0, 0, 100, time.UTC)},
		{116444736000000000, time.Unix(0, 0).UTC()},
		{133485408000000000, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
		{133485408000000001, time.Date(2024, 1, 1, 0, 0, 0, 100, time.UTC)},
		{filetimeNever - 1, time.Date(30828, 9, 14, 2, 48, 5, 477580600, time.UTC)},
	}
	for _, tt := range tests {
		if got := filetimeToTime(tt.ft); !got.Equal(tt.want) {
			t.Errorf("filetimeToTime(%d) = %v, want %v", tt.ft, got, tt.want)
		}
	}
	now := time.Date(2025, 6, 1, 12, 0, 0, 123456700, time.UTC)
	if got := filetimeToTime(toFiletime(now)); !got.Equal(now) {
		t.Errorf("round trip: %v, want %v", got, now)
	}
}

func TestRules(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	ft := func(t time.Time) string { return strconv.FormatInt(toFiletime(t), 10) }
	type tc struct {
		name   string
		susp   Suspension
		entry  []string // testEntry pairs
		reason string   // "" = active
		warn   string   // part of the warning, "" = none
	}
	ad := Suspension{Preset: PresetActiveDir}
	adLock := Suspension{Preset: PresetActiveDir, Lockout: true}
	pp := Suspension{Preset: PresetOpenLDAP}
	ppLock := Suspension{Preset: PresetOpenLDAP, Lockout: true}
	ds := Suspension{Preset: Preset389DS}
	tests := []tc{
		// Active Directory: disabled
		{"ad enabled", ad, []string{"userAccountControl", "512"}, "", ""},
		{"ad disabled", ad, []string{"userAccountControl", "514"}, reasonADDisabled, ""},
		{"ad disabled only bit", ad, []string{"userAccountControl", "2"}, reasonADDisabled, ""},
		{"ad disabled spaces", ad, []string{"userAccountControl", " 66050 "}, reasonADDisabled, ""},
		{"ad no uac", ad, nil, "", ""},
		{"ad bad uac", ad, []string{"userAccountControl", "x"}, "", "userAccountControl"},
		{"ad uac name case", ad, []string{"USERACCOUNTCONTROL", "514"}, reasonADDisabled, ""},
		// Active Directory: expiry
		{"ad never 0", ad, []string{"accountExpires", "0"}, "", ""},
		{"ad never max", ad, []string{"accountExpires", "9223372036854775807"}, "", ""},
		{"ad expires future", ad, []string{"accountExpires", ft(now.Add(time.Second))}, "", ""},
		{"ad expires 100ns ahead", ad, []string{"accountExpires", strconv.FormatInt(toFiletime(now)+1, 10)}, "", ""},
		{"ad expires now", ad, []string{"accountExpires", ft(now)}, reasonADExpired, ""},
		{"ad expired 100ns ago", ad, []string{"accountExpires", strconv.FormatInt(toFiletime(now)-1, 10)}, reasonADExpired, ""},
		{"ad expired long ago", ad, []string{"accountExpires", "1"}, reasonADExpired, ""},
		{"ad expires max-1", ad, []string{"accountExpires", "9223372036854775806"}, "", ""},
		{"ad expires bad", ad, []string{"accountExpires", "soon"}, "", "accountExpires"},
		{"ad expires negative", ad, []string{"accountExpires", "-1"}, "", "accountExpires"},
		{"ad expires overflow", ad, []string{"accountExpires", "9223372036854775808"}, "", "accountExpires"},
		{"ad expires empty", ad, []string{"accountExpires", ""}, "", "accountExpires"},
		{"ad disabled and expired", ad, []string{"userAccountControl", "514", "|", "accountExpires", "1"}, reasonADDisabled, ""},
		{"ad bad uac, expired", ad, []string{"userAccountControl", "x", "|", "accountExpires", "1"}, reasonADExpired, "userAccountControl"},
		// Active Directory: lockout
		{"ad locked, lockout off", ad, []string{"msDS-User-Account-Control-Computed", "16"}, "", ""},
		{"ad locked", adLock, []string{"msDS-User-Account-Control-Computed", "16"}, reasonADLockedOut, ""},
		{"ad computed other bits", adLock, []string{"msDS-User-Account-Control-Computed", "8388608"}, "", ""},
		{"ad computed wins over lockoutTime", adLock, []string{"msDS-User-Account-Control-Computed", "0", "|", "lockoutTime", "133485408000000000"}, "", ""},
		{"ad lockoutTime fallback", adLock, []string{"lockoutTime", "133485408000000000"}, reasonADLockedOut, ""},
		{"ad lockoutTime 0", adLock, []string{"lockoutTime", "0"}, "", ""},
		{"ad lockoutTime fallback, lockout off", ad, []string{"lockoutTime", "133485408000000000"}, "", ""},
		{"ad computed bad", adLock, []string{"msDS-User-Account-Control-Computed", "?"}, "", "msDS-User-Account-Control-Computed"},
		{"ad lockoutTime bad", adLock, []string{"lockoutTime", "?"}, "", "lockoutTime"},
		{"ad expired and locked", adLock, []string{"accountExpires", "1", "|", "lockoutTime", "5"}, reasonADExpired, ""},
		// OpenLDAP ppolicy
		{"pp none", pp, nil, "", ""},
		{"pp admin lock", pp, []string{"pwdAccountLockedTime", "000001010000Z"}, reasonPPolicyAdmin, ""},
		{"pp admin lock, lockout on", ppLock, []string{"pwdAccountLockedTime", "000001010000Z"}, reasonPPolicyAdmin, ""},
		{"pp lockout off", pp, []string{"pwdAccountLockedTime", "20250601115500Z"}, "", ""},
		{"pp lockout on", ppLock, []string{"pwdAccountLockedTime", "20250601115500Z"}, reasonPPolicyLocked, ""},
		{"pp lockout on, odd value", ppLock, []string{"pwdAccountLockedTime", "garbage"}, reasonPPolicyLocked, ""},
		{"pp ignores AD", pp, []string{"userAccountControl", "514"}, "", ""},
		// 389-DS
		{"389 TRUE", ds, []string{"nsAccountLock", "TRUE"}, reason389Locked, ""},
		{"389 true", ds, []string{"nsAccountLock", "true"}, reason389Locked, ""},
		{"389 True spaced", ds, []string{"nsaccountlock", " True "}, reason389Locked, ""},
		{"389 FALSE", ds, []string{"nsAccountLock", "FALSE"}, "", ""},
		{"389 absent", ds, nil, "", ""},
		{"389 ignores ppolicy", ds, []string{"pwdAccountLockedTime", "000001010000Z"}, "", ""},
		// none and the filter
		{"none", Suspension{}, []string{"userAccountControl", "514", "|", "nsAccountLock", "TRUE"}, "", ""},
		{"none explicit", Suspension{Preset: PresetNone}, []string{"nsAccountLock", "TRUE"}, "", ""},
		{"filter match", Suspension{Filter: "(employeeType=contractor)"}, []string{"employeeType", "Contractor"}, reasonFilter, ""},
		{"filter no match", Suspension{Filter: "(employeeType=contractor)"}, []string{"employeeType", "staff"}, "", ""},
		{"filter with preset", Suspension{Preset: Preset389DS, Filter: "(!(memberOf=cn=staff,dc=x))"}, []string{"nsAccountLock", "false"}, reasonFilter, ""},
		{"preset first", Suspension{Preset: Preset389DS, Filter: "(uid=*)"}, []string{"nsAccountLock", "true", "|", "uid", "a"}, reason389Locked, ""},
		{"ad filter bitwise", Suspension{Preset: PresetNone, Filter: "(userAccountControl:1.2.840.113556.1.4.803:=2)"}, []string{"userAccountControl", "514"}, reasonFilter, ""},
		{"ad warn then filter", Suspension{Preset: PresetActiveDir, Filter: "(title=x)"}, []string{"accountExpires", "bad", "|", "title", "X"}, reasonFilter, "accountExpires"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := newRules(tt.susp)
			if err != nil {
				t.Fatal(err)
			}
			state, reason, warn := r.evaluate(testEntry("cn=u", tt.entry...), now)
			wantState := flows.AccountActive
			if tt.reason != "" {
				wantState = flows.AccountSuspended
			}
			if state != wantState || reason != tt.reason {
				t.Errorf("evaluate = %s %q, want %s %q", state, reason, wantState, tt.reason)
			}
			switch {
			case tt.warn == "" && warn != nil:
				t.Errorf("unexpected warning %v", warn)
			case tt.warn != "" && (warn == nil || !strings.Contains(warn.Error(), tt.warn)):
				t.Errorf("warning %v, want one about %s", warn, tt.warn)
			}
		})
	}
}

func TestRulesErrors(t *testing.T) {
	for _, s := range []Suspension{
		{Preset: "ActiveDirectory"},
		{Preset: "freeipa"},
		{Preset: "AD"},
		{Filter: "(bad"},
		{Preset: PresetNone, Filter: "(memberOf:1.2.840.113556.1.4.1941:=cn=x)"},
	} {
		if _, err := newRules(s); err == nil {
			t.Errorf("newRules(%+v) succeeded", s)
		}
	}
}

func TestRulesAttributes(t *testing.T) {
	tests := []struct {
		s    Suspension
		want []string
	}{
		{Suspension{}, nil},
		{Suspension{Preset: PresetActiveDir}, []string{"userAccountControl", "accountExpires"}},
		{Suspension{Preset: PresetActiveDir, Lockout: true}, []string{"userAccountControl", "accountExpires", "msDS-User-Account-Control-Computed", "lockoutTime"}},
		{Suspension{Preset: PresetOpenLDAP}, []string{"pwdAccountLockedTime"}},
		{Suspension{Preset: Preset389DS, Filter: "(&(nsaccountlock=x)(title=y))"}, []string{"nsAccountLock", "title"}},
	}
	for _, tt := range tests {
		r, err := newRules(tt.s)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.attributes(); !slices.Equal(got, tt.want) {
			t.Errorf("%+v: attributes = %q, want %q", tt.s, got, tt.want)
		}
	}
}

func TestRulesAllocations(t *testing.T) {
	r, err := newRules(Suspension{Preset: PresetActiveDir, Lockout: true})
	if err != nil {
		t.Fatal(err)
	}
	e := testEntry("cn=u", "userAccountControl", "512", "|", "accountExpires", "9223372036854775807", "|",
		"msDS-User-Account-Control-Computed", "0")
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { r.evaluate(e, now) }); n != 0 {
		t.Errorf("evaluate allocates %v times", n)
	}
}
