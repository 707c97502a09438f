#!/usr/bin/env bash
# Assembles the disk of one test run: the cached root filesystem, the
# caller's payload in /opt/pause-node, and a oneshot unit that runs
# /opt/pause-node/run.sh once the node is up, then powers the VM off.
#
# Usage: disk.sh ROOTFS_CACHE_DIR PAYLOAD_DIR DISK_IMG
#   ROOTFS_CACHE_DIR  from rootfs.sh (holds rootfs.tar)
#   PAYLOAD_DIR       copied to /opt/pause-node; must hold an executable run.sh
# Environment: NODE_DISK_SIZE (default 3G, a sparse file), NODE_HOSTNAME.
#
# What the node keeps as Debian ships it, on purpose: /run as the initramfs
# mounts it (nodev,noexec,nosuid) and the unified cgroup v2 hierarchy.
set -euo pipefail

cache=$1 payload=$2 img=$3
size=${NODE_DISK_SIZE:-3G}
host=${NODE_HOSTNAME:-pause-node}
[ -x "$payload/run.sh" ] || { echo "disk: $payload/run.sh is missing or not executable" >&2; exit 1; }

root=$(mktemp -d "$(dirname "$img")/root-XXXXXX")
trap 'rm -rf "$root"' EXIT
tar -C "$root" -xf "$cache/rootfs.tar"

# The payload, and the guest side of the harness (node-run, below).
mkdir -p "$root/opt/pause-node"
cp -a "$payload/." "$root/opt/pause-node/"
cat >"$root/usr/local/sbin/pause-node-run" <<'SH'
#!/bin/bash
# Runs /opt/pause-node/run.sh with its output going to the virtio-serial port
# "results" (streamed to the host), to /var/log/pause-node/results.log (read
# from the image if the port is missing) and to the console; ends with the
# line "node: exit N". The unit powers the VM off when this returns.
log=/var/log/pause-node/results.log
port=/dev/virtio-ports/results
mkdir -p "${log%/*}"
[ -e "$port" ] || udevadm settle --timeout=10
[ -e "$port" ] || port=/dev/null
export PATH=/opt/pause-node/bin:$PATH HOME=/root NODE_PAYLOAD=/opt/pause-node
{
	mu=$(systemctl show -P ActiveEnterTimestampMonotonic multi-user.target)
	echo "node: script starts at uptime $(cut -d' ' -f1 /proc/uptime) s (multi-user.target reached at $((mu / 1000000)).$(printf %06d $((mu % 1000000))) s)"
	[ "$port" = /dev/null ] && echo "node: no virtio-serial port: results only in $log"
	cd /opt/pause-node && ./run.sh 2>&1
	echo "node: exit $?"
} | tee -a "$log" "$port"
sync
SH
chmod 0755 "$root/usr/local/sbin/pause-node-run"
cat >"$root/etc/systemd/system/pause-node.service" <<'UNIT'
[Unit]
Description=pause-node test run (/opt/pause-node/run.sh), then power off
After=multi-user.target
SuccessAction=poweroff
FailureAction=poweroff
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/pause-node-run
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity
[Install]
WantedBy=multi-user.target
UNIT
ln -s ../pause-node.service "$root/etc/systemd/system/multi-user.target.wants/pause-node.service"

# Identity: a hostname, a fresh machine id (so this is not a "first boot"
# that would prompt on the console), the root disk in fstab.
echo "$host" >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost ip6-localhost ip6-loopback\n' "$host" >"$root/etc/hosts"
tr -d '-' </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
echo '/dev/vda / ext4 rw,relatime 0 0' >"$root/etc/fstab"

# Off: what would hold the serial console (gettys: the unit's output would be
# lost) or prompt on it, and timers with nothing to do on a throwaway node.
for u in serial-getty@ttyS0.service getty@tty1.service console-getty.service systemd-firstboot.service \
	apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer; do
	ln -sf /dev/null "$root/etc/systemd/system/$u"
done

rm -f "$img"
mkfs.ext4 -q -F -L pause-node -d "$root" "$img" "$size" >/dev/null
