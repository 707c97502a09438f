package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sandboxapi "github.com/containerd/containerd/api/runtime/sandbox/v1"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// TestContainerdRestartKeepsPods: containerd stopped (SIGTERM, as for an
// upgrade) and then crashed (SIGKILL) with 20 running pods of 2 containers:
// after each restart every pod and container is still there and works, an
// exit that happened while containerd was down is reported with its status,
// and new pods start. On shared shims (ten pods a shim) the 20 pods keep
// their two shims.
func TestContainerdRestartKeepsPods(t *testing.T) {
	for _, handler := range []string{"pause", tenHandler} {
		t.Run(handler, func(t *testing.T) { containerdRestartKeepsPods(t, handler) })
	}
}

func containerdRestartKeepsPods(t *testing.T, handler string) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	pods := 20
	if testenv.Slow() {
		pods = 4 // the same paths, within an emulated node's time
	}
	type podC struct {
		pod        *criPod
		containers []string
	}
	var all []podC
	for i := 0; i < pods; i++ {
		p := runCRIPod(t, ctx, rt, podConfig(t, fmt.Sprintf("restart-%d", i), false), handler)
		all = append(all, podC{p, []string{
			p.start(t, ctx, "a", "/bin/sleep", "100000"),
			p.start(t, ctx, "b", "/bin/sh", "-c", "while true; do echo tick; sleep 0.1; done"),
		}})
	}
	shimsOf := func() map[int]int {
		shims := map[int]int{}
		for _, pc := range all {
			shims[pc.pod.shimOf(t, ctx)]++
		}
		return shims
	}
	shims := shimsOf()
	if handler == tenHandler && len(shims) != (pods+9)/10 {
		t.Fatalf("%d pods on %d shims, want ten a shim: %v", pods, len(shims), shims)
	}
	logOf := func(pc podC) string { return filepath.Join(pc.pod.config.LogDirectory, "b.log") }
	for round, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		// While containerd is down, one container's process dies.
		victim := all[round].containers[0]
		st, err := rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: victim, Verbose: true})
		if err != nil {
			t.Fatal(err)
		}
		pid := containerPid(t, st.Info["info"])
		if err := env.Restart(sig, func() { _ = syscall.Kill(pid, syscall.SIGKILL) }); err != nil {
			t.Fatalf("restart after %v: %v", sig, err)
		}
		rt, _ = criClients(t) // a new connection to the new containerd
		for _, pc := range all {
			ps, err := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: pc.pod.id})
			if err != nil || ps.Status.State != cri.PodSandboxState_SANDBOX_READY {
				t.Fatalf("after %v: pod %s: %v %v", sig, pc.pod.id, ps.GetStatus().GetState(), err)
			}
			pc.pod.rt = rt
			for _, c := range pc.containers {
				want := cri.ContainerState_CONTAINER_RUNNING
				if c == victim || (round == 1 && c == all[0].containers[0]) {
					want = cri.ContainerState_CONTAINER_EXITED
				}
				var cs *cri.ContainerStatusResponse
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
					cs, err = rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: c})
					if err == nil && cs.Status.State == want || time.Now().After(deadline) {
						break
					}
				}
				if err != nil || cs.Status.State != want {
					t.Fatalf("after %v: container %s: %v %v, want %v", sig, c, cs.GetStatus().GetState(), err, want)
				}
				if want == cri.ContainerState_CONTAINER_EXITED && cs.Status.ExitCode != 137 {
					t.Errorf("after %v: container killed while containerd was down: exit %d, want 137", sig, cs.Status.ExitCode)
				}
			}
		}
		// Logs keep flowing into the CRI log of a container started before.
		logFile := logOf(all[pods-1])
		before, _ := os.Stat(logFile)
		time.Sleep(500 * time.Millisecond)
		if after, err := os.Stat(logFile); err != nil || before == nil || after.Size() <= before.Size() {
			t.Errorf("after %v: the container log %s does not grow: %v", sig, logFile, err)
		}
		live := all[pods-1].containers[1]
		if out := execSync(t, ctx, rt, live, "echo", "alive"); out != "alive" {
			t.Errorf("after %v: exec %q", sig, out)
		}
		if _, err := rt.ContainerStats(ctx, &cri.ContainerStatsRequest{ContainerId: live}); err != nil {
			t.Errorf("after %v: stats: %v", sig, err)
		}
		if after := shimsOf(); !maps.Equal(after, shims) {
			t.Errorf("after %v: pods' shims %v, before %v", sig, after, shims)
		}
		p := runCRIPod(t, ctx, rt, podConfig(t, fmt.Sprintf("after-%d", round), false), handler)
		p.start(t, ctx, "c", "/bin/true")
	}
}

