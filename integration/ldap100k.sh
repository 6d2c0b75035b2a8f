#!/usr/bin/env bash
# ldap100k.sh writes an LDIF of N inetOrgPerson users for the directory
# benchmarks to load with slapadd (slapdtest.Options.LDIFFile does that).
#
# Usage: integration/ldap100k.sh [N] [OUTPUT] [PARENT_DN]
#   N          number of users, default 100000
#   OUTPUT     file to write, default "-" (stdout)
#   PARENT_DN  where the users go, default ou=people,dc=example,dc=org
#
# The entries are the ones slapdtest.UsersLDIF makes (a test in
# internal/slapdtest checks that they stay the same), numbered 1 to N:
#
#   dn: uid=user000001,ou=people,dc=example,dc=org
#   objectClass: inetOrgPerson
#   uid: user000001
#   cn: User 000001
#   sn: 000001
#   displayName: User 000001
#   mail: user000001@example.org
#   mobile: +15550000001
#   userPassword: user-secret-1      (slapdtest.UserPassword, clear text)
#
# 100,000 users take well under a second and 22 MB, e.g.
#   integration/ldap100k.sh 100000 /tmp/users.ldif
set -euo pipefail

n=${1:-100000}
out=${2:--}
parent=${3:-ou=people,dc=example,dc=org}

case $n in
'' | *[!0-9]*)
	echo "usage: $0 [N] [OUTPUT] [PARENT_DN]: N must be a number, got '$n'" >&2
	exit 2
	;;
esac
if [ "$out" != - ]; then
	exec >"$out"
fi

awk -v n="$n" -v parent="$parent" -v pw="user-secret-1" 'BEGIN {
	for (i = 1; i <= n; i++) {
		printf "dn: uid=user%06d,%s\nobjectClass: inetOrgPerson\nuid: user%06d\ncn: User %06d\nsn: %06d\ndisplayName: User %06d\nmail: user%06d@example.org\nmobile: +1555%07d\nuserPassword: %s\n\n", i, parent, i, i, i, i, i, i, pw
	}
}'
