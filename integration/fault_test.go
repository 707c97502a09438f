package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
