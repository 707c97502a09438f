#!/usr/bin/env bash
# Builds the pause task (pod/pause/c/pause.c) for each architecture the shim
# embeds it for, with pinned flags: `pause.sh DIR` writes DIR/pause_ARCH.elf;
# `pause.sh check` builds them aside and fails unless each is byte for byte
# the committed pod/pause/pause_ARCH.elf. The compilers are Debian 12's gcc
# and its aarch64 cross gcc (hack/deps.sh pause); another gcc version may
# emit other bytes, which the check reports with the version it used.
set -euo pipefail
cd "$(dirname "$0")/.."

# The release flags, which pod/pause's tests also build their variants with.
read -r -d '' -a CFLAGS <pod/pause/c/cflags || true
declare -A CC=([amd64]=${CC_AMD64:-x86_64-linux-gnu-gcc} [arm64]=${CC_ARM64:-aarch64-linux-gnu-gcc})
SRC=pod/pause/c/pause.c

build() { # dir
	for arch in amd64 arm64; do
		"${CC[$arch]}" "${CFLAGS[@]}" -o "$1/pause_$arch.elf" "$SRC"
	done
}

if [ "${1:-}" != check ]; then
	build "${1:-pod/pause}"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
build "$tmp"
status=0
for arch in amd64 arm64; do
	if ! cmp -s "$tmp/pause_$arch.elf" "pod/pause/pause_$arch.elf"; then
		echo "pod/pause/pause_$arch.elf is not the build of $SRC by $("${CC[$arch]}" --version | head -1): run make pause and commit it" >&2
		status=1
	fi
done
exit $status
