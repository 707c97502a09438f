# containerd-shim-pause-v2 — see docs/development.md for what each target does.
SHELL := /bin/bash

GO        ?= go
CC        ?= gcc
PREFIX    ?= /usr/local
DESTDIR   ?=
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse --verify -q HEAD || echo unknown)
DEPS_DIR  ?= $(CURDIR)/_deps
OUTPUT    ?= $(CURDIR)/_output

SHIM      := bin/containerd-shim-pause-v2
# The same shim with its failpoints compiled in (internal/failpoint), for
# the crash-point sweep; never installed.
SHIM_FAILPOINTS := bin/containerd-shim-pause-v2-failpoints
# The node installer of the DaemonSet (package installer).
INSTALLER := bin/containerd-shim-pause-installer
LDFLAGS   := -s -w \
  -X github.com/containerd/containerd/v2/version.Version=$(VERSION) \
  -X github.com/containerd/containerd/v2/version.Revision=$(REVISION) \
  -X github.com/containerd/containerd/v2/version.Package=containerd-shim-pause-v2

export PATH := $(DEPS_DIR)/bin:$(PATH)

.PHONY: all build build-arches build-failpoints release check-release test-release pause check-pause deps-pause goinstall deps deps-helm test unit integration demo install uninstall lint clean image soak stress bench fuzz conformance deps-conformance conformance-fast test-node deps-node conformance-node deps-k8s e2e deps-k8s-conformance e2e-conformance

all: build

# The pause task: a freestanding binary per architecture, which the shim
# embeds (pod/pause/pause_ARCH.elf). They are committed, so a plain go build
# or go install needs no C compiler: run make pause after editing
# pod/pause/c/pause.c and commit its output; make lint (check-pause) fails
# when a committed binary is not the build of its source.
pause: deps-pause
	./hack/pause.sh

check-pause: deps-pause
	./hack/pause.sh check

deps-pause:
	./hack/deps.sh pause

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(SHIM) ./cmd/containerd-shim-pause-v2
	@! grep -qa gofail $(SHIM) || { echo "$(SHIM) carries failpoints"; exit 1; }
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(INSTALLER) ./cmd/containerd-shim-pause-installer

build-failpoints:
	CGO_ENABLED=0 $(GO) build -trimpath -tags failpoints -ldflags '$(LDFLAGS)' -o $(SHIM_FAILPOINTS) ./cmd/containerd-shim-pause-v2

# Tools the tests and the demo run, at pinned versions, into _deps/.
deps:
	DEPS_DIR=$(DEPS_DIR) ./hack/deps.sh

# helm, at the pinned version, into _deps/ (deploy/'s chart test runs
# `helm template`); built once per pin.
deps-helm:
	DEPS_DIR=$(DEPS_DIR) ./hack/deps.sh helm

# The packages whose tests start no namespaced process also run as arm64
# builds under qemu user emulation (qemu-user refuses clone's namespace
# flags, so the pause task's own tests run natively; its filters are checked
# for both architectures by TestSeccompFiltersPerArchitecture).
ARM64_UNIT := ./options/ ./shim/... ./pool/... ./internal/proc/
unit: deps-pause deps-helm
	HELM=$(DEPS_DIR)/bin/helm $(GO) test -race -count=1 $$(go list ./... | grep -v /integration) ./integration/bench/ ./integration/testimage/...
	GOARCH=arm64 CGO_ENABLED=0 $(GO) test -count=1 -exec qemu-aarch64-static $(ARM64_UNIT)
	$(GO) test -race -count=1 -tags failpoints ./internal/failpoint/
	cd hack/chart && $(GO) test -count=1 ./...

# Every fuzz target of the shim's packages, each for FUZZTIME (make unit runs
# their seed corpora, testdata/fuzz, as regression tests). A failing input is
# written under the package's testdata/fuzz: commit it with the fix.
FUZZTIME ?= 1m
fuzz:
	@set -e; for pkg in $$($(GO) list ./... | grep -v /integration); do \
	  for fz in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$fz ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$fz$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