// containerPid reads the pid from CRI's verbose container info.
func containerPid(t *testing.T, info string) int {
	t.Helper()
	var v struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(info), &v); err != nil || v.Pid == 0 {
		t.Fatalf("no pid in container info: %v", err)
	}
	return v.Pid
}

// TestShimKilled: a pod's shim dies with SIGKILL. containerd cleans up
// through `shim delete`: the pod turns NOTREADY and nothing of it remains.
func TestShimKilled(t *testing.T) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	p := runCRIPod(t, ctx, rt, podConfig(t, "shim-killed", false), "pause")
	c := p.start(t, ctx, "c", "/bin/sleep", "100000")
	pausePid := p.pausePid(t, ctx)
	shim := parentOf(t, pausePid)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitPodDown(t, ctx, rt, p.id, c, "its shim died")
	// Its parent-death signal ends it; a zombie waits for a reaper that is
	// not the shim's business.
	if state := procState(pausePid); state != "" && state != "Z" {
		t.Errorf("pause task %d outlives its shim (state %s)", pausePid, state)
	}
	// Removing the pod then leaves nothing (the suite's leak check).
}

// TestPauseKilledFromHost: the pause task dies; the pod turns NOTREADY,
// WaitSandbox returns, and its containers are stopped. On a shared shim,
// the shim's other pod goes on.
func TestPauseKilledFromHost(t *testing.T) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	for _, handler := range []string{"pause", pairHandler} {
		t.Run(handler, func(t *testing.T) {
			p := runCRIPod(t, ctx, rt, podConfig(t, "pause-killed", false), handler)
			c := p.start(t, ctx, "c", "/bin/sleep", "100000")
			var neighbour *criPod
			var nc string
			if handler == pairHandler {
				neighbour = runCRIPod(t, ctx, rt, podConfig(t, "pause-neighbour", false), handler)
				nc = neighbour.start(t, ctx, "c", "/bin/sleep", "100000")
				if neighbour.shimOf(t, ctx) != p.shimOf(t, ctx) {
					t.Fatal("the two pods do not share a shim")
				}
			}
			if err := syscall.Kill(p.pausePid(t, ctx), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitPodDown(t, ctx, rt, p.id, c, "the pause task died")
			if neighbour != nil {
				if out := execSync(t, ctx, rt, nc, "echo", "alive"); out != "alive" {
					t.Errorf("the neighbour pod's container: exec %q", out)
				}
			}
		})
	}
}

// waitPodDown waits until the pod is NOTREADY and its container EXITED.
func waitPodDown(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, pod, container, after string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ps, perr := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: pod})
		cs, cerr := rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: container})
		if perr == nil && cerr == nil && ps.Status.State == cri.PodSandboxState_SANDBOX_NOTREADY &&
			cs.Status.State == cri.ContainerState_CONTAINER_EXITED {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: pod %v (%v), container %v (%v)", after,
				ps.GetStatus().GetState(), perr, cs.GetStatus().GetState(), cerr)
		}
	}
}

// waitExited waits until CRI reports the container exited, and returns its status.
func waitExited(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, id string, within time.Duration) *cri.ContainerStatus {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		cs, err := rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: id})
		if err == nil && cs.Status.State == cri.ContainerState_CONTAINER_EXITED {
			return cs.Status
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s has not exited after %v: %v %v", id, within, cs.GetStatus().GetState(), err)
		}
	}
}

