#!/usr/bin/env bash
# Accuracy of the matcher on the public data sets (../shared/eval) and on
# generated leads: every data set streamed through the Redis store by
# "leadconv eval", scored by leadconv and, independently, by score.py.
#
#   examples/eval/run.sh            # a private redis-server on a unix socket
#   REDIS_URL=redis://host:6379/0 examples/eval/run.sh
#
# Prints one line per run: data set, rules, leadconv's scores, score.py's.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${LEADCONV_EVAL_DATA:-../shared/eval}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
export GOFLAGS=-mod=mod
go build -o "$OUT/leadconv" ./cmd/leadconv

if [ -z "${REDIS_URL:-}" ]; then
	redis-server --port 0 --unixsocket "$OUT/redis.sock" --save '' --appendonly no \
		--daemonize yes --pidfile "$OUT/redis.pid" --logfile "$OUT/redis.log"
	for _ in $(seq 50); do [ -S "$OUT/redis.sock" ] && break; sleep 0.1; done
	trap 'kill "$(cat "$OUT/redis.pid")"; rm -rf "$OUT"' EXIT
	export REDIS_URL="unix://$OUT/redis.sock"
fi

run() { # name rules format input...
	local name=$1 rules=$2 format=$3 input=$4 cfg=()
	[ "$rules" != default ] && cfg=(--config "examples/eval/$rules")
	local res
	res=$("$OUT/leadconv" eval "${cfg[@]}" --format "$format" --input "$input" \
		--clusters "$OUT/pred.jsonl" --truth "$OUT/truth.jsonl")
	res=${res%%$'\n'*}
	printf '%s\t%s\tleadconv: %s\n\t\tscore.py: %s\n' "$name" "$rules" "$res" \
		"$(python3 "$DATA/score.py" "$OUT/pred.jsonl" "$OUT/truth.jsonl")"
}

F=$DATA/febrl
for n in 1 2 3; do
	run "febrl$n" "febrl$n.yaml" febrl "$F/dataset$n.csv"
	run "febrl$n" defaults_febrl.yaml febrl "$F/dataset$n.csv"
done
run febrl4 febrl4.yaml febrl "$F/dataset4a.csv,$F/dataset4b.csv"
run febrl4 defaults_febrl.yaml febrl "$F/dataset4a.csv,$F/dataset4b.csv"
run fake_1000 fake_1000.yaml csv "$DATA/splink_fake_1000/fake_1000.csv"
run fake_1000 defaults_fake_1000.yaml csv "$DATA/splink_fake_1000/fake_1000.csv"
C=$DATA/dedupe_csv_example/csv_example_input_with_true_ids.csv
run csv_example csv_example.yaml csv "$C"
run csv_example defaults_csv_example.yaml csv "$C"

# Generated CRM leads (30% duplicates: nicknames, typos, e-mail, phone and
# company variants, missing fields) under the shipped default rules.
for seed in 1 2 3; do
	"$OUT/leadconv" gen --seed "$seed" --records 20000 --format eval --output "$OUT/gen.jsonl"
	run "gen-seed$seed-20k" default jsonl "$OUT/gen.jsonl"
done
