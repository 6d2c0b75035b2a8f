#!/usr/bin/env bash
# Regenerates the plugin contract's Go code from step.proto into DIR
# (default: here). Needs protoc (Debian: protobuf-compiler); the two Go
# generators are built at pinned versions into a private directory.
# keystepv1's TestGeneratedCodeIsCurrent runs this into a temporary
# directory and compares.
set -euo pipefail
cd "$(dirname "$0")"
out=$(realpath "${1:-.}")
bin=${XDG_CACHE_HOME:-$HOME/.cache}/keystep/protoc-gen-go-1.36.12-grpc-1.6.2
if [ ! -x "$bin/protoc-gen-go" ] || [ ! -x "$bin/protoc-gen-go-grpc" ]; then
	mkdir -p "$bin"
	GOBIN=$bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	GOBIN=$bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
fi
PATH="$bin:$PATH" protoc -I . --go_out="$out" --go_opt=paths=source_relative \
	--go-grpc_out="$out" --go-grpc_opt=paths=source_relative keystep/v1/step.proto
