#!/usr/bin/env bash
# Installs, at pinned versions and idempotently, what the tests and the demo
# run: containerd and ctr, runc (with seccomp), crictl into $DEPS_DIR/bin, and
# Debian packages (busybox-static for locally built test images; the aarch64
# cross compiler and qemu-user-static, with which pod/pause's tests check the
# pause task's seccomp filter on aarch64). Nothing goes over the system's own
# binaries.
set -euo pipefail

CONTAINERD_VERSION=v2.4.2
RUNC_VERSION=v1.5.2
CRICTL_VERSION=v1.34.0
CRANE_VERSION=v0.22.1
HELM_VERSION=v3.21.4
BUSYBOX_VERSION=1.35.0
BUSYBOX_DEBIAN=1:1.35.0-4+deb12u1
DEPS_DIR=${DEPS_DIR:-$(pwd)/_deps}
BIN=$DEPS_DIR/bin
mkdir -p "$BIN"

apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: need root to install Debian packages: ${missing[*]}" >&2
		exit 1
	fi
	echo "deps: apt-get install ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# stamp records which version of a tool is in $BIN, so a rerun skips it.
have() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$BIN/.$1.version"; }

go_install() { # name version tags package
	local name=$1 version=$2 tags=$3 pkg=$4
	have "$name" "$version" && return 0
	echo "deps: go install $pkg@$version"
	GOBIN=$BIN GOFLAGS= go install -tags "$tags" "$pkg@$version"
	stamp "$name" "$version"
}

# `deps.sh pause`: only the compilers of the committed pause binaries
# (hack/pause.sh), for make pause and make lint.
if [ "${1:-}" = pause ]; then
	apt_install gcc gcc-aarch64-linux-gnu qemu-user-static
	exit 0
fi

# `deps.sh helm`: only helm, which deploy/'s chart test runs (`helm template`):
# built from its module at the pinned version, like the tools above; the
# rest of this script's installs are not needed for that test.
if [ "${1:-}" = helm ]; then
	start=$SECONDS
	go_install helm "$HELM_VERSION" "" helm.sh/helm/v3/cmd/helm
	echo "deps: helm $HELM_VERSION in $BIN ($((SECONDS - start)) s)"
	exit 0
fi

# crun: Debian 12's is too old for containerd 2.4's spec, which
# TestCrunTooOldNamesBothVersions needs.
apt_install libseccomp-dev pkg-config busybox-static iproute2 gcc containernetworking-plugins \
	gcc-aarch64-linux-gnu qemu-user-static crun

go_install containerd "$CONTAINERD_VERSION" "" github.com/containerd/containerd/v2/cmd/containerd
go_install ctr "$CONTAINERD_VERSION" "" github.com/containerd/containerd/v2/cmd/ctr
go_install containerd-shim-runc-v2 "$CONTAINERD_VERSION" "" github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
go_install runc "$RUNC_VERSION" "seccomp urfave_cli_no_docs" github.com/opencontainers/runc
go_install crictl "$CRICTL_VERSION" "" sigs.k8s.io/cri-tools/cmd/crictl