integration: build build-failpoints deps
	mkdir -p $(OUTPUT) && DEPS_DIR=$(DEPS_DIR) SHIM_BINARY=$(CURDIR)/$(SHIM) SHIM_FAILPOINTS_BINARY=$(CURDIR)/$(SHIM_FAILPOINTS) $(GO) test -count=1 -timeout 30m -v ./integration/... 2>&1 | tee $(OUTPUT)/integration.log; exit $${PIPESTATUS[0]}

# A fresh clone builds with a plain go build (amd64 and arm64), and go install
# …@VERSION works from a module proxy directory serving HEAD.
goinstall:
	./hack/goinstall.sh

test: lint unit goinstall test-release integration conformance-fast

demo: build deps
	DEPS_DIR=$(DEPS_DIR) SHIM_BINARY=$(CURDIR)/$(SHIM) ./hack/demo.sh

lint: check-pause
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags failpoints ./...
	$(GO) vet -tags stress ./integration/
	$(GO) vet -tags e2e ./integration/e2e/
	cd hack/chart && $(GO) vet ./...
	$(GO) test -count=1 ./docs/

# The shim, and a containerd drop-in declaring the CRI handler "pause" with
# the installed shim's absolute path (containerd then needs no PATH for it).
CONTAINERD_CONFDIR ?= /etc/containerd/conf.d
# The drop-in naming the shim installed in $(1)/bin: install's and release's.
dropin = sed 's\#^  runtime_type = "io.containerd.pause.v2"\#  runtime_type = "$(1)/bin/containerd-shim-pause-v2"\#' deploy/containerd-pause.toml
install: build
	install -D -m 0755 $(SHIM) $(DESTDIR)$(PREFIX)/bin/containerd-shim-pause-v2
	install -d $(DESTDIR)$(CONTAINERD_CONFDIR)
	$(call dropin,$(PREFIX)) > $(DESTDIR)$(CONTAINERD_CONFDIR)/pause.toml
	chmod 0644 $(DESTDIR)$(CONTAINERD_CONFDIR)/pause.toml

# The DaemonSets' image (deploy/installer.yaml) as an OCI archive: the shim
# and the node installer, each at the image's root, nothing else; an image
# index of one image per architecture in IMAGE_ARCHES, each built with
# GOARCH (the pause task of each is committed: pod/pause).
IMAGE ?= containerd-shim-pause-v2-installer:latest
IMAGE_ARCHES ?= amd64 arm64
# The shim and the node installer of each of IMAGE_ARCHES, in bin/linux-ARCH/.
build-arches:
	for arch in $(IMAGE_ARCHES); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/linux-$$arch/ \
			./cmd/containerd-shim-pause-v2 ./cmd/containerd-shim-pause-installer || exit 1; \
	done
image: build build-arches
	mkdir -p $(OUTPUT) && $(GO) run ./integration/testimage/mkinstaller -index $(IMAGE) $(OUTPUT)/installer-image.tar \
		$(foreach arch,$(IMAGE_ARCHES),$(arch)=bin/linux-$(arch))

# A release of VERSION (make release VERSION=vX.Y.Z) in _output/release/:
# a tarball per architecture of IMAGE_ARCHES (the shim, the drop-in naming
# it in /usr/local/bin, deploy/, LICENSE, README.md), the installer image
# tagged VERSION as an index of those architectures, and SHA256SUMS over
# them (hack/release). Reproducible: entries sorted, owned by root and dated
# by the commit (SOURCE_DATE_EPOCH). check-release verifies one: the sums,
# each tarball's files, its shim's -v and -info (under qemu for a foreign
# architecture), the image's platforms; make test runs both at a test
# version. check-release needs qemu-user-static (deps-pause) for the arm64 shim.
RELEASE_DIR := $(OUTPUT)/release
RELEASE_IMAGE = containerd-shim-pause-v2-installer-$(VERSION).tar
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
release:
	$(GO) run ./hack/release version '$(VERSION)'
	$(MAKE) --no-print-directory build-arches
	rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR) bin/release
	$(call dropin,/usr/local) > bin/release/pause.toml
	$(GO) run ./integration/testimage/mkinstaller -index containerd-shim-pause-v2-installer:$(VERSION) $(RELEASE_DIR)/$(RELEASE_IMAGE) \
		$(foreach arch,$(IMAGE_ARCHES),$(arch)=bin/linux-$(arch))
	$(GO) run ./hack/release pack -version '$(VERSION)' -dropin bin/release/pause.toml -mtime $(SOURCE_DATE_EPOCH) -out $(RELEASE_DIR) \
		$(foreach arch,$(IMAGE_ARCHES),$(arch)=bin/linux-$(arch))