// statFields are the fields of /proc/PID/stat after the command name:
// state, parent's pid, ...; nil when the process is gone.
func statFields(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(data)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

// procState is the state letter of pid, "" when it is gone.
func procState(pid int) string {
	if f := statFields(pid); len(f) > 0 {
		return f[0]
	}
	return ""
}

func parentOf(t *testing.T, pid int) int {
	t.Helper()
	fields := statFields(pid)
	ppid := 0
	if len(fields) > 1 {
		ppid, _ = strconv.Atoi(fields[1])
	}
	if ppid == 0 {
		t.Fatalf("no parent for %d", pid)
	}
	return ppid
}

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

// TestExecSyncLeavesNoZombie: 1,000 ExecSync calls into a pod's container
// leave no zombie behind in the shim or the pod.
func TestExecSyncLeavesNoZombie(t *testing.T) {
	forShimModes(t, execSyncLeavesNoZombie)
}

func execSyncLeavesNoZombie(t *testing.T, handler string) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	p := runCRIPod(t, ctx, rt, podConfig(t, "execs", false), handler)
	c := p.start(t, ctx, "c", "/bin/sleep", "100000")
	pausePid := p.pausePid(t, ctx)
	shimPid := parentOf(t, pausePid)
	const execs, workers = 1000, 4
	jobs := make(chan int, execs)
	for i := 0; i < execs; i++ {
		jobs <- i
	}
	close(jobs)
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			for range jobs {
				resp, err := rt.ExecSync(ctx, &cri.ExecSyncRequest{ContainerId: c, Cmd: []string{"true"}, Timeout: 10})
				if err == nil && resp.ExitCode != 0 {
					err = fmt.Errorf("exit %d", resp.ExitCode)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatalf("ExecSync: %v", err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, parent := range []int{shimPid, pausePid} {
		if _, zombies := children(parent); zombies > 0 {
			t.Errorf("%d zombies under %d after %d execs", zombies, parent, execs)
		}
	}
}

// TestChurn: pod cycles (sandbox, two containers, stop, remove) from 4
// concurrent clients: no error, and afterwards nothing leaked (the suite's
// leak check), no file descriptor kept by containerd, and containerd's
// memory does not grow past noise. SOAK_CYCLES sets the count (make soak:
// 1000).
func TestChurn(t *testing.T) {
	ctx, rt, cycles := startSoak(t, 0)
	churn(t, ctx, rt, "pause", 0, 20) // warm up: caches, CNI, image
	fds0, heap0 := containerdUsage(t)
	churn(t, ctx, rt, "pause", 20, 20+cycles)
	fds1, heap1 := containerdUsage(t)
	t.Logf("%d cycles: containerd fds %d -> %d, live heap %d -> %d kB", cycles, fds0, fds1, heap0>>10, heap1>>10)
	if fds1 > fds0+10 {
		t.Errorf("containerd holds %d more file descriptors after %d pod cycles", fds1-fds0, cycles)
	}
	if heap1 > heap0+max(heap0/4, 8<<20) {
		t.Errorf("containerd's live heap grew from %d to %d kB over %d pod cycles", heap0>>10, heap1>>10, cycles)
	}
}

// startSoak prepares a churn test: its CRI client, how many pod cycles it
// runs (SOAK_CYCLES, or 100), and a context with a budget for them all (a
// second a cycle, far above need, and extra), in which CRI's events are
// consumed.
func startSoak(t *testing.T, extra time.Duration) (context.Context, cri.RuntimeServiceClient, int) {
	requireEnv(t)
	rt, _ := criClients(t)
	cycles := 100
	if n, err := strconv.Atoi(os.Getenv("SOAK_CYCLES")); err == nil && n > 0 {
		cycles = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute+time.Duration(cycles)*time.Second+extra)
	t.Cleanup(cancel)
	consumeEvents(t, ctx, rt)
	return ctx, rt, cycles
}

// consumeEvents reads CRI's container events, as a kubelet with evented
// PLEG does: unread, CRI buffers up to 1000 of them, which would look like
// growth.
func consumeEvents(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient) {
	events, err := rt.GetContainerEvents(ctx, &cri.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := events.Recv(); err != nil {
				return
			}
		}
	}()
}

// churn runs pod cycles from to to on handler, four at a time: each pod
// starts two containers, then is stopped and removed.
func churn(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, handler string, from, to int) {
	t.Helper()
	churnBy(t, ctx, rt, handler, from, to, 4)
}

// churnBy is churn with that many pods cycling at once.
func churnBy(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, handler string, from, to, workers int) {
	t.Helper()
	cycle := func(i int) error {
		config := podConfig(t, fmt.Sprintf("churn-%d", i), false)
		pod, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: config, RuntimeHandler: handler})
		if err != nil {
			return err
		}
		for _, name := range []string{"a", "b"} {
			c, err := rt.CreateContainer(ctx, &cri.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, SandboxConfig: config,
				Config: &cri.ContainerConfig{Metadata: &cri.ContainerMetadata{Name: name}, Image: &cri.ImageSpec{Image: busyboxImage},
					Command: []string{"/bin/sleep", "100000"}, LogPath: name + ".log"}})
			if err != nil {
				return err
			}
			if _, err := rt.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
				return err
			}
		}
		if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			return err
		}
		_, err = rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId})
		removeCgroup(t, config.Linux.CgroupParent)
		return err
	}
	jobs := make(chan int)
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			var first error
			for i := range jobs {
				if err := cycle(i); err != nil && first == nil {
					first = fmt.Errorf("cycle %d: %w", i, err)
				}
			}
			errs <- first
		}()
	}
	for i := from; i < to; i++ {
		jobs <- i
	}
	close(jobs)
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestDenseChurn: one shared shim serves pod after pod (a long-lived pod
// keeps it up). Between a tenth of the cycles and all of them, its
// goroutines, file descriptors, threads and live heap stay within 10%:
// nothing per pod outlives the pod, and no reaper or event subscriber
// grows with the pods served.
func TestDenseChurn(t *testing.T) {
	ctx, rt, cycles := startSoak(t, 2*time.Minute) // and the burst
	anchor := runCRIPod(t, ctx, rt, podConfig(t, "dense-anchor", false), denseHandler)
	anchor.start(t, ctx, "c", "/bin/sleep", "100000")
	shim := anchor.shimOf(t, ctx)
	// Warm up, in a burst of twice the soak's concurrency: the Go
	// runtime keeps a thread for each call that was blocked in the kernel
	// at once (a FIFO's open, a fork), so the shim's thread count is the
	// high-water mark of its concurrency, reached here rather than at
	// random during the soak; growth past it would be a leak.
	churnBy(t, ctx, rt, denseHandler, 0, 32, 8)
	churn(t, ctx, rt, denseHandler, 32, 32+cycles/10)
	early, earlyFDs := anchor.settledShimUsage(t, ctx), fdTargets(shim)
	churn(t, ctx, rt, denseHandler, 32+cycles/10, 32+cycles)
	late, lateFDs := anchor.settledShimUsage(t, ctx), fdTargets(shim)
	t.Logf("shared shim after %d and %d pod cycles: %+v -> %+v", cycles/10, cycles, early, late)
	if early.Pid != shim || late.Pid != shim || late.Pods != 1 {
		t.Fatalf("the pods did not all go through shim %d: %+v, %+v", shim, early, late)
	}
	for _, m := range []struct {
		what        string
		early, late uint64
	}{
		{"goroutines", uint64(early.Goroutines), uint64(late.Goroutines)},
		{"file descriptors", uint64(early.FDs), uint64(late.FDs)},
		{"threads", uint64(early.Threads), uint64(late.Threads)},
		{"live heap (bytes)", early.HeapLive, late.HeapLive},
	} {
		if float64(m.late) > 1.1*float64(m.early) {
			t.Errorf("the shared shim's %s grew from %d to %d over %d pod cycles (over 10%%)", m.what, m.early, m.late, cycles-cycles/10)
		}
	}
	if t.Failed() {
		t.Logf("the shim's file descriptors after %d cycles:\n  %s\nafter %d:\n  %s", cycles/10, strings.Join(earlyFDs, "\n  "), cycles, strings.Join(lateFDs, "\n  "))
	}
}

// containerdUsage is containerd's open file descriptors and live heap
// (bytes, after a collection: its RSS keeps what the Go runtime has not yet
// returned, which says nothing of a leak).
func containerdUsage(t *testing.T) (fds int, heap int64) {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", env.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	heap, err = env.HeapInuse()
	if err != nil {
		t.Fatal(err)
	}
	return len(entries), heap
}

// peerProbeEnv makes the test binary, run as another user, probe a shim
// socket instead of running tests.
const peerProbeEnv = "PAUSE_IT_PEER_SOCKET"

// probeAsPeer calls PingSandbox on the socket and exits 0 if the call was
// answered, 3 if the shim refused the connection.
func probeAsPeer(socket string) int {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		fmt.Println("peer: dial:", err)
		return 2
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = sandboxapi.NewTTRPCSandboxClient(client).PingSandbox(ctx, &sandboxapi.PingRequest{SandboxID: "probe"})
	if err != nil && !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		fmt.Println("peer: refused:", err)
		return 3
	}
	fmt.Println("peer: answered:", err)
	return 0
}

