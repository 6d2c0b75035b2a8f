#!/usr/bin/env bash
# Runs keystep's whole test suite, the same way CI does.
#
# It installs what the tests talk to when it is missing (on Debian, as root:
# PostgreSQL, Python's aiosmtpd, Chromium for the browser tests, SimpleSAMLphp
# with php-cli and php-xml as a second SAML SP, xmlsec1 to check XML
# signatures, protoc to check the plugin contract's generated code), then checks formatting, vet and staticcheck, runs every test
# (with the race detector) and the seed corpora of every fuzz test, and runs
# each benchmark once so none of them rots.
#
# Tests that need PostgreSQL start a private server from the installed
# binaries; set KEYSTEP_TEST_POSTGRES_DSN to use a running one instead.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*" >&2; }

# need_pkg BINARY PACKAGE: install PACKAGE with apt when BINARY is nowhere.
need_pkg() {
	local bin=$1 pkg=$2
	if command -v "$bin" >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/$bin" >/dev/null; then
		return
	fi
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		log "installing $pkg"
		if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
	else
		echo "missing $bin: install the Debian package $pkg" >&2
		exit 1
	fi
}

# need_pkg_py MODULE PACKAGE: install PACKAGE with apt when no python3 can
# import MODULE. It looks where internal/smtptest does: $KEYSTEP_TEST_PYTHON
# when set, else python3 on PATH and /usr/bin/python3 (where Debian's
# python3-* packages go, even when PATH starts with another python3).
need_pkg_py() {
	local mod=$1 pkg=$2 py
	for py in ${KEYSTEP_TEST_PYTHON:-python3 /usr/bin/python3}; do
		if "$py" -c "import $mod" >/dev/null 2>&1; then
			return
		fi
	done
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		log "installing $pkg"
		if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
	else
		echo "missing python module $mod: install the Debian package $pkg" >&2
		exit 1
	fi
}

# need_simplesamlphp: install Debian's SimpleSAMLphp (internal/ssptest runs
# it with php -S) and PHP's dom extension (php-xml) when missing. The
# simplesamlphp package depends on a web server and pulls in apache2: a
# policy-rc.d that refuses every start, written for the install when there is
# none and removed afterwards, keeps apache from starting and taking :80.
need_simplesamlphp() {
	local pkgs=()
	if [ -z "${KEYSTEP_TEST_SIMPLESAMLPHP:-}" ] && [ ! -f /usr/share/simplesamlphp/www/_include.php ]; then
		pkgs+=(simplesamlphp)
	fi
	if ! php -r 'exit(extension_loaded("dom") ? 0 : 1);' >/dev/null 2>&1; then
		pkgs+=(php-xml)
	fi
	install_quietly "${pkgs[@]}"
}

# need_server BINARY PACKAGE: install a package that holds a server (slapd,
# samba) when BINARY is missing, without letting its service start: the
# tests run their own on the ports it would take.
need_server() {
	if command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; then
		return
	fi
	install_quietly "$2"
}

# install_quietly PACKAGE...: apt-get install with a policy-rc.d that
# refuses every service start, written for the install when there is none
# and removed afterwards.
install_quietly() {
	local pkgs=("$@") policy= rc=0
	if [ ${#pkgs[@]} -eq 0 ]; then
		return
	fi
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		log "installing ${pkgs[*]}"
		if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			printf '#!/bin/sh\n# written by keystep scripts/test.sh while it installs packages\nexit 101\n' >/usr/sbin/policy-rc.d
			chmod 755 /usr/sbin/policy-rc.d
			policy=1
		fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null || rc=$?
		if [ -n "$policy" ]; then
			rm -f /usr/sbin/policy-rc.d
		fi
		if [ "$rc" != 0 ]; then
			echo "apt-get install ${pkgs[*]} failed" >&2
			exit "$rc"
		fi
	else
		echo "missing ${pkgs[*]}: install the Debian packages ${pkgs[*]}" >&2
		exit 1
	fi
}

need_pkg initdb postgresql
need_pkg_py aiosmtpd python3-aiosmtpd
need_pkg chromium chromium
need_pkg protoc protobuf-compiler
need_pkg php php-cli
need_pkg xmlsec1 xmlsec1
need_server slapd slapd
need_pkg ldapsearch ldap-utils
need_server samba samba
need_simplesamlphp

# The browser tests save a screenshot of each step page state here.
export KEYSTEP_TEST_ARTIFACTS=${KEYSTEP_TEST_ARTIFACTS:-$PWD/test-artifacts}
mkdir -p "$KEYSTEP_TEST_ARTIFACTS"

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi

log "go vet"
go vet ./...

log "staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

log "go test -race"
go test -race -count=1 -timeout 20m ./...

log "benchmarks, once each"
# (the directory benchmark on 10,000 users instead of 100,000: this run only checks it works)
KEYSTEP_BENCH_DIRECTORY_USERS=${KEYSTEP_BENCH_DIRECTORY_USERS:-10000} \
	go test -run '^$' -bench . -benchtime 1x -count=1 -timeout 20m ./... >/dev/null

log "all tests passed"
