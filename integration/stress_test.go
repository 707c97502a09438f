package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// The kubelet's deadlines: its runtime request timeout, and twice that for
// RunPodSandbox. A CRI call that takes longer has failed for the kubelet.
const (
	criCallTimeout    = 2 * time.Minute
	criSandboxTimeout = 2 * criCallTimeout
)

// stressPod is one pod of a stress pass: its handler (a shim per pod, or the
// shared shim) and whether it has a user namespace of its own.
type stressPod struct {
	handler string
	userns  bool
	config  *cri.PodSandboxConfig
}

func (p stressPod) kind() string {
	if p.userns {
		return p.handler + "+userns"
	}
	return p.handler
}

// TestConcurrentPodsUnderLoad: pods of both shim modes, half of them in
// user namespaces of their own (hostUsers: false), are run, checked READY,
// stopped and removed through CRI by many callers at once while every core
// is busy: first with bounded concurrency, then all at once. Every call
// succeeds, every pod's pause task is up before its stop, and nothing is
// left (CRI's list, shim processes, then the environment's leak check).
func TestConcurrentPodsUnderLoad(t *testing.T) {
	requireEnv(t)
	pods, bounded := 200, 8
	if testenv.Slow() {
		pods, bounded = 16, 2
	}
	other := startStressEnv(t)
	conn, rt := dialCRI(t, other.Address)
	t.Cleanup(func() { conn.Close() })

	stopLoad := saturate(t, 6*time.Minute)
	for _, pass := range []struct {
		name    string
		workers int
	}{{fmt.Sprintf("bounded-%d", bounded), bounded}, {fmt.Sprintf("all-at-once-%d", pods), pods}} {
		t.Run(pass.name, func(t *testing.T) {
			plan := stressPlan(t, pass.name, pods)
			res := stressPass(rt, plan, pass.workers)
			res.report(t, pass.workers)
			checkNothingLeft(t, other, rt)
		})
	}
	stopLoad()
}

// startStressEnv runs a containerd of the test's own, at log level info (a
// debug line per call of hundreds of pods would be most of the load), with
// a pod subnet larger than the pods of a pass and the shared-shim handler;
// its leak check runs last.
func startStressEnv(t *testing.T) *testenv.Env {
	return startPrivateEnv(t, "pause-stress",
		testenv.WithLogLevel("info"),
		testenv.WithPodSubnet("10.252.0.0/22"),
		testenv.WithRuntime(testenv.Runtime{Name: denseHandler, Options: "PodsPerShim = 0"}))
}

