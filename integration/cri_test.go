package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criClients dial containerd's CRI over its gRPC socket, as the kubelet does.
func criClients(t *testing.T) (cri.RuntimeServiceClient, cri.ImageServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+env.address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return cri.NewRuntimeServiceClient(conn), cri.NewImageServiceClient(conn)
}

// criPod is a pod started through CRI, removed at the end of the test.
type criPod struct {
	id     string
	config *cri.PodSandboxConfig
	rt     cri.RuntimeServiceClient
}

func podConfig(t *testing.T, name string, hostNetwork bool) *cri.PodSandboxConfig {
	netMode := cri.NamespaceMode_POD
	if hostNetwork {
		netMode = cri.NamespaceMode_NODE
	}
	return &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: name, Namespace: "default", Uid: fmt.Sprintf("%s-%d", name, time.Now().UnixNano())},
		Hostname:     name + "-host",
		LogDirectory: t.TempDir(),
		DnsConfig:    &cri.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}},
		Linux: &cri.LinuxPodSandboxConfig{
			SecurityContext: &cri.LinuxSandboxSecurityContext{
				NamespaceOptions: &cri.NamespaceOption{Network: netMode, Pid: cri.NamespaceMode_POD, Ipc: cri.NamespaceMode_POD},
			},
		},
	}
}

func runCRIPod(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, config *cri.PodSandboxConfig, handler string) *criPod {
	t.Helper()
	resp, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: config, RuntimeHandler: handler})
	if err != nil {
		t.Fatalf("RunPodSandbox on %s: %v", handler, err)
	}
	p := &criPod{id: resp.PodSandboxId, config: config, rt: rt}
	t.Cleanup(func() {
		if _, err := rt.StopPodSandbox(context.Background(), &cri.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
			t.Errorf("StopPodSandbox: %v", err)
		}
		if _, err := rt.RemovePodSandbox(context.Background(), &cri.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
			t.Errorf("RemovePodSandbox: %v", err)
		}
	})
	return p
}

func (p *criPod) start(t *testing.T, ctx context.Context, name string, cmd ...string) string {
	t.Helper()
	resp, err := p.rt.CreateContainer(ctx, &cri.CreateContainerRequest{
		PodSandboxId: p.id,
		Config: &cri.ContainerConfig{
			Metadata: &cri.ContainerMetadata{Name: name},
			Image:    &cri.ImageSpec{Image: busyboxImage},
			Command:  cmd,
			LogPath:  name + ".log",
			Linux: &cri.LinuxContainerConfig{SecurityContext: &cri.LinuxContainerSecurityContext{
				NamespaceOptions: p.config.Linux.SecurityContext.NamespaceOptions,
			}},
		},
		SandboxConfig: p.config,
	})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	if _, err := p.rt.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return resp.ContainerId
}

func execSync(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, id string, cmd ...string) string {
	t.Helper()
	resp, err := rt.ExecSync(ctx, &cri.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 10})
	if err != nil {
		t.Fatalf("ExecSync %v: %v", cmd, err)
	}
	if resp.ExitCode != 0 {
		t.Fatalf("ExecSync %v: exit %d: %s%s", cmd, resp.ExitCode, resp.Stdout, resp.Stderr)
	}
	return strings.TrimSpace(string(resp.Stdout))
}

