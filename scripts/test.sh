#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need
# (redis-server with TLS, redis-cli for the Redis Cluster tests, postgresql
# from Debian's packages) when missing, then vets
# and runs every test with the race detector. Servers are started by the tests
# themselves, on private sockets and free ports.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
if ((${#need[@]})); then
  echo "installing ${need[*]} from Debian's packages" >&2
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

go vet ./...
# The chaos suite runs apart (scripts/chaos.sh); CI keeps it compiling.
go vet -tags chaos ./internal/chaos/
go test -race -shuffle=on -count=1 -timeout 15m ./...
