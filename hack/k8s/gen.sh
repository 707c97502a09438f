#!/usr/bin/env bash
# Writes hack/k8s/go.mod for the pinned Kubernetes release and tidies it:
# k8s.io/kubernetes requires its staging modules (k8s.io/api, client-go, ...)
# at v0.0.0, which only its own replace directives resolve, and those do not
# apply to a module that requires it. Each one required at exactly v0.0.0 is
# replaced here by its published release, v0.<minor>.<patch>.
# Usage: hack/k8s/gen.sh v1.34.2 (then commit go.mod and go.sum).
set -euo pipefail
version=${1:?usage: gen.sh v1.MINOR.PATCH}
staging=v0.${version#v1.}
cd "$(dirname "$0")"
export GOFLAGS=
mod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
goline=$(grep -E '^go ' "$mod")
godebug=$(grep -E '^godebug ' "$mod" || true)
{
	echo '// Builds the pinned Kubernetes binaries for make e2e (hack/deps.sh k8s'
	echo '// runs `go build` here). Written by gen.sh: do not edit by hand.'
	echo 'module github.com/containerd-shim-pause/containerd-shim-pause-v2/hack/k8s'
	echo
	echo "$goline"
	echo
	[ -n "$godebug" ] && { echo "$godebug"; echo; }
	echo 'tool ('
	for cmd in kube-apiserver kubectl kubelet; do echo "	k8s.io/kubernetes/cmd/$cmd"; done
	echo ')'
	echo
	echo "require k8s.io/kubernetes $version"
	echo
	echo 'replace ('
	grep -E '^\s+k8s.io/\S+ v0\.0\.0$' "$mod" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
	echo ')'
} >go.mod
rm -f go.sum
go mod tidy
