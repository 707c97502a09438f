#!/usr/bin/env bash
# Runs a payload on a throwaway systemd + cgroup v2 node (a Debian VM under
# QEMU): builds or reuses the root filesystem, assembles a disk with the
# payload, boots it, streams the payload's run.sh output and ends with a line
# "N passed, N failed" (the "--- PASS"/"--- FAIL" lines run.sh printed, in
# go test -v's format). The exit status is run.sh's; a run that never reports
# its exit status (a hang, the timeout, a crash) or that reports a failed
# check while exiting 0 fails too.
#
# A timeout or a missing exit status counts as one more failed check.
#
# Usage: test.sh PAYLOAD_DIR      (PAYLOAD_DIR/run.sh is the in-VM script)
# Environment: NODE_OUT (default _output/node: per-run directories, kept only
#   on failure), NODE_TIMEOUT (40m; s, m or h suffix, or seconds), NODE_CGROUP
#   (v2, or v1: systemd.unified_cgroup_hierarchy=0), and those of
#   rootfs.sh, disk.sh and boot.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
payload=$(cd "$1" && pwd)
out=${NODE_OUT:-$repo/_output/node}
timeout=${NODE_TIMEOUT:-40m}
case $timeout in
*h) timeout=$((${timeout%h} * 3600)) ;; *m) timeout=$((${timeout%m} * 60)) ;; *s) timeout=${timeout%s} ;;
esac
export NODE_TIMEOUT=$timeout
# NODE_CGROUP=v1 boots the node with cgroup v1 under systemd (its hybrid
# mode, as older nodes run it); v2 (the default) as Debian boots.
case ${NODE_CGROUP:-v2} in
v1) export NODE_APPEND="${NODE_APPEND:-quiet} systemd.unified_cgroup_hierarchy=0" ;;
v2) ;;
*) echo "node: NODE_CGROUP=$NODE_CGROUP: want v1 or v2" >&2; exit 2 ;;
esac
# Whatever stops the harness itself still ends with the summary line.
trap 'rc=$?; [ -n "${finished:-}" ] || { echo "node: FAIL: harness error (status $rc)"; echo "0 passed, 1 failed"; }' EXIT
[ "$(id -u)" -eq 0 ] || { echo "node: needs root (mmdebstrap, a root-owned tree for mkfs)" >&2; exit 1; }

t0=$SECONDS
cache=$("$here/rootfs.sh")
t_rootfs=$((SECONDS - t0))

mkdir -p "$out"
run=$(mktemp -d "$out/run-$(date +%Y%m%d-%H%M%S)-XXXX")
t1=$SECONDS
"$here/disk.sh" "$cache" "$payload" "$run/disk.img"
t_disk=$((SECONDS - t1))
echo "node: rootfs $(basename "$cache") (${t_rootfs} s), disk assembled in ${t_disk} s; booting (timeout ${timeout} s, console in $run/console.log)"

t2=$SECONDS
boot=0
"$here/boot.sh" "$cache" "$run/disk.img" "$run" || boot=$?
t_vm=$((SECONDS - t2))

# The port did not carry the exit line (no virtio-serial in the guest, or the
# run was cut short): read the copy the guest wrote on its disk. debugfs reads
# ext4 without mounting it.
if ! grep -q '^node: exit ' "$run/results.log" && debugfs -R 'cat /var/log/pause-node/results.log' "$run/disk.img" >"$run/results.disk.log" 2>/dev/null; then
	# Print only what the port did not already stream.
	missed=$(tail -c +"$(($(stat -c %s "$run/results.log") + 1))" "$run/results.disk.log")
	if [ -n "$missed" ]; then
		echo "node: the rest of the output, from the guest's copy on the disk image:"
		printf '%s\n' "$missed"
		cp "$run/results.disk.log" "$run/results.log"
	fi
fi

results=$run/results.log
passed=$(grep -Ec '^[[:space:]]*--- PASS' "$results" || true)
failed=$(grep -Ec '^[[:space:]]*--- FAIL' "$results" || true)
# Totals of suites that are not go test's, as "critest HANDLER: N passed, M failed".
read -r cp cf < <(sed -n 's/^critest [^:]*: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$results" |
	awk '{p += $1; f += $2} END {print p + 0, f + 0}')
passed=$((passed + cp)) failed=$((failed + cf))
status=$(sed -n 's/^node: exit \([0-9]*\)$/\1/p' "$results" | tail -1)
boot_to_script=$(sed -n 's/^node: script starts at uptime \([0-9]*\).*/\1/p' "$results" | head -1)

if [ "$boot" -eq 124 ]; then
	echo "node: FAIL: timed out after ${timeout} s"
	status=124 failed=$((failed + 1))
elif [ -z "$status" ]; then
	echo "node: FAIL: the guest never reported an exit status (boot.sh status $boot)"
	status=1 failed=$((failed + 1))
elif [ "$status" -eq 0 ] && [ "$failed" -gt 0 ]; then
	echo "node: FAIL: run.sh exited 0 but reported $failed failed check(s)"
	status=1
fi
echo "node: timings: rootfs ${t_rootfs} s, disk ${t_disk} s, boot to script ${boot_to_script:-?} s (guest uptime), VM ${t_vm} s, total $((SECONDS - t0)) s"

if [ "$status" -eq 0 ]; then
	rm -rf "$run"
else
	# The script's own lines are on the console too: show what is not.
	echo "node: last lines of the console besides run.sh's output ($run/console.log):"
	{ grep -v 'pause-node-run\[' "$run/console.log" || true; } | tail -n 25 | sed 's/^/  console| /'
	echo "node: kept for debugging: $run (disk.img, console.log, results.log)"
fi
finished=1
echo "$passed passed, $failed failed"
exit "$status"
