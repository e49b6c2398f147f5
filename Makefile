# shiftcast — run `make help` for the targets.

GO        ?= go
BIN       ?= bin/shiftcast
GOLANGCI  ?= golangci-lint
GOLANGCI_VERSION ?= v2.15.0
BENCH_DURATION ?= 10s

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/shiftcast
	$(GO) build -o $(BIN) ./cmd/shiftcast

.PHONY: run
run: build ## Run the whole stack locally (embedded NATS, local PostgreSQL, demo data, serve)
	./$(BIN) dev

.PHONY: test
test: ## Vet, then run every test with the race detector (real PostgreSQL and NATS)
	./scripts/ensure-postgres.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

.PHONY: lint
lint: ## Run golangci-lint (installs the pinned version into ./bin when missing)
	@command -v $(GOLANGCI) >/dev/null 2>&1 || GOBIN=$(CURDIR)/bin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)
	@PATH="$(CURDIR)/bin:$$PATH" $(GOLANGCI) run ./...

.PHONY: bench
bench: ## Go micro-benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: fmt
fmt: ## Format the code
	gofmt -w .

.PHONY: clean
clean: ## Remove build output and the local stack's data (.shiftcast)
	rm -rf bin .shiftcast
