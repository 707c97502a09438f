#!/bin/sh
# The installer image's entry point: copy the shim and the containerd
# drop-in under the host root given as $1, atomically, and say what to do.
set -eu
host=${1:?usage: install.sh HOST_ROOT}
mkdir -p "$host/usr/local/bin"
cp /containerd-shim-pause-v2 "$host/usr/local/bin/.containerd-shim-pause-v2.new"
chmod 0755 "$host/usr/local/bin/.containerd-shim-pause-v2.new"
mv -f "$host/usr/local/bin/.containerd-shim-pause-v2.new" "$host/usr/local/bin/containerd-shim-pause-v2"
mkdir -p "$host/etc/containerd/conf.d"
sed 's#^  runtime_type = "io.containerd.pause.v2"#  runtime_type = "/usr/local/bin/containerd-shim-pause-v2"#' \
	/containerd-pause.toml >"$host/etc/containerd/conf.d/.pause.toml.new"
mv -f "$host/etc/containerd/conf.d/.pause.toml.new" "$host/etc/containerd/conf.d/pause.toml"
echo "installed containerd-shim-pause-v2; restart containerd on this node to load the pause runtime"
