#!/usr/bin/env bash
# Runs inside the test node (systemd as PID 1, cgroup v2, /run noexec, as
# Debian boots): the integration tests that make a node's case, then
# critest's fast subset on the systemd handlers, each against a private
# containerd the tests start. Output goes to the harness; its last line is
# "node: exit N".
set -u
cd "$(dirname "$0")"
node=$(pwd)
export PATH=$node/bin:$PATH DEPS_DIR=$node SHIM_BINARY=$node/bin/containerd-shim-pause-v2
# The suite's pods get slice parents, as from a kubelet with the systemd
# driver; handler runc gets SystemdCgroup, handler pause-systemd the shim's.
export PAUSE_IT_CGROUP_DRIVER=systemd
# Containers run about 40 times slower under emulation: fewer pods, longer
# deadlines.
export PAUSE_IT_SLOW=1

echo "node: init $(cat /proc/1/comm), $(systemctl --version | head -1), kernel $(uname -r)"
echo "node: /sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup); /run is mounted $(findmnt -no OPTIONS /run)"

# The CRI pod scenarios (pod and containers sharing localhost, exec, logs,
# stats, stop/remove; OOM), the systemd placement and unit cleanup, ctr
# pods, and the pause task's privileges, on this node. Containerd restarts
# with live pods are make e2e's TestContainerdKilled and TestClusterInstall
# here (TestContainerdRestartKeepsPods runs on the host).
tests='^(TestNode.*|TestCRIPodWithoutPauseImage|TestCRIPodsandboxMode|TestOOMKilled|TestPodMemoryLimitOOM|TestPodSharesNamespacesAndLoopback|TestPauseTaskLeastPrivilege|TestShimKilled|TestPodsShareShims|TestSharedShimKilled)$'
# make e2e's scenarios, all of them (NodeConformance is make
# e2e-conformance's, on the host).
e2e_skip='^TestNodeConformance$'
# critest's fast subset (make conformance-fast's), or all of it with the
# payload's mode "conformance" (make conformance-node); runc with
# SystemdCgroup is the reference.
focus='PodSandbox|basic operations on container|NamespaceOption|Streaming runtime should support (exec|attach)'
mode=$(cat mode 2>/dev/null || echo test)
rc=0
# The one-node cluster needs an address besides loopback, which the
# kubelet reports (with its Hostname) and through which the API server
# streams exec, logs and attach; this VM has no network card (-nic none): a
# dummy one, holding the default route, stands in (nothing leaves the VM).
node_address() {
	ip link add node0 type dummy && ip addr add 10.252.0.2/24 dev node0 &&
		ip link set node0 up && ip route add default dev node0 || { echo "node: no address for the kubelet (a dummy link)"; return 1; }
}
# The cluster install: deploy/ applied to a cluster whose node's
# containerd is containerd.service from a stock config; the installer's
# images are in the payload (payload.sh).
install_test() {
	(cd repo/integration/e2e && PAUSE_E2E_INSTALL=$node/installer ./e2e.test -test.v -test.count=1 -test.timeout 40m -test.run '^TestClusterInstall$')
}
# critest's runc reference on this node runs with make conformance-node;
# make test-node runs the handler under test.
handlers=pause-systemd
if [ "$mode" = install ]; then
	node_address || rc=1
	install_test || rc=1
	exit $rc
elif [ "$mode" = conformance ]; then
	focus= handlers=runc,pause-systemd
else
	(cd repo/integration && ./integration.test -test.v -test.count=1 -test.timeout 40m -test.run "$tests") || rc=1
	# A subset of the crash-point sweep (the host's sweeps every point in
	# both shim modes): the shim killed on the systemd driver's path, once
	# its pod's slice is made and once its pause task's scope is.
	(cd repo/integration && SHIM_FAILPOINTS_BINARY=$node/bin/containerd-shim-pause-v2-failpoints ./integration.test -test.v -test.count=1 -test.timeout 20m \
		-test.run '^TestCrashPoints$/^pause$/^(podStartAfterCgroup|podPauseAfterScope)$') || rc=1
	# A one-node cluster (etcd, kube-apiserver, the kubelet on the systemd
	# driver over cgroup v2) and make e2e's scenarios, on RuntimeClass
	# pause and on runc, with the suite's leak check (pod slices included).
	# Mode "node" (another kind of node: the node's own tests and critest
	# only) leaves out the cluster.
	if [ "$mode" = test ]; then
		node_address || rc=1
		(cd repo/integration/e2e && ./e2e.test -test.v -test.count=1 -test.timeout 40m -test.skip "$e2e_skip") || rc=1
		install_test || rc=1
	fi
fi
(cd repo && "$node/bin/conformance" -handlers "$handlers" -focus "$focus" -standins "$node/standins" -out /var/log/pause-node/conformance) || rc=1
# A node with crun (NODE_PACKAGES=crun): the same subset with crun as the
# OCI runtime, on runc.v2 (the reference) and on this shim.
if [ "$mode" = node ] && command -v crun >/dev/null; then
	echo "node: $(crun --version | head -1)"
	(cd repo && "$node/bin/conformance" -handlers runc-crun,pause-crun -focus "$focus" -standins "$node/standins" -out /var/log/pause-node/conformance-crun) || rc=1
fi
[ "$mode" = conformance ] && cat /var/log/pause-node/conformance/*.md
# Its totals, as lines the harness adds to its count.
sed -n 's/^- \([^:]*\): \([0-9]* passed, [0-9]* failed\).*/critest \1: \2/p' /var/log/pause-node/conformance*/*.md 2>/dev/null
exit $rc
