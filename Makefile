GO ?= go

.PHONY: test demo bench fuzz lint
test: ## the whole suite (installs redis-server when missing)
	./scripts/test.sh

demo: ## leadconv on its embedded default: in-process Kafka and Redis
	$(GO) run ./cmd/leadconv demo

bench: ## benchmarks (not part of test)
	$(GO) test -run '^$$' -bench . -benchmem ./...

fuzz: ## a short fuzz of each fuzz target
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 30s ./internal/config
	$(GO) test -run '^$$' -fuzz FuzzDecodeEvent -fuzztime 30s ./schemas

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
