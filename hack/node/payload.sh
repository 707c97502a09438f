#!/usr/bin/env bash
# Assembles what the test node runs (hack/node/test.sh boots it): the tools
# `make deps` and `make deps-k8s` pinned, the shim, the integration and
# one-node cluster test binaries and the
# conformance runner built here (the node has no Go toolchain), the
# stand-ins' programs built static here (no compiler there either), and the
# files the tests read from the repository, laid out as in the repository.
#
# Usage: payload.sh DIR [MODE]   (DIR/run.sh is hack/node/suite.sh; MODE
#   "conformance" runs all of critest instead of the node's test suite,
#   "install" only the cluster install test, "node" the node's own tests
#   and critest without the one-node cluster)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=$1
deps=${DEPS_DIR:-$repo/_deps}
rm -rf "$dir" && mkdir -p "$dir/bin" "$dir/repo/integration" "$dir/repo/pod/pause" "$dir/standins"

for tool in containerd ctr containerd-shim-runc-v2 runc crictl critest crane busybox-upstream \
	etcd kube-apiserver kubelet kubectl kube-scheduler kube-controller-manager helm; do
	cp "$deps/bin/$tool" "$dir/bin/"
done
cp "$repo/bin/containerd-shim-pause-v2" "$repo/bin/containerd-shim-pause-v2-failpoints" "$dir/bin/"
# The test images' busybox: the host's static one, as on the host suite.
cp "$(command -v busybox)" "$dir/bin/busybox"

cp -r "$repo/deploy" "$dir/repo/"
cp "$repo"/pod/pause/pause_*.elf "$dir/repo/pod/pause/"
(cd "$repo" && go test -c -o "$dir/repo/integration/integration.test" ./integration)
mkdir -p "$dir/repo/integration/e2e"
(cd "$repo" && go test -c -tags e2e -o "$dir/repo/integration/e2e/e2e.test" ./integration/e2e)
(cd "$repo" && go build -o "$dir/bin/conformance" ./integration/conformance)
(cd "$repo" && go run ./integration/conformance -build-standins "$dir/standins")
# The installer image twice, for TestClusterInstall: the build under test,
# and the same code stamped with another version string (an upgrade).
mkdir -p "$dir/installer" "$dir/upgrade"
image=docker.io/library/containerd-shim-pause-v2-installer
(cd "$repo" && go run ./integration/testimage/mkinstaller "$image:latest" "$dir/installer/installer.tar" \
	bin/containerd-shim-pause-v2 bin/containerd-shim-pause-installer)
upgrade=$(git -C "$repo" describe --tags --always --dirty 2>/dev/null || echo dev)-upgrade
make -C "$repo" --no-print-directory build VERSION="$upgrade" \
	SHIM="$dir/upgrade/containerd-shim-pause-v2" INSTALLER="$dir/upgrade/containerd-shim-pause-installer" >/dev/null
(cd "$repo" && go run ./integration/testimage/mkinstaller "$image:upgrade" "$dir/installer/upgrade.tar" \
	"$dir"/upgrade/containerd-shim-pause-v2 "$dir"/upgrade/containerd-shim-pause-installer)
echo "$upgrade" >"$dir/installer/upgrade.version"
rm -rf "$dir/upgrade"
cp "$repo/hack/node/suite.sh" "$dir/run.sh"
echo "${2:-test}" >"$dir/mode"
chmod +x "$dir/run.sh"
du -sh "$dir" | sed 's/^/payload: /'
