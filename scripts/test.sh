#!/usr/bin/env bash
# The project's test command (README, `make test`, CI): local services, vet, formatting, then
# every test with the race detector against real PostgreSQL and NATS.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() {
	printf '\n==== %s ====\n' "$*"
}

section "services (PostgreSQL 127.0.0.1:5432, NATS 127.0.0.1:4222)"
bash scripts/services.sh

section "go vet ./..."
go vet ./...
echo "go vet: ok"

section "gofmt -l ."
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "These files are not gofmt-formatted (run 'make fmt'):" >&2
	sed 's/^/  /' <<<"$unformatted" >&2
	exit 1
fi
echo "gofmt: ok"

section "go test -race -count=1 -timeout 30m ./..."
go test -race -count=1 -timeout 30m ./...
