package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRIUserNamespacePod: a pod in a user namespace of its own (POD mode):
// the pause task holds it with the pod's mappings, the containers join it.
func TestCRIUserNamespacePod(t *testing.T) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	config := podConfig(t, "userns", false)
	mapping := []*cri.IDMapping{{ContainerId: 0, HostId: 200000, Length: 65536}}
	config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &cri.UserNamespace{Mode: cri.NamespaceMode_POD, Uids: mapping, Gids: mapping}
	pod := runCRIPod(t, ctx, rt, config, "pause")
	c := pod.start(t, ctx, "c", "/bin/sleep", "1000")
	if got := execSync(t, ctx, rt, c, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"); got != "81" {
		t.Errorf("pod sysctl in the pod's network namespace: %q", got)
	}
	if got := strings.Fields(execSync(t, ctx, rt, c, "cat", "/proc/self/uid_map")); strings.Join(got, " ") != "0 200000 65536" {
		t.Errorf("container uid_map %v", got)
	}
	pausePid := pod.pausePid(t, ctx)
	pauseUserns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pausePid))
	if got := execSync(t, ctx, rt, c, "readlink", "/proc/self/ns/user"); got != pauseUserns {
		t.Errorf("container user namespace %s, pause task's %s", got, pauseUserns)
	}
	host, _ := os.Readlink("/proc/self/ns/user")
	if pauseUserns == host {
		t.Error("pause task is in the host's user namespace")
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pausePid))
	if !strings.Contains(string(status), "Uid:\t265535") {
		t.Errorf("pause task should run as the pod's uid 65535 (host 265535): %s", status)
	}
}

func TestCRIHostNetworkPod(t *testing.T) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	pod := runCRIPod(t, ctx, rt, podConfig(t, "hostnet", true), "pause")
	c := pod.start(t, ctx, "c", "/bin/sleep", "1000")
	host, _ := os.Readlink("/proc/self/ns/net")
	if got := execSync(t, ctx, rt, c, "readlink", "/proc/self/ns/net"); got != host {
		t.Errorf("host-network container in %s, host is %s", got, host)
	}
	hostname, _ := os.Hostname()
	if got := execSync(t, ctx, rt, c, "hostname"); got != hostname {
		t.Errorf("host-network pod hostname %q, want the node's %q", got, hostname)
	}
}

// TestCRISystemdParentWithoutSystemd: a pod whose cgroup parent is a slice
// (the kubelet's systemd driver) on a host without systemd is refused with
// an error that says so, and leaves nothing.
func TestCRISystemdParentWithoutSystemd(t *testing.T) {
	ctx := requireEnv(t)
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("systemd runs here: the driver is available (TestNodeSystemdPod)")
	}
	rt, _ := criClients(t)
	config := podConfig(t, "slice", false)
	config.Linux.CgroupParent = "kubepods-besteffort-pod1234.slice"
	_, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: config, RuntimeHandler: "pause"})
	if err == nil || !strings.Contains(err.Error(), "systemd is not running") {
		t.Fatalf("got %v, want the systemd driver refused", err)
	}
}
