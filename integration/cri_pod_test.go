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
	"strings"
	"testing"
	"time"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

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
