// Command bench measures pods on this runtime against the stock runc shim
// with a pause image, in one run on one private containerd, through CRI's
// gRPC API as the kubelet calls it: handler pause (a shim per pod),
// pause-dense (PodsPerShim = 0: the pods share a shim). Rounds alternate
// the handlers with a CNI floor (the pod network alone, see floor.go), so
// that drift on a shared machine hits all alike; results are reported as
// ratios to runc. See `make bench`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

// The handlers compared.
const (
	stock = "runc"        // io.containerd.runc.v2 + pause image, podsandbox mode
	ours  = "pause"       // this shim, shim mode, no image: a shim per pod
	dense = "pause-dense" // this shim with PodsPerShim = 0: the pods share a shim
)

// handlers in the order reports list them; runc is the reference.
var handlers = []string{stock, ours, dense}

// floorTurn is the CNI floor's turn in a round of pod starts or teardowns.
const floorTurn = "cni-floor"

// benchSubnet holds every live pod of the run (3 handlers × PODS, and the
// probes), more than testenv's /24.
const benchSubnet = "10.250.0.0/21"

// stockPauseImage is the image CRI pins for podsandbox mode.
const stockPauseImage = "registry.k8s.io/pause:3.10.2"

func main() {
	pods := flag.Int("pods", envInt("PODS", 100), "live pods per handler")
	out := flag.String("out", "_output/bench", "report directory")
	flag.Parse()
	if err := run(*pods, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func envInt(name string, def int) int {
	var v int
	if _, err := fmt.Sscan(os.Getenv(name), &v); err == nil && v > 0 {
		return v
	}
	return def
}

func run(pods int, out string) (retErr error) {
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	shim, missing := testenv.Prerequisites(repo)
	if missing != "" {
		return fmt.Errorf("cannot run: %s", missing)
	}
	// A shared host: other suites' pods come and go in /var/run/netns
	// meanwhile; CRI's (and the floor's) go under containerd's state.
	env, err := testenv.Start(repo, shim, "pause-bench", testenv.WithSharedHost(), testenv.WithPodSubnet(benchSubnet),
		testenv.WithRuntime(testenv.Runtime{Name: dense, Options: "PodsPerShim = 0"}))
	defer func() {
		leaks := env.Leaks()
		if len(leaks) > 0 && retErr == nil {
			retErr = fmt.Errorf("the benchmark left behind:\n  %s", strings.Join(leaks, "\n  "))
		}
		if retErr == nil && os.Getenv("BENCH_KEEP") == "" {
			os.RemoveAll(env.Dir)
		} else {
			fmt.Fprintln(os.Stderr, "bench: containerd state and log kept in", env.Dir)
		}
	}()
	if err != nil {
		return err
	}
	if err := importStockPause(env); err != nil {
		return err
	}
	conn, err := grpc.NewClient("unix://"+env.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	floor, err := newCNIFloor(env)
	if err != nil {
		return err
	}
	b := &bench{rt: cri.NewRuntimeServiceClient(conn), env: env, floor: floor,
		samples: map[string]map[string][]float64{}, timed: map[string][]string{}}
	defer b.removeAll()

	// First, while no pod runs.
	execCost, err := measureExec(env)
	if err != nil {
		return err
	}
	res, err := b.measure(pods)
	if err != nil {
		return err
	}
	res.Exec = execCost
	res.Targets = append(res.Targets, execVerdicts(execCost)...)
	return report(res, out)
}

// importStockPause builds the stand-in for the stock static pause image
// (stockpause/pause.c, linked statically against libc) and imports it
// under the name CRI pins.
func importStockPause(env *testenv.Env) error {
	data, err := testimage.BuildStatic(filepath.Join(env.Repo, "integration", "bench", "stockpause", "pause.c"),
		filepath.Join(env.Dir, "stock-pause"))
	if err != nil {
		return err
	}
	archive := filepath.Join(env.Dir, "stock-pause.tar")
	if err := testimage.WriteArchive(testimage.Pause(stockPauseImage, data), archive); err != nil {
		return err
	}
	return testimage.Import(env.CtrArgs(testenv.CRINamespace), archive)
}

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

// result is one handler's figures.
type result struct {
	SandboxReadyMs     quantiles `json:"sandbox_ready_ms"`
	SandboxReadyHostMs quantiles `json:"sandbox_ready_hostnet_ms"`
	PodReadyMs         quantiles `json:"pod_ready_ms"`
	TeardownMs         quantiles `json:"teardown_ms"`
	SandboxReadyAt10Ms quantiles `json:"sandbox_ready_at_10_ms"`
	SandboxReadyAtNMs  quantiles `json:"sandbox_ready_at_n_ms"`
	// P99Growth is p99 sandbox ready with N live pods over p99 with 10
	// (0 when the run has no more than 10 pods).
	P99Growth float64 `json:"p99_growth_10_to_n"`
	// Parts of sandbox_ready read from containerd's log (logtimes.go), over
	// the pods whose lines were found (Parts.Pods of them).
	Parts parts `json:"sandbox_ready_parts"`
	// Memory with the N pods live: PSS per pod counts each shim process
	// once, however many pods it serves (memory.go).
	PSSPerPodKB    float64 `json:"pss_per_pod_kb"`
	PausePSSKB     float64 `json:"pause_pss_kb"`
	ThreadsPerShim float64 `json:"threads_per_shim"`
	Shims          int     `json:"shims"`
	PodsPerS       float64 `json:"pods_per_s"`
}

// parts split sandbox_ready, from containerd's own log.
type parts struct {
	// CNIMs is CRI's CNI setup ("begin cni setup" to "cni result").
	CNIMs quantiles `json:"cni_ms"`
	// AfterCNIMs is everything after the network up to RunPodSandbox's
	// answer: CRI's records, the shim's bootstrap and its sandbox calls (or,
	// for runc, the pause container).
	AfterCNIMs quantiles `json:"after_cni_ms"`
	// ShimCallsMs is containerd connecting to the shim up to the shim's
	// "sandbox started": CreateSandbox and StartSandbox as containerd
	// waits for them, the pause task's start included (this shim only).
	ShimCallsMs quantiles `json:"shim_calls_ms"`
	Pods        int       `json:"pods"`
}

type quantiles struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// floorResult is the CNI floor (floor.go): what a pod's network costs
// alone, in the same run.
type floorResult struct {
	SetupMs    quantiles `json:"setup_ms"`    // netns + CNI ADD: the floor of sandbox_ready
	TeardownMs quantiles `json:"teardown_ms"` // CNI DEL + netns removal: the floor of teardown
	Cycles     int       `json:"cycles"`
}

type results struct {
	Date     string            `json:"date"`
	Machine  string            `json:"machine"`
	Versions map[string]string `json:"versions"`
	Pods     int               `json:"pods"`
	// HandlerOrder lists the handlers as reports show them; runc first,
	// the reference of every ratio.
	HandlerOrder []string          `json:"handler_order"`
	Handlers     map[string]result `json:"handlers"`
	Floor        floorResult       `json:"floor"`
	// Ratio is, per handler other than runc, each measure over runc's.
	Ratio map[string]map[string]float64 `json:"ratio"`
	// Targets are the goals, checked.
	Targets []verdict `json:"targets"`
	// Samples are the raw latencies (ms), per handler and metric, for the
	// charts; FloorSamples the CNI floor's, keyed by the metric they are
	// the floor of (sandbox_ready, teardown).
	Samples      map[string]map[string][]float64 `json:"samples"`
	FloorSamples map[string][]float64            `json:"floor_samples"`
	// Memory is PSS per pod (kB) against live pods, per handler.
	Memory map[string][][2]float64 `json:"memory_by_pods"`
	// Exec is the shim binary's cost per invocation.
	Exec execResult `json:"exec"`
}

// rotate is s starting at its i-th element (mod len), so that each turn
// takes each place in the round equally often.
func rotate(s []string, i int) []string {
	k := i % len(s)
	return append(slices.Clone(s[k:]), s[:k]...)
}

func (b *bench) measure(n int) (*results, error) {
	ctx := context.Background()
	order := func(i int) []string { return rotate(handlers, i) }
	withFloor := append(slices.Clone(handlers), floorTurn)
	turn := func(h string, start func() error) error {
		if h == floorTurn {
			return b.floorCycle(ctx)
		}
		return start()
	}
	res := &results{Pods: n, HandlerOrder: handlers, Handlers: map[string]result{}, Memory: map[string][][2]float64{}}

	// Warm up every path (image unpack, CNI, first shim) untimed.
	for _, h := range handlers {
		if err := b.startPod(ctx, h, false, true, "warmup"); err != nil {
			return nil, err
		}
	}
	if err := b.teardownLive(ctx, false); err != nil {
		return nil, err
	}

	// Host-network sandboxes: start and remove, one at a time.
	hostRounds := min(n, 20)
	for i := 0; i < hostRounds; i++ {
		for _, h := range order(i) {
			if err := b.startPod(ctx, h, true, false, "sandbox_ready_hostnet"); err != nil {
				return nil, err
			}
		}
		if err := b.teardownLive(ctx, false); err != nil {
			return nil, err
		}
	}

	// Pods with the test CNI and one container, up to n live per handler;
	// a CNI floor cycle takes its turn in each round.
	checkpoints := map[int]bool{1: true, 10: true, n / 4: true, n / 2: true, n: true}
	for i := 0; i < n; i++ {
		for _, h := range rotate(withFloor, i) {
			if err := turn(h, func() error { return b.startPod(ctx, h, false, true, "sandbox_ready") }); err != nil {
				return nil, err
			}
		}
		if i+1 == 10 && n > 10 {
			if err := b.probe(ctx, order, "probe_at_10"); err != nil {
				return nil, err
			}
		}
		if i+1 == n {
			if err := b.probe(ctx, order, "probe_at_n"); err != nil {
				return nil, err
			}
		}
		if checkpoints[i+1] {
			for _, h := range handlers {
				m, err := b.memory(ctx, h)
				if err != nil {
					return nil, err
				}
				res.Memory[h] = append(res.Memory[h], [2]float64{float64(i + 1), m.pssPerPod})
				if i+1 == n {
					r := res.Handlers[h]
					r.PSSPerPodKB, r.PausePSSKB, r.ThreadsPerShim, r.Shims = m.pssPerPod, m.pausePSS, m.threads, m.shims
					res.Handlers[h] = r
				}
			}
		}
	}

	// Teardown of the n pods, alternating handlers and the floor.
	var byHandler = map[string][]livePod{}
	for _, p := range b.live {
		byHandler[p.handler] = append(byHandler[p.handler], p)
	}
	b.live = nil
	for i := 0; i < n; i++ {
		for _, h := range rotate(withFloor, i) {
			if err := turn(h, func() error {
				if i < len(byHandler[h]) {
					return b.stopPod(ctx, byHandler[h][i], true)
				}
				return nil
			}); err != nil {
				return nil, err
			}
		}
	}
	b.removeAll()

	// Throughput: n sandboxes by 8 concurrent clients, per handler.
	for _, h := range handlers {
		pps, err := b.throughput(ctx, h, n, 8)
		if err != nil {
			return nil, err
		}
		r := res.Handlers[h]
		r.PodsPerS = pps
		res.Handlers[h] = r
		if err := b.teardownLive(ctx, false); err != nil {
			return nil, err
		}
	}

	times, err := b.logTimes()
	if err != nil {
		return nil, err
	}
	for _, h := range handlers {
		s := b.samples[h]
		r := res.Handlers[h]
		r.SandboxReadyMs = quantile(s["sandbox_ready"])
		r.SandboxReadyHostMs = quantile(s["sandbox_ready_hostnet"])
		r.PodReadyMs = quantile(s["pod_ready"])
		r.TeardownMs = quantile(s["teardown"])
		r.SandboxReadyAt10Ms = quantile(s["probe_at_10"])
		r.SandboxReadyAtNMs = quantile(s["probe_at_n"])
		r.P99Growth = ratio(r.SandboxReadyAtNMs.P99, r.SandboxReadyAt10Ms.P99)
		r.Parts = sandboxParts(b.timed[h], times)
		res.Handlers[h] = r
	}
	fs := b.samples[floorTurn]
	res.Floor = floorResult{SetupMs: quantile(fs["sandbox_ready"]), TeardownMs: quantile(fs["teardown"]), Cycles: len(fs["sandbox_ready"])}
	res.Samples = map[string]map[string][]float64{}
	for _, h := range handlers {
		res.Samples[h] = b.samples[h]
	}
	res.FloorSamples = fs
	res.Ratio = ratios(res.Handlers)
	res.Targets = evaluate(res.Ratio)
	res.Date = time.Now().UTC().Format("2006-01-02")
	res.Machine = machine()
	res.Versions = versions(b.env)
	return res, nil
}

// logTimes reads containerd's log for the moments of each sandbox start.
func (b *bench) logTimes() (map[string]*podTimes, error) {
	f, err := os.Open(b.env.LogPath())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseLog(f)
}

// sandboxParts are the quantiles of the log-read parts of the given
// sandboxes' starts.
func sandboxParts(ids []string, times map[string]*podTimes) parts {
	var cni, after, calls []float64
	pods := 0
	for _, id := range ids {
		t := times[id]
		if t == nil {
			continue
		}
		s := t.spans()
		if s.cniOK {
			cni = append(cni, s.cni)
		}
		if s.afterCNIOK {
			after = append(after, s.afterCNI)
		}
		if s.shimCallsOK {
			calls = append(calls, s.shimCalls)
		}
		if s.cniOK || s.afterCNIOK || s.shimCallsOK {
			pods++
		}
	}
	return parts{CNIMs: quantile(cni), AfterCNIMs: quantile(after), ShimCallsMs: quantile(calls), Pods: pods}
}

// probeRounds is how many sandboxes per handler measure the latency at a
// given number of live pods.
const probeRounds = 20

// probe starts and removes probeRounds sandboxes per handler while the live
// pods stay, recording their latency as metric.
func (b *bench) probe(ctx context.Context, order func(int) []string, metric string) error {
	for i := 0; i < probeRounds; i++ {
		for _, h := range order(i) {
			if err := b.startPod(ctx, h, false, false, metric); err != nil {
				return err
			}
			p := b.live[len(b.live)-1]
			b.live = b.live[:len(b.live)-1]
			if err := b.stopPod(ctx, p, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// throughput starts n sandboxes with `clients` concurrent callers.
func (b *bench) throughput(ctx context.Context, handler string, n, clients int) (float64, error) {
	jobs := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Go(func() {
			for range jobs {
				if err := b.startPod(ctx, handler, false, false, "throughput"); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return float64(int(a/b*1000+0.5)) / 1000
}

func machine() string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Fields(strings.SplitN(string(data), "\n", 2)[0])[1] + " kB"
	}
	return fmt.Sprintf("%d cores, %s memory, Linux %s, %s", runtime.NumCPU(), mem, strings.TrimSpace(string(kernel)), runtime.GOARCH)
}

func versions(env *testenv.Env) map[string]string {
	v := map[string]string{"go": runtime.Version()}
	for name, args := range map[string][]string{
		"containerd": {"containerd", "--version"}, "runc": {"runc", "--version"},
		"shim": {env.Shim, "-v"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).Output(); err == nil {
			v[name] = strings.Join(strings.Fields(strings.SplitN(strings.TrimSpace(string(out)), "\n", 3)[0]), " ")
			if name == "shim" {
				v[name] = strings.Join(strings.Fields(string(out)), " ")
			}
		}
	}
	return v
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
