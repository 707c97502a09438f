#!/usr/bin/env bash
# What a Go user does with no make and no C compiler: a plain `go build ./...`
# in a fresh clone of HEAD, for amd64 and arm64, and `go install
# MODULE/cmd/containerd-shim-pause-v2@VERSION` from a module proxy directory
# serving HEAD (hack/modproxy); the installed shim's -v must name VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT

git clone -q --no-local . "$tmp/clone"
for arch in amd64 arm64; do
	(cd "$tmp/clone" && GOARCH=$arch CGO_ENABLED=0 GOFLAGS= go build ./...)
	echo "goinstall: go build ./... in a fresh clone ($arch): ok"
done

module=$(cd "$tmp/clone" && go list -m)
stamp=$(TZ=UTC git -C "$tmp/clone" log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S)
version=v0.0.0-$stamp-$(git -C "$tmp/clone" rev-parse --short=12 HEAD)
go run ./hack/modproxy -dir "$tmp/clone" -version "$version" -out "$tmp/proxy"
GOPROXY="file://$tmp/proxy,$(go env GOPROXY)" GONOSUMDB="$module" GOFLAGS= \
	GOBIN="$tmp/bin" CGO_ENABLED=0 go install "$module/cmd/containerd-shim-pause-v2@$version"
"$tmp/bin/containerd-shim-pause-v2" -v | tee "$tmp/v"
grep -q "Version:  $version\$" "$tmp/v" || { echo "goinstall: -v does not name $version" >&2; exit 1; }
echo "goinstall: go install …@$version: ok"