func TestCRIPodWithoutPauseImage(t *testing.T) {
	ctx := requireEnv(t)
	rt, img := criClients(t)

	// No pause image anywhere: the stock handler cannot start a pod.
	const pauseImage = "registry.k8s.io/pause:3.10.2"
	st, err := img.ImageStatus(ctx, &cri.ImageStatusRequest{Image: &cri.ImageSpec{Image: pauseImage}})
	if err != nil || st.Image != nil {
		t.Fatalf("the pause image must be absent: %v %v", st.GetImage(), err)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	if _, err := rt.RunPodSandbox(rctx, &cri.RunPodSandboxRequest{Config: podConfig(t, "stock", false), RuntimeHandler: "runc"}); err == nil {
		t.Error("stock runc handler started a pod without a pause image")
	} else if !strings.Contains(err.Error(), "pause") {
		t.Errorf("stock runc handler: %v", err)
	}
	cancel()

	pod := runCRIPod(t, ctx, rt, podConfig(t, "web", false), "pause")
	srv := pod.start(t, ctx, "srv", "/bin/sh", "-c", "echo srv-started; while true; do nc -l -p 8080 -e echo hello-cri; done")
	cli := pod.start(t, ctx, "cli", "/bin/sleep", "1000")

	if st, err := img.ImageStatus(ctx, &cri.ImageStatusRequest{Image: &cri.ImageSpec{Image: pauseImage}}); err != nil || st.Image != nil {
		t.Errorf("a pause image appeared: %v %v", st.GetImage(), err)
	}
	ps, err := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: pod.id})
	if err != nil || ps.Status.State != cri.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pod status %v %v", ps.GetStatus().GetState(), err)
	}
	if ip := ps.Status.GetNetwork().GetIp(); !strings.HasPrefix(ip, "10.250.0.") {
		t.Errorf("pod IP %q, want one from the test CNI range", ip)
	}

	// Shared loopback, IPC and PID; hostname, resolv.conf and hosts as configured.
	var out string
	for i := 0; i < 50; i++ {
		resp, err := rt.ExecSync(ctx, &cri.ExecSyncRequest{ContainerId: cli, Cmd: []string{"nc", "127.0.0.1", "8080"}, Timeout: 5})
		if out = string(resp.GetStdout()); err == nil && strings.Contains(out, "hello-cri") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out, "hello-cri") {
		t.Errorf("cli did not reach srv over 127.0.0.1: %q", out)
	}
	for _, ns := range []string{"ipc", "net", "uts", "pid"} {
		a := execSync(t, ctx, rt, srv, "readlink", "/proc/self/ns/"+ns)
		b := execSync(t, ctx, rt, cli, "readlink", "/proc/self/ns/"+ns)
		if a != b {
			t.Errorf("%s namespace differs between containers: %s %s", ns, a, b)
		}
	}
	if ps := execSync(t, ctx, rt, cli, "ps"); !strings.Contains(ps, "nc -l -p 8080") || !strings.Contains(ps, "pause") {
		t.Errorf("shared PID namespace: ps in cli shows %q", ps)
	}
	if h := execSync(t, ctx, rt, cli, "hostname"); h != "web-host" {
		t.Errorf("hostname %q", h)
	}
	resolv := execSync(t, ctx, rt, cli, "cat", "/etc/resolv.conf")
	for _, want := range []string{"nameserver 10.96.0.10", "search default.svc.cluster.local", "options ndots:5"} {
		if !strings.Contains(resolv, want) {
			t.Errorf("resolv.conf lacks %q: %q", want, resolv)
		}
	}
	if h := execSync(t, ctx, rt, cli, "cat", "/etc/hostname"); h != "web-host" {
		t.Errorf("/etc/hostname %q", h)
	}
	hosts, _ := os.ReadFile("/etc/hosts")
	if got := execSync(t, ctx, rt, cli, "cat", "/etc/hosts"); got != strings.TrimSpace(string(hosts)) {
		t.Errorf("/etc/hosts %q, want the node's", got)
	}
	// The pod's /dev/shm is one tmpfs for all its containers.
	execSync(t, ctx, rt, srv, "sh", "-c", "echo shared > /dev/shm/marker")
	if got := execSync(t, ctx, rt, cli, "cat", "/dev/shm/marker"); got != "shared" {
		t.Errorf("/dev/shm not shared: %q", got)
	}

	// Logs land in the CRI log path.
	logPath := filepath.Join(pod.config.LogDirectory, "srv.log")
	if data, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(data), "stdout F srv-started") {
		t.Errorf("container log %s: %q %v", logPath, data, err)
	}

	// Stats and resource updates.
	cs, err := rt.ContainerStats(ctx, &cri.ContainerStatsRequest{ContainerId: cli})
	if err != nil || cs.Stats.GetMemory().GetWorkingSetBytes() == nil {
		t.Errorf("ContainerStats: %v %v", cs, err)
	}
	pstats, err := rt.PodSandboxStats(ctx, &cri.PodSandboxStatsRequest{PodSandboxId: pod.id})
	if err != nil || pstats.Stats.GetLinux().GetMemory() == nil {
		t.Errorf("PodSandboxStats: %v %v", pstats, err)
	}
	if _, err := rt.UpdateContainerResources(ctx, &cri.UpdateContainerResourcesRequest{
		ContainerId: cli, Linux: &cri.LinuxContainerResources{MemoryLimitInBytes: 64 << 20},
	}); err != nil {
		t.Errorf("UpdateContainerResources: %v", err)
	}

	// Stop: containers exit, the pod is NOTREADY; its files go with it.
	if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: pod.id}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{srv, cli} {
		st, err := rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: id})
		if err != nil || st.Status.State != cri.ContainerState_CONTAINER_EXITED {
			t.Errorf("container %s after pod stop: %v %v", id, st.GetStatus().GetState(), err)
		}
	}
	if ps, err := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: pod.id}); err != nil || ps.Status.State != cri.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("pod after stop: %v %v", ps.GetStatus().GetState(), err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: pod.id}); err != nil {
		t.Fatal(err)
	}
	podDir := filepath.Join(env.dir, "root", "io.containerd.grpc.v1.cri", "sandboxes", pod.id)
	shmDir := filepath.Join(env.dir, "state", "io.containerd.grpc.v1.cri", "sandboxes", pod.id)
	for _, d := range []string{podDir, shmDir} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("pod files left in %s", d)
		}
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
