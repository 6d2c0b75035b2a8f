package directory

import (
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// FuzzMapperEntry feeds arbitrary attribute values to the mappers of both
// presets: no panic, and an entry mapped without error is one flows
// accepts (so a hostile or broken directory value is refused when mapped,
// never half-applied later).
func FuzzMapperEntry(f *testing.F) {
	f.Add([]byte("0b0a0c0d-1111-2222-3333-444455556666"), "alice", "alice@example.org", "+1 (555) 010-2000", "Alice A", "512", "0", "")
	f.Add([]byte{0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8}, "bob", "not an address", "12", "Bob\u202e", "514", "9223372036854775807", "000001010000Z")
	f.Add([]byte(""), " ", "", "", "\x00", "x", "-1", "20991231235959Z")
	f.Add([]byte("../etc"), "a b", "a@b", "+00000000", "\u2028", "18446744073709551617", "133000000000000000", "TRUE")
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	ad, err := newMapper(SourceConfig{Name: "ad", Suspension: Suspension{Preset: PresetActiveDir, Lockout: true}}.withDefaults())
	if err != nil {
		f.Fatal(err)
	}
	ol, err := newMapper(SourceConfig{Name: "ol", Suspension: Suspension{Preset: PresetOpenLDAP, Lockout: true, Filter: "(employeeType=x*)"}}.withDefaults())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id []byte, user, mail, phone, display, uac, expires, locked string) {
		e := ldap.NewEntry("cn=x,dc=example,dc=org", nil)
		add := func(name string, raw []byte) {
			e.Attributes = append(e.Attributes, &ldap.EntryAttribute{Name: name, Values: []string{string(raw)}, ByteValues: [][]byte{raw}})
		}
		add("objectGUID", id)
		add("entryUUID", id)
		for name, v := range map[string]string{
			"sAMAccountName": user, "uid": user, "mail": mail, "mobile": phone, "displayName": display,
			"userAccountControl": uac, "accountExpires": expires, "lockoutTime": expires,
			"msDS-User-Account-Control-Computed": uac, "pwdAccountLockedTime": locked, "employeeType": locked,
		} {
			add(name, []byte(v))
		}
		for _, m := range []*mapper{ad, ol} {
			de, err := m.entry(e, now)
			if err != nil {
				continue
			}
			if err := de.Check(); err != nil {
				t.Fatalf("mapped %+v, which flows refuses: %v", de, err)
			}
		}
	})
}
