package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
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

func TestCRIPodWithoutPauseImage(t *testing.T) {
	ctx := requireEnv(t)
	rt, img := criClients(t)

	// No pause image anywhere: the stock handler cannot start a pod.
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

	forShimModes(t, func(t *testing.T, handler string) { exerciseCRIPod(t, ctx, rt, handler) })
	if st, err := img.ImageStatus(ctx, &cri.ImageStatusRequest{Image: &cri.ImageSpec{Image: pauseImage}}); err != nil || st.Image != nil {
		t.Errorf("a pause image appeared: %v %v", st.GetImage(), err)
	}
}

// exerciseCRIPod runs, on one runtime handler, what the kubelet does with a
// pod of two containers, and checks what pods rely on.
func exerciseCRIPod(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, handler string) {
	t.Helper()
	pod := runCRIPod(t, ctx, rt, podConfig(t, "web", false), handler)
	srv := pod.start(t, ctx, "srv", "/bin/sh", "-c", "echo srv-started; while true; do nc -l -p 8080 -e echo hello-cri; done")
	cli := pod.start(t, ctx, "cli", "/bin/sleep", "1000")

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
	for file, want := range map[string]string{"net/ipv4/ip_unprivileged_port_start": "81", "kernel/shm_rmid_forced": "1"} {
		if got := execSync(t, ctx, rt, cli, "cat", "/proc/sys/"+file); got != want {
			t.Errorf("pod sysctl %s = %q, want %q", file, got, want)
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

	// Streaming, through CRI's stream server: exec with a terminal, and
	// attach to a container's terminal.
	if out := streamExec(t, ctx, rt, cli, true, nil, "tty"); !strings.Contains(out, "/dev/pts/") {
		t.Errorf("exec with tty: %q", out)
	}
	if out := streamExec(t, ctx, rt, cli, false, nil, "sh", "-c", "tty || true"); !strings.Contains(out, "not a tty") {
		t.Errorf("exec without tty: %q", out)
	}
	term := pod.startWith(t, ctx, "term", &cri.ContainerConfig{Tty: true, Stdin: true, StdinOnce: true}, "/bin/sh")
	if out := streamAttach(t, ctx, rt, term, "echo attached-$((40+2))\nexit\n"); !strings.Contains(out, "attached-42") {
		t.Errorf("attach: %q", out)
	}

	checkInspect(t, ctx, rt, pod, handler, cli)

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
	// The pod's limit: resources plus overhead, in the pod's cgroup (in
	// podsandbox mode CRI's own controller takes the call and sets none).
	if _, err := rt.UpdatePodSandboxResources(ctx, &cri.UpdatePodSandboxResourcesRequest{
		PodSandboxId: pod.id,
		Overhead:     &cri.LinuxContainerResources{MemoryLimitInBytes: 6 << 20},
		Resources:    &cri.LinuxContainerResources{MemoryLimitInBytes: 200 << 20},
	}); err != nil {
		t.Errorf("UpdatePodSandboxResources: %v", err)
	} else if handler != "pause-podsandbox" {
		if got := podMemoryLimit(t, podCgroupPath(pod.config)); got != 206<<20 {
			t.Errorf("pod cgroup memory limit %d after UpdatePodSandboxResources, want %d", got, 206<<20)
		}
	}

	// Stop: containers exit, the pod is NOTREADY; its files go with it.
	if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: pod.id}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{srv, cli, term} {
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
	podDir := filepath.Join(env.Dir, "root", "io.containerd.grpc.v1.cri", "sandboxes", pod.id)
	shmDir := filepath.Join(env.Dir, "state", "io.containerd.grpc.v1.cri", "sandboxes", pod.id)
	for _, d := range []string{podDir, shmDir} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("pod files left in %s", d)
		}
	}
}

