package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"strings"
	"syscall"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// The node tests hold on a real node: systemd as PID 1 and the systemd
// cgroup driver, over cgroup v2 or v1. `make test-node` boots such a node
// (a Debian VM; NODE_CGROUP=v1 boots it with v1) and runs them there, with
// testenv's systemd handlers.

// requireSystemdNode skips where the node's configuration is truly absent.
func requireSystemdNode(t *testing.T) {
	t.Helper()
	requireEnv(t)
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		t.Skip("needs systemd as PID 1 (make test-node boots such a node)")
	}
	if !testenv.SystemdDriver() {
		t.Skipf("needs %s=systemd (make test-node sets it)", testenv.SystemdDriverEnv)
	}
}

// ownCgroup is the cgroup systemd placed a process in: its path in the v2
// hierarchy (on v1, systemd's hybrid mode keeps one for its own tracking),
// else in systemd's named v1 hierarchy.
func ownCgroup(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	named := ""
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "0::"); ok {
			return v
		}
		if _, v, ok := strings.Cut(line, ":name=systemd:"); ok {
			named = v
		}
	}
	return named
}

// unitState is systemd's ActiveState of a unit ("inactive" once unloaded).
func unitState(t *testing.T, unit string) string {
	t.Helper()
	out, err := exec.Command("systemctl", "show", "-P", "ActiveState", unit).Output()
	if err != nil {
		t.Fatalf("systemctl show %s: %v", unit, err)
	}
	return strings.TrimSpace(string(out))
}

// TestNodeSystemdPod: on handler pause-systemd (SystemdCgroup = true) and on
// handler pause (no option: the slice parent alone chooses the driver), a
// CRI pod's pause task sits in cri-containerd-<id>.scope in the pod's slice,
// its containers in scopes beside it; the pod's stats read the slice's v2
// files; after stop and remove no unit of the pod is left.
func TestNodeSystemdPod(t *testing.T) {
	requireSystemdNode(t)
	for _, handler := range []string{"pause-systemd", "pause"} {
		t.Run(handler, func(t *testing.T) {
			ctx := requireEnv(t)
			rt, _ := criClients(t)
			config := podConfig(t, "sd", false)
			slicePath := config.Linux.CgroupParent
			if handler == "pause" {
				// The slice's name alone, which CRI also turns into
				// systemd paths, instead of the kubelet's expanded path.
				config.Linux.CgroupParent = path.Base(slicePath)
			}
			pod := runCRIPod(t, ctx, rt, config, handler)
			c := pod.start(t, ctx, "app", "/bin/sleep", "100000")

			pause := pod.pausePid(t, ctx)
			scope := "cri-containerd-" + pod.id + ".scope"
			// The scope is started off the sandbox's start path.
			for deadline := time.Now().Add(30 * time.Second); ownCgroup(t, pause) != slicePath+"/"+scope && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
			}
			if got := ownCgroup(t, pause); got != slicePath+"/"+scope {
				t.Errorf("pause task in cgroup %s, want %s/%s", got, slicePath, scope)
			}
			if st := unitState(t, scope); st != "active" {
				t.Errorf("pause scope %s is %s", scope, st)
			}
			cs, err := rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: c, Verbose: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := ownCgroup(t, containerPid(t, cs.Info["info"])); got != slicePath+"/cri-containerd-"+c+".scope" {
				t.Errorf("container in cgroup %s, want a scope in %s", got, slicePath)
			}
			// The pod's cgroup is the slice: stats read its v2 files.
			st, err := rt.PodSandboxStats(ctx, &cri.PodSandboxStatsRequest{PodSandboxId: pod.id})
			if err != nil || st.GetStats().GetLinux().GetCpu() == nil || st.GetStats().GetLinux().GetMemory() == nil {
				t.Errorf("PodSandboxStats: %v %v", st, err)
			}
			list, err := rt.ListPodSandboxStats(ctx, &cri.ListPodSandboxStatsRequest{Filter: &cri.PodSandboxStatsFilter{Id: pod.id}})
			if err != nil || len(list.GetStats()) != 1 {
				t.Errorf("ListPodSandboxStats: %v %v", list, err)
			}

			if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: pod.id}); err != nil {
				t.Fatal(err)
			}
			if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: pod.id}); err != nil {
				t.Fatal(err)
			}
			for _, unit := range []string{scope, "cri-containerd-" + c + ".scope"} {
				if st := unitState(t, unit); st != "inactive" {
					t.Errorf("unit %s is %s after the pod's removal", unit, st)
				}
			}
		})
	}
}

// TestNodeShimKilledLeavesNoUnit: a shim killed outright leaves no unit:
// its pause task dies with it (its scope empties), and `shim delete`, which
// containerd runs, stops what is left.
func TestNodeShimKilledLeavesNoUnit(t *testing.T) {
	requireSystemdNode(t)
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	pod := runCRIPod(t, ctx, rt, podConfig(t, "sdkill", false), "pause-systemd")
	c := pod.start(t, ctx, "app", "/bin/sleep", "100000")
	pause := pod.pausePid(t, ctx)
	scope := "cri-containerd-" + pod.id + ".scope"
	for deadline := time.Now().Add(30 * time.Second); unitState(t, scope) != "active" && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	shim := parentOf(t, pause)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitPodDown(t, ctx, rt, pod.id, c, "its shim died")
	if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: pod.id}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: pod.id}); err != nil {
		t.Fatal(err)
	}
	if st := unitState(t, scope); st != "inactive" {
		t.Errorf("scope %s is %s after shim delete", scope, st)
	}
}
