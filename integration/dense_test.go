package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/task"
)

// forShimModes runs a test on a shim per pod (handler pause) and on a
// shared shim (pause-dense). On an emulated node, where each run is slow,
// the shared mode is left to the tests of its own.
func forShimModes(t *testing.T, test func(t *testing.T, handler string)) {
	modes := []string{"pause", denseHandler}
	if testenv.Slow() {
		modes = modes[:1]
	}
	for _, h := range modes {
		t.Run(h, func(t *testing.T) { test(t, h) })
	}
}

// shimOf is the shim process that serves a pod: its pause task's parent.
func (p *criPod) shimOf(t *testing.T, ctx context.Context) int {
	t.Helper()
	return parentOf(t, p.pausePid(t, ctx))
}

// waitGone waits for process pid to exit.
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if s := procState(pid); s == "" || s == "Z" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still runs", what, pid)
		}
	}
}

// removePod stops and removes a pod through CRI, as the kubelet does.
func removePod(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, id string) {
	t.Helper()
	if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("StopPodSandbox %s: %v", id, err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox %s: %v", id, err)
	}
}

// TestPodsShareShims: with PodsPerShim, pods share shim processes (two a
// shim, or all on one), and each keeps its own pause task, namespaces,
// cgroup and containers. Removing one pod leaves the others served (the
// shim's log and working directory move off the removed pod's bundle); the
// shim exits with its last pod and leaves nothing (the suite's leak check).
func TestPodsShareShims(t *testing.T) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	for _, tc := range []struct {
		handler string
		pods    int
		shims   int
	}{{pairHandler, 3, 2}, {denseHandler, 4, 1}} {
		t.Run(tc.handler, func(t *testing.T) {
			var pods []*criPod
			var containers []string
			shims := map[int][]int{} // shim pid -> pod indexes
			netns := map[string]bool{}
			for i := range tc.pods {
				p := runCRIPod(t, ctx, rt, podConfig(t, fmt.Sprintf("shared-%d", i), false), tc.handler)
				containers = append(containers, p.start(t, ctx, "c", "/bin/sleep", "100000"))
				pods = append(pods, p)
				shim := p.shimOf(t, ctx)
				shims[shim] = append(shims[shim], i)
				ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p.pausePid(t, ctx)))
				if err != nil {
					t.Fatal(err)
				}
				netns[ns] = true
			}
			if len(shims) != tc.shims {
				t.Fatalf("%d pods on %d shims (%v), want %d", tc.pods, len(shims), shims, tc.shims)
			}
			if len(netns) != tc.pods {
				t.Errorf("%d pods share %d network namespaces", tc.pods, len(netns))
			}
			for i, c := range containers {
				if out := execSync(t, ctx, rt, c, "hostname"); out != fmt.Sprintf("shared-%d-host", i) {
					t.Errorf("pod %d's container: hostname %q", i, out)
				}
			}
			// The first pod's bundle is its shim's working directory and log.
			first := pods[0].shimOf(t, ctx)
			removePod(t, ctx, rt, pods[0].id)
			if len(shims[first]) > 1 {
				other := shims[first][1]
				if out := execSync(t, ctx, rt, containers[other], "echo", "served"); out != "served" {
					t.Errorf("pod %d after its shim's first pod left: exec %q", other, out)
				}
				for _, fd := range []string{"cwd", "fd/2"} {
					if target, err := os.Readlink(fmt.Sprintf("/proc/%d/%s", first, fd)); err != nil || strings.HasSuffix(target, "(deleted)") {
						t.Errorf("shim %s after its first pod left: %q %v", fd, target, err)
					}
				}
			}
			for _, p := range pods[1:] {
				removePod(t, ctx, rt, p.id)
			}
			for shim := range shims {
				waitGone(t, shim, "a shared shim after its last pod")
			}
			if dirs := poolDirs(); len(dirs) > 0 {
				t.Errorf("pools left after their last shim: %v", dirs)
			}
		})
	}
}

