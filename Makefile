# orderworker: run `make help` for the targets.
.PHONY: help build test test-fast fuzz bench demo dev lint

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/worker and bin/enqueue
	go build -trimpath -o bin/ ./cmd/worker ./cmd/enqueue

test: ## the full suite, as CI runs it (installs redis-server, prometheus and promtool, chromium, python3, curl and gcc where missing)
	.ci/run

test-fast: ## go test ./... without -race (needs redis-server, promtool, prometheus, chromium, python3 and curl on PATH)
	go test ./...

lint: ## go vet and gofmt
	go vet ./...
	@test -z "$$(gofmt -l .)" || (gofmt -l .; exit 1)

fuzz: ## fuzz the payload decoder for a minute
	go test -run '^$$' -fuzz FuzzDecodePayload -fuzztime 60s ./tasks

bench: ## run the benchmarks
	go test -run '^$$' -bench . -benchmem ./...

demo: ## one sample order per provider, end to end, on an embedded Redis
	go run ./cmd/worker -dev -demo

dev: ## a worker against the sandboxes; then, in another terminal: go run ./cmd/enqueue -dev cmd/worker/demo/orders.jsonl
	go run ./cmd/worker -dev -log-format text