// TestShimSocketRefusesOtherUsers: a pod's shim socket is root's, mode 0600,
// and the shim refuses a peer of another uid even when file permissions are
// bypassed (CAP_DAC_OVERRIDE); root is answered.
func TestShimSocketRefusesOtherUsers(t *testing.T) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	p := runCRIPod(t, ctx, rt, podConfig(t, "socket", false), "pause")
	state, err := os.ReadFile(filepath.Join(env.Dir, "state", "io.containerd.sandbox.controller.v1.shim", criNamespace, p.id, "pod.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pod struct{ Sockets []string }
	if err := json.Unmarshal(state, &pod); err != nil || len(pod.Sockets) == 0 {
		t.Fatalf("no socket in the pod's state: %s %v", state, err)
	}
	socket := strings.TrimPrefix(pod.Sockets[0], "unix://")
	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o600 || st.Uid != 0 {
		t.Errorf("shim socket mode %v uid %d, want 0600 root", fi.Mode().Perm(), st.Uid)
	}
	if code := probeAsPeer(socket); code != 0 {
		t.Fatalf("root's probe was refused (%d)", code)
	}
	// The test binary, runnable by another user, as uid 65534 with
	// CAP_DAC_OVERRIDE so that only the shim's own check can refuse it.
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(env.Dir, "peer-probe")
	if err := os.WriteFile(probe, self, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(probe)
	cmd := exec.Command(probe)
	cmd.Env = append(os.Environ(), peerProbeEnv+"="+socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: 65534, Gid: 65534},
		AmbientCaps: []uintptr{unix.CAP_DAC_OVERRIDE},
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("a peer of another uid: %v: %s", err, out)
	}
}

// TestConcurrentLifecycleRaces: execs, waits, a kill and a delete race on
// one container of a pod. Each call answers (success or a clear error kind),
// nothing hangs, and the pod then runs a new container.
func TestConcurrentLifecycleRaces(t *testing.T) {
	ctx := requireEnv(t)
	runPod(t, "races", podSpec("races"))
	c, task := startInPod(t, ctx, "races", "races-c", "/bin/sleep", "1000")
	spec, err := c.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expected := func(err error) bool {
		return err == nil || errdefs.IsNotFound(err) || errdefs.IsFailedPrecondition(err) ||
			errdefs.IsAlreadyExists(err) || errdefs.IsUnknown(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 20; i++ {
		wg.Go(func() {
			ps := *spec.Process
			ps.Args = []string{"/bin/sleep", "0.05"}
			p, err := task.Exec(ctx, fmt.Sprintf("race-%d", i), &ps, cio.NullIO)
			if err != nil {
				if !expected(err) {
					errs <- fmt.Errorf("exec: %w", err)
				}
				return
			}
			w, err := p.Wait(ctx)
			if err == nil {
				if err = p.Start(ctx); err == nil {
					<-w
				}
			}
			if !expected(err) {
				errs <- fmt.Errorf("exec start: %w", err)
			}
			if _, err := p.Delete(ctx); !expected(err) {
				errs <- fmt.Errorf("exec delete: %w", err)
			}
		})
	}
	wg.Go(func() {
		time.Sleep(30 * time.Millisecond)
		if err := task.Kill(ctx, syscall.SIGKILL); !expected(err) {
			errs <- fmt.Errorf("kill: %w", err)
		}
	})
	wg.Go(func() {
		w, err := task.Wait(ctx)
		if err != nil {
			errs <- fmt.Errorf("wait: %w", err)
			return
		}
		<-w
		if _, err := task.Delete(ctx); !expected(err) {
			errs <- fmt.Errorf("delete: %w", err)
		}
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("lifecycle calls hang")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	_, again := startInPod(t, ctx, "races", "races-after", "/bin/sh", "-c", "exit 4")
	w, _ := again.Wait(ctx)
	if st := <-w; st.ExitCode() != 4 {
		t.Errorf("a new container after the races: exit %d", st.ExitCode())
	}
}

// fdTargets lists what process pid's file descriptors point at.
func fdTargets(pid int) []string {
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range entries {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out = append(out, e.Name()+" -> "+target)
	}
	return out
}
