package directory

import (
	"crypto/tls"
	"crypto/x509"
	"time"
)

// SourceConfig is one directory source: where it is, how keystep binds to
// it, which entries are users, how their attributes map onto accounts and
// which rules make an account suspended.
type SourceConfig struct {
	// Name identifies the source in the store, the logs and the admin API
	// (letters, digits, '-', '_').
	Name string
	// URLs are tried in order until one answers: ldaps://host[:port] or
	// ldap://host[:port] (which must then use StartTLS unless Insecure).
	URLs []string
	// StartTLS upgrades ldap:// connections with StartTLS (default true
	// for ldap:// URLs unless InsecureNoTLS).
	StartTLS bool
	// InsecureNoTLS allows plain ldap:// without StartTLS (tests and
	// loopback only; refused for other hosts).
	InsecureNoTLS bool
	// RootCAs verify the server's certificate; nil: the system pool.
	RootCAs *x509.CertPool
	// ServerName overrides the name checked in the server's certificate.
	ServerName string
	// ClientCert, when set, authenticates keystep with a TLS client
	// certificate and SASL EXTERNAL instead of a simple bind.
	ClientCert *tls.Certificate
	// BindDN and BindPassword are the simple bind's credentials (the
	// password comes from a file or the environment, never the config
	// file, and is never logged).
	BindDN       string
	BindPassword string
	// BaseDN is where users are searched (subtree).
	BaseDN string
	// UserFilter selects the users, e.g. (objectClass=inetOrgPerson) or
	// (&(objectCategory=person)(objectClass=user)).
	UserFilter string
	// Group, when set, narrows the users to the members of this group
	// (its DN), through memberOf (nested groups too on Active Directory).
	Group string
	// Attributes maps directory attributes onto account fields.
	Attributes AttributeMap
	// Suspension is the rule set that makes an account suspended.
	Suspension Suspension
	// PageSize is the full sync's page size (default 500).
	PageSize int
	// Timeout bounds each LDAP operation (default 30 s) and the dial.
	Timeout time.Duration
	// FullSyncInterval is how often a full sync runs (default 1 h; 0 in
	// the config means the default).
	FullSyncInterval time.Duration
	// Incremental picks the incremental sync: "auto" (syncrepl when the
	// server offers it, DirSync on Active Directory, else none), "syncrepl",
	// "dirsync" or "none".
	Incremental string
	// PollInterval is how often DirSync polls (default 30 s).
	PollInterval time.Duration
	// MaxRemovals is the mass-removal guard: a sync that would remove more
	// than this share of the source's accounts (0.10 by default) stops and
	// changes nothing. MaxRemovalsCount, when positive, is an absolute
	// number used instead of the share.
	MaxRemovals      float64
	MaxRemovalsCount int
	// Invite sends new accounts an enrollment invitation by email.
	Invite bool
	// LiveCheck looks the user up in the directory at each Begin.
	LiveCheck LiveCheckConfig
}

// AttributeMap names the directory attributes that fill an account.
type AttributeMap struct {
	// ID is the stable id: entryUUID (OpenLDAP, 389-DS) or objectGUID
	// (Active Directory). Never the DN: a renamed or moved user stays
	// the same account.
	ID string
	// Username: uid, sAMAccountName or userPrincipalName.
	Username    string
	Email       string // mail
	Phone       string // mobile
	DisplayName string // displayName or cn
}

// Suspension presets.
const (
	PresetNone      = "none" // only the custom filter
	PresetActiveDir = "active_directory"
	PresetOpenLDAP  = "openldap_ppolicy"
	Preset389DS     = "389ds" // also FreeIPA
)

// Suspension is what makes a directory user suspended in keystep.
type Suspension struct {
	// Preset is one of the Preset* names.
	Preset string
	// Lockout also suspends a user locked out for bad passwords (Active
	// Directory's msDS-User-Account-Control-Computed LOCKOUT bit, OpenLDAP
	// ppolicy's temporary lock). Off by default: a lockout is often an
	// attack on the user, not a decision about them.
	Lockout bool
	// Filter, when set, suspends every user that matches it (an LDAP
	// filter evaluated by keystep on the entry's attributes).
	Filter string
}

// LiveCheckConfig is the look-up at sign-in.
type LiveCheckConfig struct {
	Enabled bool
	// Timeout bounds the look-up (default 2 s).
	Timeout time.Duration
	// CacheTTL is how long a look-up's answer is reused (default 30 s).
	CacheTTL time.Duration
	// FailOpen lets a sign-in go on when the directory does not answer
	// (the last synced state decides); default false: it is refused.
	FailOpen bool
}
