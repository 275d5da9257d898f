#!/usr/bin/env bash
# The chaos suite (internal/chaos, build tag chaos): builds leadconv and runs
# it against a broker process ("leadconv demo --serve", kfake) and a
# redis-server with AOF that it starts itself, through kill -9 of the
# service, a killed member of two, Redis restarted with its AOF and empty,
# the broker frozen for 20 s, a poison set and SIGTERM during a pending
# rebalance. Prints per scenario what was produced, accounted for, lost,
# redelivered and invented, and the time to recover. Takes a few minutes.
#   CHAOS_ONLY=kill9x3,poison  run only those scenarios
#   CHAOS_LOGS=dir             keep the processes' logs there
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null 2>&1 || { echo "redis-server not found: apt-get install -y redis-server" >&2; exit 1; }
exec go test -tags chaos -count=1 -timeout 30m -v -run '^TestChaos$' ./internal/chaos/ "$@"