// startPrivateEnv starts a containerd of the test's own, the suite's shim
// with opts; its leak check runs when the test ends, after the cleanups
// registered later (its pods').
func startPrivateEnv(t *testing.T, name string, opts ...testenv.Option) *testenv.Env {
	t.Helper()
	other, err := testenv.Start(env.Repo, env.Shim, fmt.Sprintf("%s-%d", name, os.Getpid()), opts...)
	t.Cleanup(func() {
		if leaks := other.Leaks(); len(leaks) > 0 {
			t.Errorf("left behind:\n  %s", strings.Join(leaks, "\n  "))
		}
		if !t.Failed() {
			os.RemoveAll(other.Dir)
		} else {
			t.Logf("containerd log kept in %s", other.LogPath())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return other
}

// stressPlan makes n pods, a quarter of each kind: on handler pause or
// pause-dense, with or without a user namespace. Each user-namespaced pod
// gets its own 65536 host ids, as the kubelet allots them.
func stressPlan(t *testing.T, pass string, n int) []stressPod {
	plan := make([]stressPod, n)
	for i := range plan {
		p := stressPod{handler: "pause", userns: i/2%2 == 1}
		if i%2 == 1 {
			p.handler = denseHandler
		}
		p.config = podConfig(t, fmt.Sprintf("stress-%s-%d", pass, i), false)
		if p.userns {
			mapping := []*cri.IDMapping{{ContainerId: 0, HostId: uint32(200000 + 65536*i), Length: 65536}}
			p.config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &cri.UserNamespace{Mode: cri.NamespaceMode_POD, Uids: mapping, Gids: mapping}
		}
		plan[i] = p
	}
	return plan
}

// stressPass runs, checks, stops and removes every pod of plan, workers at a
// time; the workers are released together.
func stressPass(rt cri.RuntimeServiceClient, plan []stressPod, workers int) *stressResult {
	res := &stressResult{pods: len(plan), latency: map[string][]time.Duration{}, ready: map[string]int{}}
	jobs := make(chan stressPod, len(plan))
	for _, p := range plan {
		jobs <- p
	}
	close(jobs)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			for p := range jobs {
				res.lifecycle(rt, p)
			}
		}()
	}
	start := time.Now()
	close(release)
	wg.Wait()
	res.wall = time.Since(start)
	return res
}

// stressResult gathers what the calls of a pass did.
type stressResult struct {
	mu       sync.Mutex
	pods     int
	calls    int
	failures []callFailure
	latency  map[string][]time.Duration // per call
	ready    map[string]int             // pods checked READY, per kind
	wall     time.Duration
}

type callFailure struct {
	call, kind string
	err        error
}

// lifecycle is one pod's life as the kubelet drives it: run, status, stop,
// remove. A pod that fails its check is still stopped and removed.
func (r *stressResult) lifecycle(rt cri.RuntimeServiceClient, p stressPod) {
	var id string
	if r.call("RunPodSandbox", p, func(ctx context.Context) error {
		resp, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: p.config, RuntimeHandler: p.handler})
		id = resp.GetPodSandboxId()
		return err
	}) != nil {
		return
	}
	if r.call("PodSandboxStatus", p, func(ctx context.Context) error { return checkPauseReady(ctx, rt, id, p.userns) }) == nil {
		r.mu.Lock()
		r.ready[p.kind()]++
		r.mu.Unlock()
	}
	_ = r.call("StopPodSandbox", p, func(ctx context.Context) error {
		_, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: id})
		return err
	})
	_ = r.call("RemovePodSandbox", p, func(ctx context.Context) error {
		_, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: id})
		return err
	})
}

// call runs one CRI call under the kubelet's deadline for it and records it.
func (r *stressResult) call(name string, p stressPod, do func(context.Context) error) error {
	timeout := criCallTimeout
	if name == "RunPodSandbox" {
		timeout = criSandboxTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	err := do(ctx)
	took := time.Since(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.latency[name] = append(r.latency[name], took)
	if err != nil {
		r.failures = append(r.failures, callFailure{name, p.kind(), err})
	}
	return err
}

// checkPauseReady asks CRI for the pod's status: READY, with a pause task
// that runs, in a user namespace other than the host's when the pod asked
// for one.
func checkPauseReady(ctx context.Context, rt cri.RuntimeServiceClient, id string, userns bool) error {
	st, err := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		return err
	}
	if s := st.GetStatus().GetState(); s != cri.PodSandboxState_SANDBOX_READY {
		return fmt.Errorf("pod %s is %v after RunPodSandbox, want READY", id, s)
	}
	pid, err := strconv.Atoi(st.GetInfo()["pause_pid"])
	if err != nil || pid <= 0 {
		return fmt.Errorf("pod %s: no pause pid in the verbose status (%q)", id, st.GetInfo()["pause_pid"])
	}
	if s := procState(pid); s == "" || s == "Z" {
		return fmt.Errorf("pod %s: pause task %d does not run (state %q)", id, pid, s)
	}
	if userns {
		host, _ := os.Readlink("/proc/self/ns/user")
		own, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid))
		if err != nil || own == host {
			return fmt.Errorf("pod %s: pause task %d is not in a user namespace of its own (%q, host %q, %v)", id, pid, own, host, err)
		}
	}
	return nil
}

