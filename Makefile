GO ?= go

.PHONY: test demo bench bench-e2e fuzz lint
test: ## the whole suite (installs redis-server when missing)
	./scripts/test.sh

demo: ## leadconv on its embedded default: in-process Kafka and Redis
	$(GO) run ./cmd/leadconv demo

bench: ## Go benchmarks (not part of test)
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-e2e: ## the end-to-end benchmark of BENCHMARKS.md (needs redis-server or REDIS_URL)
	$(GO) run ./cmd/leadconv bench --events 200000 --rate 2000 --latency-runs 5

fuzz: ## a short fuzz of each fuzz target
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 30s ./internal/config
	$(GO) test -run '^$$' -fuzz FuzzDecodeEvent -fuzztime 30s ./schemas
	$(GO) test -run '^$$' -fuzz FuzzDecodeEvent -fuzztime 30s ./internal/pipeline
	$(GO) test -run '^$$' -fuzz FuzzPlan -fuzztime 30s ./engine
	$(GO) test -run '^$$' -fuzz FuzzNormalize -fuzztime 30s ./matcher
	$(GO) test -run '^$$' -fuzz FuzzCompare -fuzztime 30s ./matcher
	$(GO) test -run '^$$' -fuzz FuzzSalesforce -fuzztime 30s ./ingest
	$(GO) test -run '^$$' -fuzz FuzzDebezium -fuzztime 30s ./ingest

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