// TestCRIPodsandboxMode is CRI's default mode on this runtime: the sandbox is
// a pause container from an image, and the pod's containers share its shim.
func TestCRIPodsandboxMode(t *testing.T) {
	ctx := requireEnv(t)
	rt, img := criClients(t)
	binary, err := os.ReadFile("../pod/pause/pause_" + runtime.GOARCH + ".elf")
	if err != nil {
		t.Fatalf("pause binary: %v", err)
	}
	archive := filepath.Join(t.TempDir(), "pause.tar")
	if err := testimage.WriteArchive(testimage.Pause(pauseImage, binary), archive); err != nil {
		t.Fatal(err)
	}
	if err := testimage.Import(env.CtrArgs(criNamespace), archive); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := img.RemoveImage(context.Background(), &cri.RemoveImageRequest{Image: &cri.ImageSpec{Image: pauseImage}}); err != nil {
			t.Errorf("remove pause image: %v", err)
		}
	})
	// Tests run one at a time and remove their pods: no shim runs now but
	// one that is just finishing.
	waitNoShims(t)
	exerciseCRIPod(t, ctx, rt, "pause-podsandbox")
	waitNoShims(t)
}

// waitNoShims waits for every shim process to be gone.
func waitNoShims(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); env.ShimProcesses() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d shim processes outlive their pods", env.ShimProcesses())
		}
	}
}

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

// streamExec runs cmd through CRI's Exec and its stream server, as
// `kubectl exec` does, and returns what it printed.
func streamExec(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, id string, tty bool, stdin io.Reader, cmd ...string) string {
	t.Helper()
	resp, err := rt.Exec(ctx, &cri.ExecRequest{ContainerId: id, Cmd: cmd, Tty: tty, Stdout: true, Stderr: !tty, Stdin: stdin != nil})
	if err != nil {
		t.Fatalf("Exec %v: %v", cmd, err)
	}
	return stream(t, ctx, resp.Url, tty, stdin)
}

// streamAttach attaches to a container's terminal and types input.
func streamAttach(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, id, input string) string {
	t.Helper()
	resp, err := rt.Attach(ctx, &cri.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Tty: true})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	// Type once the terminal is attached, and hang up once the shell is done.
	r, w := io.Pipe()
	go func() {
		time.Sleep(500 * time.Millisecond)
		io.WriteString(w, input)
		time.Sleep(2 * time.Second)
		w.Close()
	}()
	return stream(t, ctx, resp.Url, true, r)
}

func stream(t *testing.T, ctx context.Context, rawURL string, tty bool, stdin io.Reader) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := remotecommand.NewSPDYExecutor(&rest.Config{}, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	opts := remotecommand.StreamOptions{Stdin: stdin, Stdout: &out, Tty: tty}
	if !tty {
		opts.Stderr = &out
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := exec.StreamWithContext(sctx, opts); err != nil {
		t.Errorf("stream %s: %v (output %q)", rawURL, err, out.String())
	}
	return out.String()
}

// checkInspect: the verbose status reads as crictl inspectp shows a runc
// pod's: .info.pid is the pod's PID 1 (operators nsenter it), with the pod's
// config and runtime.
func checkInspect(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, pod *criPod, handler, container string) {
	t.Helper()
	st, err := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: pod.id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid            int                   `json:"pid"`
		Status         string                `json:"processStatus"`
		RuntimeType    string                `json:"runtimeType"`
		RuntimeOptions any                   `json:"runtimeOptions"`
		Config         *cri.PodSandboxConfig `json:"config"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil {
		t.Fatalf("info of %s: %v: %q", handler, err, st.Info["info"])
	}
	net, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", info.Pid))
	want := execSync(t, ctx, rt, container, "readlink", "/proc/self/ns/net")
	if info.Pid == 0 || net != want || info.Status != "running" || info.RuntimeType != runtimeName ||
		info.Config.GetMetadata().GetUid() != pod.config.Metadata.Uid || info.Config.GetHostname() != pod.config.Hostname ||
		info.Config.GetLinux().GetCgroupParent() != pod.config.Linux.CgroupParent {
		t.Errorf("inspect of a %s pod: info %+v (pid %d in netns %s, the pod's is %s)", handler, info, info.Pid, net, want)
	}
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
