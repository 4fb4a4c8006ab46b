# Developer entry points. `make test` is what CI and the README use (via scripts/test.sh).

GOLANGCI_LINT_VERSION := 2.15.0
TOOLS_DIR             := $(CURDIR)/.tools
GOLANGCI_LINT         := $(TOOLS_DIR)/golangci-lint

.PHONY: test run lint bench fmt vet services

## test: start local services if needed, vet, check formatting, run all tests with -race
test:
	bash scripts/test.sh

## run: run the service (API, ingest, publisher, projector, scheduler) locally
run:
	go run ./cmd/segmentd serve

## lint: golangci-lint v$(GOLANGCI_LINT_VERSION) with .golangci.yml (installed into .tools/ on demand)
lint:
	@if [ "$$($(GOLANGCI_LINT) version --short 2>/dev/null)" != "$(GOLANGCI_LINT_VERSION)" ]; then \
		echo "installing golangci-lint v$(GOLANGCI_LINT_VERSION) into $(TOOLS_DIR)"; \
		GOBIN=$(TOOLS_DIR) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v$(GOLANGCI_LINT_VERSION); \
	fi
	$(GOLANGCI_LINT) run ./...

## bench: run every benchmark (no tests) with allocation stats
bench:
	go test -run='^$$' -bench=. -benchmem ./...

## fmt: format all Go code (gofmt -s) and fix import grouping
fmt:
	gofmt -s -w .
	@if [ -x "$(GOLANGCI_LINT)" ]; then $(GOLANGCI_LINT) fmt ./...; fi

## vet: go vet on every package
vet:
	go vet ./...

## services: make sure local PostgreSQL (5432) and NATS JetStream (4222) are up
services:
	bash scripts/services.sh