# `deps.sh conformance`: critest, built from cri-tools' module source with its
# vendor/ tree dropped (it pins older modules), and crane for a local registry.
if [ "${1:-}" = conformance ]; then
	go_install crane "$CRANE_VERSION" "" github.com/google/go-containerregistry/cmd/crane
	# busybox as upstream builds it (Debian's busybox-static prefers its own
	# applets over files, and lacks pgrep and ipcs): from Debian's source
	# package, fetched with a private apt configuration, built static.
	if ! have busybox-upstream "$BUSYBOX_VERSION"; then
		echo "deps: build busybox $BUSYBOX_VERSION from Debian's source package"
		apt_install bzip2 make
		work=$DEPS_DIR/src/busybox && rm -rf "$work" && mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
		printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$work/src.sources"
		aptopts=(-o Dir::Etc::SourceList="$work/src.sources" -o Dir::Etc::SourceParts=/dev/null
			-o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache")
		apt-get -qq "${aptopts[@]}" update
		(cd "$work" && apt-get -qq "${aptopts[@]}" source --download-only "busybox=$BUSYBOX_DEBIAN" 2>/dev/null)
		tar -C "$work" -xjf "$work/busybox_${BUSYBOX_VERSION}.orig.tar.bz2"
		(cd "$work/busybox-$BUSYBOX_VERSION" && make -s defconfig >/dev/null &&
			sed -i -e 's/^# CONFIG_STATIC is not set/CONFIG_STATIC=y/' -e 's/^CONFIG_TC=y/# CONFIG_TC is not set/' .config &&
			{ yes "" || true; } | make -s oldconfig >/dev/null && make -s -j"$(nproc)" >/dev/null 2>&1 &&
			cp busybox "$BIN/busybox-upstream")
		stamp busybox-upstream "$BUSYBOX_VERSION"
	fi
	if ! have critest "$CRICTL_VERSION"; then
		echo "deps: build critest $CRICTL_VERSION"
		GOFLAGS= go mod download sigs.k8s.io/cri-tools@"$CRICTL_VERSION"
		src=$DEPS_DIR/src/cri-tools
		rm -rf "$src" && mkdir -p "$DEPS_DIR/src"
		cp -r "$(go env GOMODCACHE)/sigs.k8s.io/cri-tools@$CRICTL_VERSION" "$src"
		chmod -R u+w "$src" && rm -rf "$src/vendor"
		(cd "$src" && GOFLAGS= go test -mod=mod -c -o "$BIN/critest" ./cmd/critest)
		stamp critest "$CRICTL_VERSION"
	fi
fi

# `deps.sh node`: what boots the test node (make test-node).
if [ "${1:-}" = node ]; then
	apt_install qemu-system-x86 mmdebstrap e2fsprogs
fi

# `deps.sh k8s`: kubelet, kube-apiserver, kubectl and etcd for make e2e,
# kube-scheduler and kube-controller-manager for make test-node,
# built from the module proxy in hack/k8s and hack/etcd, whose go.mod pins
# the versions (`go install` refuses hack/k8s's replace directives). The
# stamp holds the pin and a hash of go.mod and go.sum: only a new pin rebuilds.
# `deps.sh k8s-conformance` adds, for make e2e-conformance, from the build
# module hack/k8s/conformance (the same approach; a go.mod of its own, so
# neither set is rebuilt when the other's changes): agnhost
# (the test image most specs run), e2e.test, the test binary of
# k8s.io/kubernetes/test/e2e (`go test -c`), and the ginkgo CLI that runs
# it in parallel (the version of the library e2e.test links).
if [ "${1:-}" = k8s ] || [ "${1:-}" = k8s-conformance ]; then
	here=$(cd "$(dirname "$0")" && pwd)
	module_build() { # build|test dir module binaries... -- packages...
		local mode=$1 dir=$2 module=$3 version key bin ok=1 start=$SECONDS ldflags="-s -w" pkg
		shift 3
		local bins=() pkgs=()
		while [ "$1" != -- ]; do bins+=("$1"); shift; done
		shift
		pkgs=("$@")
		version=$(cd "$dir" && GOFLAGS= go list -m -f '{{.Version}}' "$module")
		key="$version $(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-12)"
		for bin in "${bins[@]}"; do have "$bin" "$key" || ok=0; done
		[ $ok = 1 ] && return 0
		echo "deps: build ${bins[*]} $version (hack/${dir#"$here"/})"
		# What Kubernetes' own build sets (hack/lib/version.sh, golang.sh):
		# its tags, and the release the binaries report (not v0.0.0-master).
		if [ "$module" = k8s.io/kubernetes ]; then
			for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
				ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$version" | cut -d. -f2) -X $pkg.gitTreeState=clean"
			done
		fi
		local flags=(-trimpath -buildvcs=false -tags selinux,notest,grpcnotrace -ldflags "$ldflags")
		if [ "$mode" = test ]; then
			(cd "$dir" && GOFLAGS= CGO_ENABLED=0 go test -c "${flags[@]}" -o "$BIN/${bins[0]}" "${pkgs[0]}")
		else
			(cd "$dir" && GOFLAGS= CGO_ENABLED=0 go build "${flags[@]}" -o "$BIN/" "${pkgs[@]}")
		fi
		for bin in "${bins[@]}"; do stamp "$bin" "$key"; done
		echo "deps: built ${bins[*]} in $((SECONDS - start)) s"
	}
	module_build build "$here/etcd" go.etcd.io/etcd/server/v3 etcd -- .
	module_build build "$here/k8s" k8s.io/kubernetes kubelet kube-apiserver kubectl -- \
		k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
	# The controllers (a DaemonSet's pods need both) for make test-node's
	# cluster install, from the conformance module, which requires them.
	module_build build "$here/k8s/conformance" k8s.io/kubernetes kube-scheduler kube-controller-manager -- \
		k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-controller-manager
	if [ "$1" = k8s-conformance ]; then
		module_build build "$here/k8s/conformance" k8s.io/kubernetes agnhost ginkgo -- \
			k8s.io/kubernetes/test/images/agnhost github.com/onsi/ginkgo/v2/ginkgo
		module_build test "$here/k8s/conformance" k8s.io/kubernetes e2e.test -- k8s.io/kubernetes/test/e2e
	fi
	echo "deps: kubernetes $(cut -d' ' -f1 "$BIN/.kubelet.version"), etcd $(cut -d' ' -f1 "$BIN/.etcd.version") in $BIN"
fi

echo "deps: ready in $BIN: containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, crictl $CRICTL_VERSION"