check-release: deps-pause
	$(GO) run ./hack/release check -version '$(VERSION)' -revision $(REVISION) -arches '$(IMAGE_ARCHES)' -image $(RELEASE_IMAGE) -dir $(RELEASE_DIR)

# make test's release, at a version no tag has.
test-release:
	$(MAKE) --no-print-directory release check-release VERSION=v0.0.0-ci

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/containerd-shim-pause-v2 $(DESTDIR)$(CONTAINERD_CONFDIR)/pause.toml

clean:
	rm -rf bin $(OUTPUT)

# The churn soak at 1000 pod cycles (make test runs it at 100).
SOAK_CYCLES ?= 1000
soak: build deps
	mkdir -p $(OUTPUT) && SOAK_CYCLES=$(SOAK_CYCLES) DEPS_DIR=$(DEPS_DIR) SHIM_BINARY=$(CURDIR)/$(SHIM) $(GO) test -count=1 -timeout 60m -v -run 'TestChurn|TestDenseChurn' ./integration/ 2>&1 | tee $(OUTPUT)/soak.log; exit $${PIPESTATUS[0]}

# Removals at scale left to chance (integration tests under the stress
# build tag; docs/failure-model.md): the forced case of the same stall runs
# in make test, this one takes longer and shows what a machine does.
stress: build build-failpoints deps
	mkdir -p $(OUTPUT) && DEPS_DIR=$(DEPS_DIR) SHIM_BINARY=$(CURDIR)/$(SHIM) SHIM_FAILPOINTS_BINARY=$(CURDIR)/$(SHIM_FAILPOINTS) $(GO) test -count=1 -timeout 20m -v -tags stress -run 'TestSharedShimMassRemoval' ./integration/ 2>&1 | tee $(OUTPUT)/stress.log; exit $${PIPESTATUS[0]}

# critest on handlers runc and pause, side by side (report in _output/).
deps-conformance:
	DEPS_DIR=$(DEPS_DIR) ./hack/deps.sh conformance

conformance: build deps deps-conformance
	DEPS_DIR=$(DEPS_DIR) SHIM_BINARY=$(CURDIR)/$(SHIM) $(GO) run ./integration/conformance -handlers runc,pause,pause-dense -out $(OUTPUT)

# The part of critest `make test` keeps: pod sandbox, container, namespace
# options and streaming, on handlers pause and pause-dense (pods sharing one
# shim); any failure fails.
CRITEST_FAST := PodSandbox|basic operations on container|NamespaceOption|Streaming runtime should support (exec|attach)
conformance-fast: build deps deps-conformance
	DEPS_DIR=$(DEPS_DIR) SHIM_BINARY=$(CURDIR)/$(SHIM) $(GO) run ./integration/conformance -handlers pause,pause-dense -strict -focus '$(CRITEST_FAST)' -out $(OUTPUT)/conformance-fast

# Pods on this runtime (handlers pause and pause-dense) against the stock
# runc shim + pause image, side by side, with the CNI floor; then the charts
# (hack/chart, a module of its own: the plotting library stays out of go.mod).
PODS ?= 100
bench: build deps
	DEPS_DIR=$(DEPS_DIR) SHIM_BINARY=$(CURDIR)/$(SHIM) $(GO) run ./integration/bench -pods $(PODS) -out $(OUTPUT)/bench
	cd hack/chart && $(GO) run . -in $(OUTPUT)/bench

# A real node: a throwaway Debian VM (systemd as PID 1, cgroup v2, /run
# noexec, as Debian boots) runs the node's share of the integration tests,
# make e2e's scenarios with the kubelet on the systemd driver, the cluster
# install (deploy/ applied to a node whose containerd is a systemd unit:
# TestClusterInstall), and critest's fast subset on pause-systemd
# (hack/node/suite.sh). NODE_MODE=install runs the cluster install alone;
# NODE_MODE=node the node's own tests and critest, without the cluster.
# NODE_CGROUP=v1 boots the node with cgroup v1 under systemd.
deps-node:
	DEPS_DIR=$(DEPS_DIR) ./hack/deps.sh node

