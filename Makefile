# kubebake — make targets are the interface.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)
FIRSTBOOT := builder/firstbootbin/bin/firstboot
LDFLAGS := -s -w -X github.com/kubebake/kubebake/builder/cmd.Version=$(VERSION)

.PHONY: all build firstboot test lint demo bench clean

all: build

# firstboot is static linux/amd64 (CentOS 7: glibc 2.17, so no cgo), built
# first and embedded into kubebake with go:embed.
firstboot:
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '-s -w' -o $(FIRSTBOOT) ./firstboot

build: firstboot
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kubebake ./builder

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: lint
	$(GO) test -count=1 ./...

# The seed's five hosts, baked from stand-in artifacts, verified, and rebuilt
# to show byte-identical output. Everything lands under demo/.
demo: build
	./scripts/demo.sh

# Figures for the issue's targets, in one run: PKI issue time (seed and 1000
# nodes, RSA and ECDSA) and bake of 100 hosts vs a naive per-host tar|gzip.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x ./builder/pki/ ./builder/bake/
	$(GO) run ./scripts/benchbake

clean:
	rm -rf bin demo $(FIRSTBOOT)