// TestSharedShimKilled: the blast radius of a shared shim. Killed with
// SIGKILL, exactly its pods go NOTREADY and their containers stop; the
// pods of the pool's other shim go on; CRI's stop and remove of the dead
// pods clean up; a new pod starts on a new shim.
func TestSharedShimKilled(t *testing.T) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	var pods []*criPod
	var containers []string
	for i := range 4 {
		p := runCRIPod(t, ctx, rt, podConfig(t, fmt.Sprintf("blast-%d", i), false), pairHandler)
		containers = append(containers, p.start(t, ctx, "c", "/bin/sleep", "100000"))
		pods = append(pods, p)
	}
	victim := pods[0].shimOf(t, ctx)
	var hit, spared []int
	for i, p := range pods {
		if p.shimOf(t, ctx) == victim {
			hit = append(hit, i)
		} else {
			spared = append(spared, i)
		}
	}
	if len(hit) != 2 || len(spared) != 2 {
		t.Fatalf("pods on the killed shim: %v, elsewhere: %v; want two and two", hit, spared)
	}
	survivor := pods[spared[0]].shimOf(t, ctx)
	pausePids := map[int]int{}
	for i, p := range pods {
		pausePids[i] = p.pausePid(t, ctx)
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, i := range hit {
		waitPodDown(t, ctx, rt, pods[i].id, containers[i], "their shared shim died")
		if state := procState(pausePids[i]); state != "" && state != "Z" {
			t.Errorf("pod %d's pause task %d outlives its shim (state %s)", i, pausePids[i], state)
		}
	}
	for _, i := range spared {
		ps, err := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: pods[i].id})
		if err != nil || ps.Status.State != cri.PodSandboxState_SANDBOX_READY {
			t.Errorf("pod %d of the other shim: %v %v", i, ps.GetStatus().GetState(), err)
		}
		if out := execSync(t, ctx, rt, containers[i], "echo", "alive"); out != "alive" {
			t.Errorf("pod %d of the other shim: exec %q", i, out)
		}
	}
	for _, i := range hit {
		removePod(t, ctx, rt, pods[i].id)
	}
	// The survivor is full (two pods): a new pod gets a new shim.
	p := runCRIPod(t, ctx, rt, podConfig(t, "blast-new", false), pairHandler)
	p.start(t, ctx, "c", "/bin/true")
	if shim := p.shimOf(t, ctx); shim == victim || shim == survivor {
		t.Errorf("the new pod's shim is %d (killed %d, full %d)", shim, victim, survivor)
	}
}

// TestSharedShimStartsRace: pods started at once on an unlimited pool all
// land on one shim: the pool's lock lets no two starts add a shim each.
func TestSharedShimStartsRace(t *testing.T) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	const n = 6
	type result struct {
		id  string
		err error
	}
	configs := make([]*cri.PodSandboxConfig, n)
	for i := range configs {
		configs[i] = podConfig(t, fmt.Sprintf("race-%d", i), false)
	}
	results := make(chan result, n)
	for _, c := range configs {
		go func() {
			resp, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: c, RuntimeHandler: denseHandler})
			results <- result{resp.GetPodSandboxId(), err}
		}()
	}
	shims := map[int]bool{}
	var ids []string
	for range n {
		r := <-results
		if r.err != nil {
			t.Errorf("RunPodSandbox: %v", r.err)
			continue
		}
		ids = append(ids, r.id)
		p := &criPod{id: r.id, rt: rt}
		shims[p.shimOf(t, ctx)] = true
	}
	for _, id := range ids {
		removePod(t, ctx, rt, id)
	}
	if len(shims) != 1 {
		t.Errorf("%d pods started at once on %d shims, want 1", n, len(shims))
	}
	for shim := range shims {
		waitGone(t, shim, "the shared shim after its last pod")
	}
}

// poolDirs lists the pools under the suite's socket directory.
func poolDirs() []string {
	dirs, _ := filepath.Glob(filepath.Join(env.Dir, "s", "pause-pools", "*"))
	slices.Sort(dirs)
	return dirs
}

// shimUsage is what the pod's shim says it holds (verbose status "shim").
func (p *criPod) shimUsage(t *testing.T, ctx context.Context) task.ShimUsage {
	t.Helper()
	st, err := p.rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: p.id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var u task.ShimUsage
	if err := json.Unmarshal([]byte(st.Info["shim"]), &u); err != nil {
		t.Fatalf("shim usage %q: %v", st.Info["shim"], err)
	}
	return u
}

// settledShimUsage is the shim's usage once the pods just removed are
// quite gone: the least of a few samples over a second, since containerd
// closes its connections to a removed pod's shim, and the shim's own
// goroutines for it end, a moment after the answer.
func (p *criPod) settledShimUsage(t *testing.T, ctx context.Context) task.ShimUsage {
	t.Helper()
	u := p.shimUsage(t, ctx)
	for range 5 {
		time.Sleep(200 * time.Millisecond)
		v := p.shimUsage(t, ctx)
		u.Goroutines, u.Threads, u.FDs, u.HeapLive = min(u.Goroutines, v.Goroutines), min(u.Threads, v.Threads), min(u.FDs, v.FDs), min(u.HeapLive, v.HeapLive)
	}
	return u
}
