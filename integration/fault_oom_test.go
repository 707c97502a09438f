package integration

import (
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestOOMKilled: a container that exceeds its memory limit is killed with
// exit 137 and reason OOMKilled; its neighbour in the pod goes on.
func TestOOMKilled(t *testing.T) {
	forShimModes(t, oomKilled)
}

func oomKilled(t *testing.T, handler string) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	p := runCRIPod(t, ctx, rt, podConfig(t, "oom", false), handler)
	neighbour := p.start(t, ctx, "neighbour", "/bin/sleep", "100000")
	hog := p.startWith(t, ctx, "hog", &cri.ContainerConfig{}, "/bin/sh", "-c", "sleep 0.5; tail /dev/zero")
	if _, err := rt.UpdateContainerResources(ctx, &cri.UpdateContainerResourcesRequest{
		ContainerId: hog, Linux: &cri.LinuxContainerResources{MemoryLimitInBytes: 32 << 20},
	}); err != nil {
		t.Fatal(err)
	}
	cs := waitExited(t, ctx, rt, hog, time.Minute)
	if cs.ExitCode != 137 || cs.Reason != "OOMKilled" {
		t.Errorf("exit %d, reason %q; want 137, OOMKilled", cs.ExitCode, cs.Reason)
	}
	if out := execSync(t, ctx, rt, neighbour, "echo", "still here"); out != "still here" {
		t.Errorf("neighbour: %q", out)
	}
}

// TestPodMemoryLimitOOM: the pod's own limit (resources plus overhead, from
// UpdatePodSandboxResources) OOM-kills the container that grows past it,
// which CRI reports as OOMKilled with exit 137; its neighbour goes on.
func TestPodMemoryLimitOOM(t *testing.T) {
	forShimModes(t, podMemoryLimitOOM)
}

func podMemoryLimitOOM(t *testing.T, handler string) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	p := runCRIPod(t, ctx, rt, podConfig(t, "pod-oom", false), handler)
	neighbour := p.start(t, ctx, "neighbour", "/bin/sleep", "100000")
	if _, err := rt.UpdatePodSandboxResources(ctx, &cri.UpdatePodSandboxResourcesRequest{
		PodSandboxId: p.id,
		Overhead:     &cri.LinuxContainerResources{MemoryLimitInBytes: 8 << 20},
		Resources:    &cri.LinuxContainerResources{MemoryLimitInBytes: 40 << 20},
	}); err != nil {
		t.Fatal(err)
	}
	if got := podMemoryLimit(t, podCgroupPath(p.config)); got != 48<<20 {
		t.Fatalf("pod cgroup memory limit %d, want %d", got, 48<<20)
	}
	// Its own limit is far above the pod's: a safety net, never reached.
	hog := p.startWith(t, ctx, "hog", &cri.ContainerConfig{}, "/bin/sh", "-c", "sleep 0.5; tail /dev/zero")
	if _, err := rt.UpdateContainerResources(ctx, &cri.UpdateContainerResourcesRequest{
		ContainerId: hog, Linux: &cri.LinuxContainerResources{MemoryLimitInBytes: 512 << 20},
	}); err != nil {
		t.Fatal(err)
	}
	cs := waitExited(t, ctx, rt, hog, 2*time.Minute)
	if cs.ExitCode != 137 || cs.Reason != "OOMKilled" {
		t.Errorf("exit %d, reason %q; want 137, OOMKilled", cs.ExitCode, cs.Reason)
	}
	if out := execSync(t, ctx, rt, neighbour, "echo", "still here"); out != "still here" {
		t.Errorf("neighbour: %q", out)
	}
}
