// Package directory will make the company directory (LDAP / Active
// Directory) the source of truth for keystep's accounts: paged full sync,
// incremental sync (RFC 4533 syncrepl, AD DirSync), state mapping rules, the
// mass-removal guard and the live check at sign-in. It imports flows and is
// imported by provider and plugin. Until it lands, accounts are managed
// through the admin API and their state source is "admin".
package directory