// report logs the pass's timing and counts, and fails the test on any
// failed call, each kind of error counted once with an example.
func (r *stressResult) report(t *testing.T, workers int) {
	t.Helper()
	kinds := make([]string, 0, len(r.ready))
	for k, n := range r.ready {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(kinds)
	loadavg, _ := os.ReadFile("/proc/loadavg")
	load := strings.Fields(string(loadavg))
	load = load[:min(3, len(load))]
	t.Logf("%d pods, %d at a time, in %v: %d calls, %d failed; checked READY: %s; load average %s",
		r.pods, workers, r.wall.Round(time.Millisecond), r.calls, len(r.failures), strings.Join(kinds, ", "), strings.Join(load, " "))
	for _, name := range []string{"RunPodSandbox", "PodSandboxStatus", "StopPodSandbox", "RemovePodSandbox"} {
		d := r.latency[name]
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		t.Logf("  %-16s n=%d p50 %v p99 %v max %v", name, len(d),
			d[len(d)/2].Round(time.Millisecond), d[len(d)*99/100].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
	}
	if len(r.failures) == 0 {
		return
	}
	type group struct {
		n       int
		example string
	}
	groups := map[string]*group{}
	for _, f := range r.failures {
		key := f.call + " on " + f.kind + ": " + genericError(f.err.Error())
		if groups[key] == nil {
			groups[key] = &group{example: f.err.Error()}
		}
		groups[key].n++
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var lines []string
	for _, k := range keys {
		lines = append(lines, fmt.Sprintf("%d× %s\n      e.g. %s", groups[k].n, k, groups[k].example))
	}
	t.Errorf("%d of %d calls failed:\n  %s", len(r.failures), r.calls, strings.Join(lines, "\n  "))
}

var (
	podIDs  = regexp.MustCompile(`[0-9a-f]{64}`)
	numbers = regexp.MustCompile(`[0-9]{3,}`)
)

// genericError strips the ids and numbers that make each error of a kind
// different.
func genericError(msg string) string {
	return numbers.ReplaceAllString(podIDs.ReplaceAllString(msg, "<id>"), "N")
}

// checkNothingLeft: after a pass CRI lists no pod, and every shim process
// has exited.
func checkNothingLeft(t *testing.T, other *testenv.Env, rt cri.RuntimeServiceClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), criCallTimeout)
	defer cancel()
	resp, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		t.Errorf("ListPodSandbox: %v", err)
	} else if n := len(resp.GetItems()); n > 0 {
		t.Errorf("CRI still lists %d pods after the pass", n)
	}
	for deadline := time.Now().Add(10 * time.Second); other.ShimProcesses() > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%d shim processes outlive the pass's pods", other.ShimProcesses())
			break
		}
	}
	if pools, _ := filepath.Glob(filepath.Join(other.Dir, "s", "pause-pools", "*")); len(pools) > 0 {
		t.Errorf("pools left after the pass: %v", pools)
	}
}

// saturate keeps every core busy: a spinning shell per CPU, started by the
// test and killed by pid when the returned stop is called, at the test's
// end, or after bound, whichever comes first (and with the test, should it
// die). stop logs how much CPU the spinners got.
func saturate(t *testing.T, bound time.Duration) (stop func()) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	var spinners []*exec.Cmd
	var once sync.Once
	start := time.Now()
	stop = func() {
		once.Do(func() {
			cancel() // exec kills each spinner by its pid
			var cpu time.Duration
			for _, c := range spinners {
				_ = c.Wait()
				cpu += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
			}
			t.Logf("load: %d spinners got %v of CPU in %v", len(spinners), cpu.Round(time.Second), time.Since(start).Round(time.Second))
		})
	}
	t.Cleanup(stop)
	for range runtime.NumCPU() {
		cmd := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start a spinner: %v", err)
		}
		spinners = append(spinners, cmd)
	}
	return stop
}
