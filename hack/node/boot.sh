#!/usr/bin/env bash
# Boots a test node's disk under QEMU (TCG: KVM guests hang on these
# machines) and streams what the guest writes to its virtio-serial port
# "results" to stdout until the VM powers itself off or the timeout ends it.
#
# Usage: boot.sh ROOTFS_CACHE_DIR DISK_IMG RUN_DIR
#   writes RUN_DIR/results.log (the port) and RUN_DIR/console.log (ttyS0)
# Environment: NODE_TIMEOUT in seconds (default 2400), NODE_SMP (2),
#   NODE_MEM (3072, MiB), NODE_QEMU (qemu-system-x86_64), NODE_APPEND (kernel
#   arguments after root=, default "quiet"; e.g. "systemd.show_status=1" to debug),
#   NODE_VIRTIO_SERIAL (1; 0 to boot without the results port).
# Exit status: 0 when the VM powered off by itself, 124 on timeout.
set -euo pipefail

cache=$1 img=$2 run=$3
timeout=${NODE_TIMEOUT:-2400}
results=$run/results.log console=$run/console.log
: >"$results"

qemu=(${NODE_QEMU:-qemu-system-x86_64}
	-accel tcg,thread=multi -cpu max -smp "${NODE_SMP:-2}" -m "${NODE_MEM:-3072}"
	-display none -monitor none -serial "file:$console" -no-reboot
	-kernel "$cache/vmlinuz" -initrd "$cache/initrd.img"
	-append "console=ttyS0 root=/dev/vda rw panic=-1 ${NODE_APPEND:-quiet}"
	-drive "file=$img,format=raw,if=virtio" -nic none)
# The results port; NODE_VIRTIO_SERIAL=0 leaves it out (the harness then reads
# the guest's copy from the disk image after poweroff).
if [ "${NODE_VIRTIO_SERIAL:-1}" != 0 ]; then
	qemu+=(-device virtio-serial -chardev "file,id=res,path=$results" -device virtserialport,chardev=res,name=results)
fi

qpid= tpid=
stop() { # never leave qemu (or the tail) running
	for p in $tpid $qpid; do kill "$p" 2>/dev/null || true; done
	for _ in $(seq 50); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
	[ -n "$qpid" ] && kill -KILL "$qpid" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

"${qemu[@]}" </dev/null >"$run/qemu.log" 2>&1 &
qpid=$!
# Stream the port as it fills; tail ends a second after qemu does.
tail -n +1 -F --pid="$qpid" "$results" 2>/dev/null &
tpid=$!

deadline=$((SECONDS + timeout))
while kill -0 "$qpid" 2>/dev/null; do
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "boot: timeout after ${timeout} s: killing qemu (pid $qpid)" >&2
		stop
		qpid= tpid=
		exit 124
	fi
	sleep 1
done
wait "$qpid" || { echo "boot: qemu exited with status $? (see $run/qemu.log)" >&2; wait "$tpid" || true; tpid= qpid=; exit 1; }
wait "$tpid" || true
tpid= qpid=
