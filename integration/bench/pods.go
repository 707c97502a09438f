package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

type bench struct {
	rt    cri.RuntimeServiceClient
	env   *testenv.Env
	floor *cniFloor

	mu      sync.Mutex
	live    []livePod
	seq     int
	samples map[string]map[string][]float64 // handler (or floorTurn) -> metric -> ms
	timed   map[string][]string             // handler -> sandbox ids timed as sandbox_ready
}

type livePod struct {
	handler, id string
}

func (b *bench) record(handler, metric string, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.samples[handler] == nil {
		b.samples[handler] = map[string][]float64{}
	}
	b.samples[handler][metric] = append(b.samples[handler][metric], float64(d.Microseconds())/1000)
}

func (b *bench) podConfig(hostNetwork bool) *cri.PodSandboxConfig {
	b.mu.Lock()
	b.seq++
	n := b.seq
	b.mu.Unlock()
	mode := cri.NamespaceMode_POD
	if hostNetwork {
		mode = cri.NamespaceMode_NODE
	}
	uid := fmt.Sprintf("bench-%d", n)
	hostname := uid
	if hostNetwork {
		hostname = "" // the kubelet leaves a host-network pod the node's
	}
	return &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: uid, Namespace: "bench", Uid: uid},
		Hostname:     hostname,
		LogDirectory: filepath.Join(b.env.Dir, "logs", uid),
		Linux: &cri.LinuxPodSandboxConfig{
			CgroupParent: "/" + b.env.Namespace + "/pod" + uid,
			SecurityContext: &cri.LinuxSandboxSecurityContext{NamespaceOptions: &cri.NamespaceOption{
				Network: mode, Pid: cri.NamespaceMode_POD, Ipc: cri.NamespaceMode_POD,
			}},
		},
	}
}

// startPod runs a sandbox (timed as sandbox_ready) and, when withContainer,
// one busybox container in it (the whole timed as pod_ready).
func (b *bench) startPod(ctx context.Context, handler string, hostNetwork, withContainer bool, metric string) error {
	config := b.podConfig(hostNetwork)
	start := time.Now()
	resp, err := b.rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: config, RuntimeHandler: handler})
	if err != nil {
		return fmt.Errorf("%s: RunPodSandbox: %w", handler, err)
	}
	b.record(handler, metric, time.Since(start))
	b.mu.Lock()
	b.live = append(b.live, livePod{handler, resp.PodSandboxId})
	if metric == "sandbox_ready" {
		b.timed[handler] = append(b.timed[handler], resp.PodSandboxId)
	}
	b.mu.Unlock()
	if !withContainer {
		return nil
	}
	c, err := b.rt.CreateContainer(ctx, &cri.CreateContainerRequest{
		PodSandboxId: resp.PodSandboxId,
		Config: &cri.ContainerConfig{
			Metadata: &cri.ContainerMetadata{Name: "app"},
			Image:    &cri.ImageSpec{Image: testenv.BusyboxImage},
			Command:  []string{"/bin/sleep", "100000"},
			LogPath:  "app.log",
		},
		SandboxConfig: config,
	})
	if err != nil {
		return fmt.Errorf("%s: CreateContainer: %w", handler, err)
	}
	if _, err := b.rt.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		return fmt.Errorf("%s: StartContainer: %w", handler, err)
	}
	b.record(handler, "pod_ready", time.Since(start))
	return nil
}

// stopPod stops and removes a pod, timed as teardown, and removes its pod
// cgroup as the kubelet would.
func (b *bench) stopPod(ctx context.Context, p livePod, timed bool) error {
	start := time.Now()
	if _, err := b.rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		return fmt.Errorf("%s: StopPodSandbox: %w", p.handler, err)
	}
	stopped := time.Now()
	if _, err := b.rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		return fmt.Errorf("%s: RemovePodSandbox: %w", p.handler, err)
	}
	if timed {
		b.record(p.handler, "teardown", time.Since(start))
		b.record(p.handler, "teardown_stop", stopped.Sub(start))
		b.record(p.handler, "teardown_remove", time.Since(stopped))
	}
	return nil
}

// floorCycle times one pod network set up and torn down alone, as the
// floor of sandbox_ready and of teardown.
func (b *bench) floorCycle(ctx context.Context) error {
	b.mu.Lock()
	b.seq++
	n := b.seq
	b.mu.Unlock()
	setup, teardown, err := b.floor.cycle(ctx, fmt.Sprintf("/%s/podbench-%d", b.env.Namespace, n))
	if err != nil {
		return err
	}
	b.record(floorTurn, "sandbox_ready", setup)
	b.record(floorTurn, "teardown", teardown)
	return nil
}

// liveOf lists a handler's live pods.
func (b *bench) liveOf(handler string) []livePod {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []livePod
	for _, p := range b.live {
		if p.handler == handler {
			out = append(out, p)
		}
	}
	return out
}

// removeAll tears down whatever is still live, and the pod cgroups.
func (b *bench) removeAll() {
	ctx := context.Background()
	for _, p := range b.live {
		_ = b.stopPod(ctx, p, false)
	}
	b.live = nil
	for _, root := range testenv.CgroupRoots() {
		dirs, _ := filepath.Glob(filepath.Join(root, b.env.Namespace, "pod*"))
		for _, d := range dirs {
			_ = os.Remove(d)
		}
	}
}

func (b *bench) teardownLive(ctx context.Context, timed bool) error {
	live := b.live
	b.live = nil
	for _, p := range live {
		if err := b.stopPod(ctx, p, timed); err != nil {
			return err
		}
	}
	b.removeAll()
	return nil
}
