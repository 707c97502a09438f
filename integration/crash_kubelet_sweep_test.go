package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/sys/unix"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

func subdirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// ownedCgroups are the pod cgroups the shim makes itself for pods without
// a cgroup parent (/<namespace>/<id>, CRI's namespace).
func ownedCgroups() map[string]bool {
	m := map[string]bool{}
	for _, root := range testenv.CgroupRoots() {
		for _, name := range subdirNames(filepath.Join(root, criNamespace)) {
			m[filepath.Join(root, criNamespace, name)] = true
		}
	}
	return m
}

// residue lists what is left of CRI's pods and containers (CRI's lists,
// containerd's records in CRI's namespace, bundles, runc's state of the
// containers the case made) and on the host (the suite's leak check).
func (sw *crashSweep) residue(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, containers []string) []string {
	t.Helper()
	var leaks []string
	if pods, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{}); err != nil {
		leaks = append(leaks, "ListPodSandbox: "+err.Error())
	} else {
		for _, p := range pods.Items {
			leaks = append(leaks, fmt.Sprintf("CRI pod %s (%v)", p.Id, p.State))
		}
	}
	if cs, err := rt.ListContainers(ctx, &cri.ListContainersRequest{}); err != nil {
		leaks = append(leaks, "ListContainers: "+err.Error())
	} else {
		for _, c := range cs.Containers {
			leaks = append(leaks, fmt.Sprintf("CRI container %s (%v)", c.Id, c.State))
		}
	}
	cctx := namespaces.WithNamespace(ctx, criNamespace)
	if sbs, err := sw.env.Client.SandboxStore().List(cctx); err == nil {
		for _, sb := range sbs {
			leaks = append(leaks, "containerd sandbox "+sb.ID)
		}
	}
	if resp, err := sw.env.Client.TaskService().List(cctx, nil); err == nil {
		for _, tk := range resp.Tasks {
			leaks = append(leaks, "containerd task "+tk.ID)
		}
	}
	state := filepath.Join(sw.env.Dir, "state")
	for _, dir := range []string{
		filepath.Join(state, "io.containerd.runtime.v2.task", criNamespace),
		filepath.Join(state, "io.containerd.sandbox.controller.v1.shim", criNamespace),
		filepath.Join(state, "io.containerd.grpc.v1.cri", "sandboxes"),
		filepath.Join(sw.env.Dir, "root", "io.containerd.grpc.v1.cri", "sandboxes"),
	} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			leaks = append(leaks, "left in containerd's directories: "+filepath.Join(dir, e.Name()))
		}
	}
	for _, c := range containers {
		if _, err := os.Stat(filepath.Join("/run/containerd/runc", criNamespace, c)); err == nil {
			leaks = append(leaks, "runc container "+c)
		}
	}
	return append(leaks, sw.env.Residue()...)
}

// sweepUp removes what a case left, once its leaks are recorded, so that
// the next case starts clean: the pods CRI still lists, then by pid the
// sweep's shim processes and the pause tasks they left, the mounts under
// the sweep's containerd, its cgroups, shim sockets and pools, and CRI's
// directories of pods it no longer knows.
func (sw *crashSweep) sweepUp(t *testing.T, k *kubelet) {
	t.Helper()
	k.strict = false
	k.removePods()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		exe, _ := os.Readlink(p + "/exe")
		comm, _ := os.ReadFile(p + "/comm")
		if exe == sw.env.Shim || strings.TrimSpace(string(comm)) == "pause" && parentExe(pid) == sw.env.Shim {
			t.Logf("sweeping up: SIGKILL to %d (%s)", pid, strings.TrimSpace(string(comm)))
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		lines := strings.Split(string(data), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if f := strings.Fields(lines[i]); len(f) > 4 && strings.HasPrefix(f[4], sw.env.Dir) {
				_ = unix.Unmount(f[4], unix.MNT_DETACH)
			}
		}
	}
	for _, root := range testenv.CgroupRoots() {
		removeTree(filepath.Join(root, sw.env.Namespace))
	}
	for dir := range ownedCgroupsSince(k.ownBefore) {
		removeTree(dir)
	}
	for _, dir := range []string{
		filepath.Join(sw.env.Dir, "s"),
		filepath.Join(sw.env.Dir, "state", "io.containerd.grpc.v1.cri", "sandboxes"),
		filepath.Join(sw.env.Dir, "root", "io.containerd.grpc.v1.cri", "sandboxes"),
	} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

func parentExe(pid int) string {
	f := statFields(pid)
	if len(f) < 2 {
		return ""
	}
	exe, _ := os.Readlink("/proc/" + f[1] + "/exe")
	return exe
}

// removeTree removes a cgroup and the cgroups below it, deepest first.
func removeTree(dir string) {
	for _, name := range subdirNames(dir) {
		removeTree(filepath.Join(dir, name))
	}
	_ = os.Remove(dir)
}

func ownedCgroupsSince(before map[string]bool) map[string]bool {
	m := map[string]bool{}
	for dir := range ownedCgroups() {
		if !before[dir] {
			m[dir] = true
		}
	}
	return m
}
