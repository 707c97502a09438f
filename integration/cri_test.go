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

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// pauseImage is the sandbox image CRI pins by default.
const pauseImage = "registry.k8s.io/pause:3.10.2"

// criClients dial containerd's CRI over its gRPC socket, as the kubelet does.
func criClients(t *testing.T) (cri.RuntimeServiceClient, cri.ImageServiceClient) {
	t.Helper()
	conn, rt := dialCRI(t, env.Address)
	t.Cleanup(func() { conn.Close() })
	return rt, cri.NewImageServiceClient(conn)
}

func dialCRI(t *testing.T, address string) (*grpc.ClientConn, cri.RuntimeServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return conn, cri.NewRuntimeServiceClient(conn)
}

// criPod is a pod started through CRI, removed at the end of the test.
type criPod struct {
	id     string
	config *cri.PodSandboxConfig
	rt     cri.RuntimeServiceClient
}

// podConfig is a pod as the kubelet sends it, with a pod cgroup under the
// suite's cgroup (the kubelet makes and removes pod cgroups: so does the test).
func podConfig(t *testing.T, name string, hostNetwork bool) *cri.PodSandboxConfig {
	netMode := cri.NamespaceMode_POD
	if hostNetwork {
		netMode = cri.NamespaceMode_NODE
	}
	uid := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	cgroupParent := "/" + env.Namespace + "/pod" + uid
	if testenv.SystemdDriver() {
		// As the kubelet's systemd driver sends a BestEffort pod's slice:
		// its expanded path (a dash opens a level of the slice tree: none
		// in the uid).
		slice := "pauseit-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
		cgroupParent = "/pauseit.slice/pauseit-besteffort.slice/" + slice
		t.Cleanup(func() { testenv.StopUnit(t, slice) })
	} else {
		t.Cleanup(func() { removeCgroup(t, cgroupParent) })
	}
	sysctls := map[string]string{"kernel.shm_rmid_forced": "1"}
	if !hostNetwork {
		sysctls["net.ipv4.ip_unprivileged_port_start"] = "81"
	}
	return &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: name, Namespace: "default", Uid: uid},
		Hostname:     name + "-host",
		LogDirectory: t.TempDir(),
		DnsConfig:    &cri.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}},
		Linux: &cri.LinuxPodSandboxConfig{
			CgroupParent: cgroupParent,
			Sysctls:      sysctls,
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

// pausePid is the pod's pause task, from the verbose sandbox status.
func (p *criPod) pausePid(t *testing.T, ctx context.Context) int {
	t.Helper()
	st, err := p.rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: p.id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(st.Info["pause_pid"])
	if err != nil || pid == 0 {
		t.Fatalf("no pause pid in the sandbox status: %v", st.Info)
	}
	return pid
}

func (p *criPod) start(t *testing.T, ctx context.Context, name string, cmd ...string) string {
	t.Helper()
	return p.startWith(t, ctx, name, &cri.ContainerConfig{}, cmd...)
}

// startWith creates and starts a busybox container from base (for its
// terminal and stdin settings).
func (p *criPod) startWith(t *testing.T, ctx context.Context, name string, base *cri.ContainerConfig, cmd ...string) string {
	t.Helper()
	config := base
	config.Metadata = &cri.ContainerMetadata{Name: name}
	config.Image = &cri.ImageSpec{Image: busyboxImage}
	config.Command = cmd
	config.LogPath = name + ".log"
	config.Linux = &cri.LinuxContainerConfig{SecurityContext: &cri.LinuxContainerSecurityContext{
		NamespaceOptions: p.config.Linux.SecurityContext.NamespaceOptions,
	}}
	resp, err := p.rt.CreateContainer(ctx, &cri.CreateContainerRequest{
		PodSandboxId:  p.id,
		Config:        config,
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

// podCgroupPath is the cgroup of a pod from podConfig: its parent (under
// the systemd driver, the slice's expanded path).
func podCgroupPath(config *cri.PodSandboxConfig) string {
	return config.Linux.CgroupParent
}

// podMemoryLimit reads a pod cgroup's memory limit on either hierarchy.
func podMemoryLimit(t *testing.T, cgroup string) int64 {
	t.Helper()
	for _, f := range []string{"/sys/fs/cgroup/memory" + cgroup + "/memory.limit_in_bytes", "/sys/fs/cgroup" + cgroup + "/memory.max"} {
		if data, err := os.ReadFile(f); err == nil {
			v, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
			return v
		}
	}
	t.Errorf("no memory limit file for cgroup %s", cgroup)
	return 0
}

// removeCgroup removes a pod cgroup the way the kubelet does once the pod is
// gone: in every hierarchy, failing if something still lives in it.
func removeCgroup(t *testing.T, path string) {
	for _, root := range testenv.CgroupRoots() {
		if err := os.Remove(filepath.Join(root, path)); err != nil && !os.IsNotExist(err) {
			t.Errorf("remove pod cgroup: %v", err)
		}
	}
}
