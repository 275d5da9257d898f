// Package chaos is leadconv's fault-injection suite, behind the chaos
// build tag (scripts/chaos.sh): it builds the leadconv binary and runs it
// against a broker process and a real redis-server it starts, kills,
// freezes and restarts them mid-stream, and accounts for every input
// record id and command id afterwards. Too slow for CI, which only builds
// and vets it (go vet -tags chaos).
package chaos
