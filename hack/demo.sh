#!/usr/bin/env bash
# The main job, end to end: a private containerd with the pause runtime runs a
# pod of two containers (ctr sandbox run + ctr run --sandbox) with no image
# pulled, shows them sharing the pod's loopback, IPC and PID namespaces, then
# tears everything down and checks that nothing is left.
set -euo pipefail

DEPS_DIR=${DEPS_DIR:-$(pwd)/_deps}
SHIM_BINARY=${SHIM_BINARY:-$(pwd)/bin/containerd-shim-pause-v2}
export PATH=$DEPS_DIR/bin:$(dirname "$SHIM_BINARY"):$PATH
[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (namespaces, cgroups)" >&2; exit 1; }

dir=$(mktemp -d /tmp/pause-demo-XXXXXX)
ns=pause-demo
bridge=pzdemo$$
pid=
ctr() { command ctr --address "$dir/c.sock" --namespace "$ns" "$@" 2> >(grep -v DEPRECATION >&2); }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

teardown() {
	set +e
	ctr task rm -f server >/dev/null 2>&1
	ctr container rm server client >/dev/null 2>&1
	ctr sandbox rm demo >/dev/null 2>&1
	crictl rmp -fa >/dev/null 2>&1
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	left=""
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/exe" 2>/dev/null)" = "$(readlink -f "$SHIM_BINARY")" ] && left="$left shim:${p#/proc/}"
		[ "$(cat "$p/comm" 2>/dev/null)" = pause ] && grep -qa "demo-pod" "$p/cmdline" 2>/dev/null && left="$left pause:${p#/proc/}"
	done
	grep -q "$dir" /proc/self/mountinfo && left="$left mounts"
	ip link del "$bridge" 2>/dev/null
	for c in /sys/fs/cgroup/*/ /sys/fs/cgroup; do c=${c%/}
		rmdir "$c/$ns/podweb" 2>/dev/null # the pod cgroup, the kubelet's to remove
		[ -d "$c/$ns" ] && [ -n "$(find "$c/$ns" -mindepth 1 -type d 2>/dev/null)" ] && left="$left cgroup:$c/$ns"
		rmdir "$c/$ns" 2>/dev/null
	done
	rm -rf "$dir"
	if [ -n "$left" ]; then echo "demo: left behind:$left" >&2; exit 1; fi
	echo "teardown: no shim, pause task, container, mount or cgroup left behind"
}
trap teardown EXIT

say "a private containerd with runtime $(basename "$SHIM_BINARY") ($ns namespace, state in $dir)"
cat >"$dir/config.toml" <<TOML
version = 3
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]
imports = ["$(pwd)/deploy/containerd-pause.toml"]
[grpc]
  address = "$dir/c.sock"
[ttrpc]
  address = "$dir/c.sock.ttrpc"
[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "$dir/s"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$dir/cni"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
TOML
# Pod addresses live only in the pods' network namespaces: the bridge has no
# address on the host.
mkdir -p "$dir/cni"
cat >"$dir/cni/10-demo.conflist" <<JSON
{"cniVersion":"1.0.0","name":"pause-demo","plugins":[
 {"type":"bridge","bridge":"$bridge","isGateway":false,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","dataDir":"$dir/ipam","ranges":[[{"subnet":"10.251.0.0/24"}]]}},
 {"type":"loopback"}]}
JSON
containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
ctr version | sed -n '/Server/,$p'

# A root for the containers from the host's static busybox: nothing pulled.
mkdir -p "$dir/rootfs"/{bin,proc,sys,dev,tmp,etc}
cp "$(command -v busybox)" "$dir/rootfs/bin/busybox"
for a in sh nc ps readlink hostname sleep echo cat; do ln -s busybox "$dir/rootfs/bin/$a"; done

say "ctr sandbox run: the pod and its built-in pause task"
cat >"$dir/pod.json" <<'JSON'
{"ociVersion":"1.2.0","hostname":"demo-pod","linux":{"namespaces":[{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"pid"}]}}
JSON
ctr sandbox run --runtime io.containerd.pause.v2 "$dir/pod.json" demo
ctr sandbox ls
pause=$(ps -eo pid=,comm=,args= | awk '$2=="pause" && /-h demo-pod/ {print $1; exit}')
echo "pause task: pid $pause, $(grep -E '^(Uid|CapEff|NoNewPrivs|VmRSS)' /proc/"$pause"/status | tr -s '\t ' ' ' | paste -sd, -)"

say "ctr run --sandbox: a server container and a client container in the pod"
ctr run -d --rootfs "$dir/rootfs" --runtime io.containerd.pause.v2 --sandbox demo server \
	/bin/sh -c 'while true; do nc -l -p 8080 -e echo "hello over 127.0.0.1 from the server container"; done'
sleep 0.3
ctr run --rm --rootfs "$dir/rootfs" --runtime io.containerd.pause.v2 --sandbox demo client /bin/sh -c '
	echo "client: hostname $(hostname)"
	echo "client: $(nc 127.0.0.1 8080)"
	echo "client: ipc $(readlink /proc/self/ns/ipc), pid $(readlink /proc/self/ns/pid)"
	echo "client: the processes of the pod, the pause task as PID 1:"; ps'
echo "server: ipc $(ctr task exec --exec-id ns server /bin/readlink /proc/self/ns/ipc), pid $(ctr task exec --exec-id ns2 server /bin/readlink /proc/self/ns/pid)"
echo "pause:  ipc $(readlink /proc/"$pause"/ns/ipc), pid $(readlink /proc/"$pause"/ns/pid)"

say "no image was pulled"
echo "images in the content store: $(ctr images ls -q | wc -l)"

say "tear down the ctr pod"
ctr task rm -f server >/dev/null
ctr container rm server
ctr sandbox rm demo

say "the Kubernetes path: CRI with RuntimeClass handler 'pause' (deploy/containerd-pause.toml)"
export CONTAINER_RUNTIME_ENDPOINT=unix://$dir/c.sock IMAGE_SERVICE_ENDPOINT=unix://$dir/c.sock
crictl() { command crictl --timeout 30s "$@" 2> >(grep -v "does not exist, trying next" >&2); }
go run ./integration/testimage/mkimage docker.io/library/busybox:latest "$dir/busybox.tar"
command ctr --address "$dir/c.sock" --namespace k8s.io images import "$dir/busybox.tar" >/dev/null 2> >(grep -v DEPRECATION >&2)
cat >"$dir/pod.yaml" <<YAML
metadata: {name: web, namespace: default, uid: demo-web}
hostname: web
log_directory: $dir/logs
linux: {cgroup_parent: /$ns/podweb, security_context: {namespace_options: {pid: 0}}}
YAML
pod=$(crictl runp --runtime pause "$dir/pod.yaml")
echo "crictl runp --runtime pause: pod ${pod:0:13}, $(crictl inspectp -o go-template --template '{{.status.state}}, IP {{.status.network.ip}}' "$pod")"
for c in srv cli; do
	cmd='["/bin/sleep","1000"]'
	[ $c = srv ] && cmd='["/bin/sh","-c","while true; do nc -l -p 8080 -e echo hello over the pod loopback, through CRI; done"]'
	printf 'metadata: {name: %s}\nimage: {image: docker.io/library/busybox:latest}\ncommand: %s\nlog_path: %s.log\n' $c "$cmd" $c >"$dir/$c.yaml"
	id=$(crictl create "$pod" "$dir/$c.yaml" "$dir/pod.yaml"); crictl start "$id" >/dev/null
	eval "$c=$id"
done
sleep 0.3
echo "cli: $(crictl exec "$cli" nc 127.0.0.1 8080)"
echo "cli: hostname $(crictl exec "$cli" hostname)"
crictl exec "$cli" ps
echo "images in k8s.io: $(crictl images -q | wc -l) (busybox, imported from a local archive); pause image: $(crictl inspecti registry.k8s.io/pause:3.10.2 >/dev/null 2>&1 && echo present || echo absent)"
crictl stopp "$pod" && crictl rmp "$pod"
