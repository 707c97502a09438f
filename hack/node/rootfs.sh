#!/usr/bin/env bash
# Builds (once) the root filesystem of the test node: Debian with systemd as
# PID 1, its cloud kernel and an initramfs, cached as a tarball plus the
# kernel and initrd next to it. The cache directory is named after a hash of
# everything that decides its content, so a rerun with the same inputs skips
# mmdebstrap (~60 s) and a changed package list builds a new one.
#
# Usage: rootfs.sh            prints the cache directory:
#          DIR/rootfs.tar  DIR/vmlinuz  DIR/initrd.img
# Environment:
#   NODE_CACHE     where caches live (default: _deps/node of the repo)
#   NODE_SUITE     Debian suite (default: bookworm)
#   NODE_PACKAGES  extra packages, space separated, on top of the base list
#   NODE_MIRROR    mmdebstrap's mirror argument: a URL, a "deb ..." line or a
#                  sources file. Default: the host's own apt sources file when
#                  it names the suite, else mmdebstrap's default mirror.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cache_root=${NODE_CACHE:-$repo/_deps/node}
suite=${NODE_SUITE:-bookworm}
# What the node needs: systemd as PID 1 with udev and dbus, the kernel and
# its initramfs, ip and modprobe, libseccomp for runc, CNI plugins for CRI
# pods; procps for ps/sysctl when debugging in the guest.
packages="systemd systemd-sysv udev dbus iproute2 kmod linux-image-cloud-amd64 initramfs-tools libseccomp2 containernetworking-plugins procps ${NODE_PACKAGES:-}"
packages=$(tr ' ' '\n' <<<"$packages" | sed '/^$/d' | sort -u | paste -sd, -)

# The mirror: follow how apt is configured on this machine.
mirror=${NODE_MIRROR-}
if [ -z "${NODE_MIRROR+set}" ]; then
	for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
		if [ -f "$f" ] && grep -Eq "^(Suites:.*[[:space:]]|deb[[:space:]].*[[:space:]])$suite([[:space:]]|$)" "$f"; then
			mirror=$f
			break
		fi
	done
fi
mirror_text=$mirror
[ -f "$mirror" ] && mirror_text=$(grep -v '^#' "$mirror")

# Docs, man pages and locales are dropped: a smaller tree to copy per run.
opts=(--variant=apt "--include=$packages"
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright')
key=$(printf '%s\n' "$suite" "${opts[@]}" "$mirror_text" | sha256sum | cut -c1-16)
dir=$cache_root/rootfs-$suite-$key

if [ -s "$dir/rootfs.tar" ] && [ -s "$dir/vmlinuz" ] && [ -s "$dir/initrd.img" ]; then
	echo "$dir"
	exit 0
fi

command -v mmdebstrap >/dev/null || { echo "rootfs: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "rootfs: needs root (mmdebstrap root mode)" >&2; exit 1; }
mkdir -p "$cache_root"
tmp=$(mktemp -d "$cache_root/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "rootfs: mmdebstrap $suite (${mirror:-default mirror}) into $dir" >&2
start=$SECONDS
args=("${opts[@]}" "$suite" "$tmp/rootfs.tar")
[ -n "$mirror" ] && args+=("$mirror")
mmdebstrap --quiet "${args[@]}" </dev/null >&2
# The kernel and initrd boot the VM from outside its disk.
tar -C "$tmp" -xf "$tmp/rootfs.tar" --wildcards './boot/vmlinuz-*' './boot/initrd.img-*'
mv "$tmp"/boot/vmlinuz-* "$tmp/vmlinuz"
mv "$tmp"/boot/initrd.img-* "$tmp/initrd.img"
rmdir "$tmp/boot"
printf '%s\n' "$suite" "${opts[@]}" "$mirror_text" >"$tmp/inputs"
rm -rf "$dir" && mv "$tmp" "$dir"
trap - EXIT
echo "rootfs: built in $((SECONDS - start)) s" >&2
echo "$dir"
