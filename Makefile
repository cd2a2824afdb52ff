# kubebake — make targets are the interface.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)
FIRSTBOOT := builder/firstbootbin/bin/firstboot
LDFLAGS := -s -w -X github.com/kubebake/kubebake/builder/cmd.Version=$(VERSION)

.PHONY: all build firstboot test lint demo demo-standins upstream bench clean e2e

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

# Under CI (CI=true, as .ci/run sets) this includes firstboot's QEMU test
# (firstboot/vmtest, ~2-4 min); elsewhere set KUBEBAKE_VMTEST=1 to run it.
test: lint
	$(GO) test -count=1 -timeout 25m ./...

# The whole flow for the seed's five hosts: the offline upstream (real
# binaries built from the Go module proxy; the first run takes ~20 min), a
# Harbor stand-in, kubebake build (pull → mirror → bake), verify. Output
# lands under demo/.
demo: build
	./scripts/demo.sh

# The seconds-long demo: stand-in artifacts, real PKI and bundles, and a
# byte-identical rebuild. Output lands under demo-standins/.
demo-standins: build
	./scripts/demo-standins.sh

# The end-to-end test (e2e/, root only; .ci/run runs it after `make test`):
# the build of scripts/demo.sh into e2e/out, every seed host on a private
# bridge in a network namespace (systemd-nspawn for lb/dns/etcd/ops, QEMU
# TCG guests for the nodes hdss7-21/22, which load ip_vs), firstboot, the
# cluster's assertions, a second boot. ~25 min warm on 2 cores; caches live
# in ~/.cache/kubebake-e2e and ~/.cache/kubebake-upstream (the first run
# builds the offline upstream: ~20 min more). KUBEBAKE_E2E_NODES=0 skips
# the nodes (~1 min).
e2e: build
	KUBEBAKE_E2E=1 $(GO) test -count=1 -timeout 75m -v ./e2e/

# Build (or reuse) the offline upstream and start it; scripts/upstream/down.sh stops it.
upstream:
	./scripts/upstream/up.sh

# Figures for the issues' targets, in one run: PKI issue time (seed and 1000
# nodes, RSA and ECDSA), bake of 100 hosts vs a naive per-host tar|gzip, and
# mirroring the seed's images vs crane and skopeo (needs docker-registry and
# skopeo from Debian), no-op re-mirror, peak RSS of pull and mirror at 1 GiB.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x ./builder/pki/ ./builder/bake/
	$(GO) run ./scripts/benchbake
	$(GO) run ./scripts/benchmirror

clean:
	rm -rf bin demo demo-standins e2e/out $(FIRSTBOOT)
