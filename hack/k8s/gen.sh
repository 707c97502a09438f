#!/usr/bin/env bash
# Writes the build modules of the pinned Kubernetes release and tidies them:
# hack/k8s (make e2e's kubelet, kube-apiserver, kubectl) and
# hack/k8s/conformance (make e2e-conformance's kube-scheduler,
# kube-controller-manager, agnhost, e2e.test and the ginkgo CLI that runs
# it in parallel, at the version k8s.io/kubernetes requires), apart so that
# one's binaries are not rebuilt when the other's go.mod changes.
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, client-go, ...)
# at v0.0.0, which only its own replace directives resolve, and those do not
# apply to a module that requires it. Each one required at exactly v0.0.0 is
# replaced here by its published release, v0.<minor>.<patch>.
#
# e2e.test is the test binary of k8s.io/kubernetes/test/e2e (`go test -c`):
# tidy keeps only what the module's own packages import, so
# conformance/e2e.go (build tag tools) imports what that package's test
# files import.
# Usage: hack/k8s/gen.sh v1.34.2 (then commit both go.mod and go.sum, and
# conformance/e2e.go).
set -euo pipefail
version=${1:?usage: gen.sh v1.MINOR.PATCH}
staging=v0.${version#v1.}
cd "$(dirname "$0")"
export GOFLAGS=
mod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
goline=$(grep -E '^go ' "$mod")
godebug=$(grep -E '^godebug ' "$mod" || true)

# gomod DIR MODULE HEADER PACKAGE... writes DIR/go.mod with the packages
# as tools.
gomod() {
	local dir=$1 module=$2 header=$3 p
	shift 3
	{
		echo "$header"
		echo "module github.com/containerd-shim-pause/containerd-shim-pause-v2/hack/$module"
		echo
		echo "$goline"
		echo
		[ -n "$godebug" ] && { echo "$godebug"; echo; }
		echo 'tool ('
		for p in "$@"; do echo "	$p"; done
		echo ')'
		echo
		echo "require k8s.io/kubernetes $version"
		echo
		echo 'replace ('
		grep -E '^\s+k8s.io/\S+ v0\.0\.0$' "$mod" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
		echo ')'
	} >"$dir/go.mod"
	rm -f "$dir/go.sum"
}

gomod . k8s '// Builds the pinned Kubernetes binaries for make e2e (hack/deps.sh k8s
// runs `go build` here). Written by gen.sh: do not edit by hand.' \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet
go mod tidy

mkdir -p conformance
gomod conformance k8s/conformance '// Builds the pinned Kubernetes binaries for make e2e-conformance
// (hack/deps.sh k8s-conformance runs `go build` and `go test -c` here).
// Written by hack/k8s/gen.sh: do not edit by hand.' \
	github.com/onsi/ginkgo/v2/ginkgo k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/test/images/agnhost
rm -f conformance/e2e.go
# The test files' imports of test/e2e (e2e_test.go: the suites it links
# in), but the standard library's.
imports=$(cd conformance && go list -mod=mod -e -f '{{join .TestImports "\n"}}' k8s.io/kubernetes/test/e2e | grep -E '^[^/]+\.[^/]+/')
{
	echo '//go:build tools'
	echo
	echo '// Written by hack/k8s/gen.sh: do not edit by hand. The packages the test'
	echo '// files of k8s.io/kubernetes/test/e2e import, so that go mod tidy keeps'
	echo '// what `go test -c k8s.io/kubernetes/test/e2e` needs (e2e.test).'
	echo 'package conformance'
	echo
	echo 'import ('
	for p in $imports; do echo "	_ \"$p\""; done
	echo ')'
} >conformance/e2e.go
gofmt -w conformance/e2e.go
(cd conformance && go mod tidy)
