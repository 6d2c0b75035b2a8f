#!/usr/bin/env bash
# Runs keystep's whole test suite, the same way CI does.
#
# It installs what the tests talk to when it is missing (on Debian, as root:
# PostgreSQL, Python's aiosmtpd, Chromium for the browser tests), then checks formatting, vet and staticcheck, runs every test
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

need_pkg initdb postgresql
need_pkg_py aiosmtpd python3-aiosmtpd
need_pkg chromium chromium

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
go test -run '^$' -bench . -benchtime 1x -count=1 -timeout 20m ./... >/dev/null

log "all tests passed"