test-node: build build-failpoints deps deps-conformance deps-node deps-k8s deps-helm
	DEPS_DIR=$(DEPS_DIR) ./hack/node/payload.sh $(OUTPUT)/node-payload $(NODE_MODE)
	NODE_CGROUP=$(NODE_CGROUP) ./hack/node/test.sh $(OUTPUT)/node-payload 2>&1 | tee $(OUTPUT)/test-node.log; exit $${PIPESTATUS[0]}

# All of critest on the node's systemd handlers (runc with SystemdCgroup, the
# reference, and pause-systemd); about 15 minutes under emulation, so not
# in CI.
conformance-node: build build-failpoints deps deps-conformance deps-node deps-k8s deps-helm
	DEPS_DIR=$(DEPS_DIR) ./hack/node/payload.sh $(OUTPUT)/node-payload conformance
	NODE_TIMEOUT=100m ./hack/node/test.sh $(OUTPUT)/node-payload 2>&1 | tee $(OUTPUT)/conformance-node.log; exit $${PIPESTATUS[0]}

# kubelet, kube-apiserver and kubectl (hack/k8s) and etcd (hack/etcd), built
# from the module proxy at the pinned versions into _deps/ (once per pin).
deps-k8s:
	DEPS_DIR=$(DEPS_DIR) ./hack/deps.sh k8s

# A one-node cluster on this host (etcd, kube-apiserver, a kubelet on the
# private containerd) and the pod scenarios on handlers pause and runc.
# KEEP=1 leaves the cluster up after the tests, until interrupted. Ends with
# "N passed, M failed" (tests and subtests; hack/gotest-summary.sh).
E2E_TIMEOUT := $(if $(KEEP),0,40m)
e2e: build deps deps-k8s
	mkdir -p $(OUTPUT) && E2E_KEEP=$(KEEP) DEPS_DIR=$(DEPS_DIR) SHIM_BINARY=$(CURDIR)/$(SHIM) $(GO) test -tags e2e -v -count=1 -timeout $(E2E_TIMEOUT) ./integration/e2e/... 2>&1 | tee $(OUTPUT)/e2e.log; \
	  ./hack/gotest-summary.sh $(OUTPUT)/e2e.log $${PIPESTATUS[0]} | tee -a $(OUTPUT)/e2e.log; exit $${PIPESTATUS[0]}

# kube-scheduler, kube-controller-manager, agnhost, e2e.test and ginkgo
# (hack/k8s/conformance), built from the module proxy once per pin.
deps-k8s-conformance:
	DEPS_DIR=$(DEPS_DIR) ./hack/deps.sh k8s-conformance

# Kubernetes' NodeConformance specs (e2e.test) on the one-node cluster, once
# with CRI's default runtime set to runc, once to pause; a spec that passes
# on runc and not on pause fails it. Report in _output/e2e-conformance.md
# and .json. Not in make test or CI (too long). FOCUS narrows the specs (a
# regexp), PROCS sets ginkgo's parallel processes (4), HANDLERS the
# handlers (runc,pause; the first is the baseline), SLOW=1 adds the spec
# skipped for its length.
e2e-conformance: build deps deps-conformance deps-k8s deps-k8s-conformance
	mkdir -p $(OUTPUT) && E2E_CONFORMANCE=$(OUTPUT) E2E_CONFORMANCE_FOCUS='$(FOCUS)' E2E_CONFORMANCE_PROCS=$(PROCS) \
	  E2E_CONFORMANCE_HANDLERS=$(HANDLERS) E2E_CONFORMANCE_SLOW=$(SLOW) DEPS_DIR=$(DEPS_DIR) SHIM_BINARY=$(CURDIR)/$(SHIM) \
	  $(GO) test -tags e2e -v -count=1 -timeout 5h -run '^TestNodeConformance$$' ./integration/e2e/ 2>&1 | tee $(OUTPUT)/e2e-conformance.log; \
	  ./hack/gotest-summary.sh $(OUTPUT)/e2e-conformance.log $${PIPESTATUS[0]} | tee -a $(OUTPUT)/e2e-conformance.log; exit $${PIPESTATUS[0]}
