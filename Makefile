# Tributary build. mautrix's federation packages need the jsonv2 experiment,
# so every go command runs through this file.
export GOEXPERIMENT := jsonv2

GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := $(CURDIR)/bin/tributary
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build run test bench fuzz lint tidy-check clean proto

## build: compile bin/tributary and the bridge plugins (bin/plugins/*)
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/tributary
	$(GO) build -trimpath -tags goolm -ldflags "$(LDFLAGS)" -o $(CURDIR)/bin/plugins/tributary-irc ./bridges/irc/cmd/tributary-irc
	$(GO) build -trimpath -tags goolm -ldflags "$(LDFLAGS)" -o $(CURDIR)/bin/plugins/tributary-discord ./bridges/discord/cmd/tributary-discord
	$(GO) build -trimpath -tags goolm -ldflags "$(LDFLAGS)" -o $(CURDIR)/bin/plugins/tributary-slack ./bridges/slack/cmd/tributary-slack
	$(GO) build -trimpath -tags goolm -ldflags "$(LDFLAGS)" -o $(CURDIR)/bin/plugins/tributary-telegram ./bridges/telegram/cmd/tributary-telegram

## run: start a homeserver for localhost on 127.0.0.1:8008 with SQLite in ./data
run: build
	$(BIN) serve

## test: every unit, storage (SQLite and PostgreSQL) and end-to-end test, with the race detector;
## warns at the end if PostgreSQL tests were skipped (internal/pgtest leaves a marker per skip)
test: build
	@skipdir=$$(mktemp -d) || exit 1; \
	echo 'TRIBUTARY_BIN=$(BIN) $(GO) test -tags goolm -race -count=1 -timeout 20m ./...'; \
	TRIBUTARY_BIN=$(BIN) TRIBUTARY_PGTEST_SKIP_DIR=$$skipdir $(GO) test -tags goolm -race -count=1 -timeout 20m ./...; \
	status=$$?; \
	if [ -n "$$(ls -A "$$skipdir")" ]; then \
		echo; \
		echo '************************************************************************'; \
		echo "WARNING: PostgreSQL suites SKIPPED ($$(cat "$$skipdir"/* | wc -l) tests), in the test binaries:"; \
		ls "$$skipdir" | sed 's/-[^-]*$$//' | sort | uniq -c | awk '{ printf "  %s (%d skipped)\n", $$2, $$1 }'; \
		echo "Reason: $$(cut -f2- "$$skipdir"/* | head -n 1)"; \
		echo 'Install the PostgreSQL server binaries (apt-get install postgresql), or'; \
		echo 'set TRIBUTARY_REQUIRE_POSTGRES=1 to make that a failure.'; \
		echo '************************************************************************'; \
	fi; \
	rm -rf "$$skipdir"; \
	exit $$status

## bench: Go benchmarks, including the end-to-end ones against the real binary
bench: build
	TRIBUTARY_BIN=$(BIN) $(GO) test -tags goolm -run '^$$' -bench . -benchmem -count=1 ./...

## fuzz: every Go fuzz target of the module (func Fuzz… in a _test.go file), one
## after the other, FUZZTIME each (default 20s: make fuzz FUZZTIME=5m for longer);
## fails at the end if any target found a failing input (saved under testdata/fuzz)
FUZZTIME ?= 20s
fuzz:
	@failed=; \
	for file in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
		dir=./$$(dirname $${file#./}); \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "== $$name in $$dir for $(FUZZTIME)"; \
			$(GO) test -tags goolm -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$dir || failed="$$failed $$dir:$$name"; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz targets that failed:$$failed"; exit 1; fi

## lint: go vet and staticcheck (with the goolm tag, like every other target)
lint:
	$(GO) vet -tags goolm ./...
	$(GO) run $(STATICCHECK) -tags goolm ./...

## tidy-check: fail, printing the diff, if go mod tidy would change go.mod or go.sum
tidy-check:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run GOEXPERIMENT=jsonv2 go mod tidy and commit the result" >&2; exit 1; }

clean:
	rm -rf bin

## proto: regenerate plugins/proto from bridge.proto (protoc from the Debian
## package protobuf-compiler; the Go generators at pinned versions from the
## module proxy, into bin/)
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
proto:
	@command -v protoc >/dev/null || { echo 'protoc is missing: apt-get install protobuf-compiler' >&2; exit 1; }
	GOBIN=$(CURDIR)/bin/protogen $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/bin/protogen $(GO) install $(PROTOC_GEN_GO_GRPC)
	cd plugins/proto && PATH=$(CURDIR)/bin/protogen:$$PATH protoc -I . \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative bridge.proto
