// Command shimcost measures what builds of the shim cost per pod, to weigh
// a library against the code it would replace: each build's size, its
// start-up (`-v` run again, again, also under GODEBUG=inittrace=1), the
// memory of a shim serving one CRI pod (/proc/PID/smaps_rollup), a shared
// shim's per pod. Every build is a CRI handler of one private containerd
// (its binary named by runtime_type); the handlers take turns, so that
// drift on a shared machine hits all alike. Run it as root from the
// repository's root, after `make deps`:
//
//	go run ./hack/shimcost -build base=bin/containerd-shim-pause-v2 -build cri=/tmp/shim-cri
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// builds are the -build flags: name=path, in order.
type builds []build

type build struct{ name, path string }

func (b *builds) String() string { return fmt.Sprint(*b) }

func (b *builds) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=PATH, got %q", v)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	*b = append(*b, build{name, abs})
	return nil
}

func main() {
	var bs builds
	flag.Var(&bs, "build", "NAME=PATH of a shim build (repeat; the first is the reference)")
	pods := flag.Int("pods", 5, "pods per build, one shim each")
	dense := flag.Int("dense", 10, "pods per build on one shared shim (PodsPerShim = 0)")
	execs := flag.Int("execs", 50, "runs of `-v` per build")
	flag.Parse()
	if len(bs) == 0 {
		fmt.Fprintln(os.Stderr, "shimcost: no -build")
		os.Exit(2)
	}
	if err := run(bs, *pods, *dense, *execs); err != nil {
		fmt.Fprintln(os.Stderr, "shimcost:", err)
		os.Exit(1)
	}
}

// result is one build's figures; memory in kB, times in ms.
type result struct {
	size                    int64
	execMs, initMs          float64
	inits, initAllocBytes   int
	rss, pss, anon, private []float64
	// densePss is the PSS of the shared shim over its pods.
	densePss float64
}

func run(bs builds, pods, dense, execs int) error {
	res := map[string]*result{}
	for _, b := range bs {
		fi, err := os.Stat(b.path)
		if err != nil {
			return err
		}
		res[b.name] = &result{size: fi.Size()}
	}
	// Start-up, the builds taking turns.
	times := map[string][]float64{}
	for i := 0; i < execs; i++ {
		for _, b := range bs {
			start := time.Now()
			if err := exec.Command(b.path, "-v").Run(); err != nil {
				return fmt.Errorf("%s -v: %w", b.name, err)
			}
			times[b.name] = append(times[b.name], float64(time.Since(start).Microseconds())/1000)
		}
	}
	for _, b := range bs {
		r := res[b.name]
		r.execMs = median(times[b.name])
		var ms []float64
		for i := 0; i < 9; i++ {
			t, n, bytes, err := initTrace(b.path)
			if err != nil {
				return err
			}
			ms = append(ms, t)
			r.inits, r.initAllocBytes = n, bytes
		}
		r.initMs = median(ms)
	}
	if err := measureMemory(bs, pods, dense, res); err != nil {
		return err
	}
	ref := res[bs[0].name]
	fmt.Printf("| build | binary | `-v` p50 | inits (GODEBUG=inittrace=1) | init time p50 | init heap | shim RSS p50 | PSS p50 | anonymous p50 | shared shim's PSS per pod (%d pods) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n", dense)
	for _, b := range bs {
		r := res[b.name]
		fmt.Printf("| %s | %.2f MB (%+d kB) | %.1f ms | %d | %.2f ms | %d kB (%+d) | %.0f kB | %.0f kB (%+.0f) | %.0f kB (%+.0f) | %.0f kB (%+.0f) |\n",
			b.name, float64(r.size)/1e6, (r.size-ref.size)/1000, r.execMs, r.inits, r.initMs,
			r.initAllocBytes/1000, (r.initAllocBytes-ref.initAllocBytes)/1000,
			median(r.rss), median(r.pss), median(r.pss)-median(ref.pss), median(r.anon), median(r.anon)-median(ref.anon),
			r.densePss, r.densePss-ref.densePss)
	}
	return nil
}

// initTrace runs `path -v` with GODEBUG=inittrace=1 and sums its package
// inits: wall time, count, bytes allocated.
func initTrace(path string) (ms float64, n, bytes int, err error) {
	cmd := exec.Command(path, "-v")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%s -v: %w", path, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		// init PKG @T ms, X ms clock, B bytes, A allocs
		f := strings.Fields(line)
		if len(f) < 11 || f[0] != "init" {
			continue
		}
		clock, _ := strconv.ParseFloat(f[4], 64)
		b, _ := strconv.Atoi(f[7])
		ms += clock
		bytes += b
		n++
	}
	return ms, n, bytes, nil
}

// measureMemory runs pods CRI pods per build, one shim each, the builds
// taking turns, and reads each shim's memory once its pod is ready and
// asked for its verbose status (as crictl inspectp does); then dense pods
// per build on one shared shim, whose PSS it divides among them.
func measureMemory(bs builds, pods, dense int, res map[string]*result) error {
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	shim, missing := testenv.Prerequisites(repo)
	if missing != "" {
		return fmt.Errorf("cannot run: %s", missing)
	}
	var opts []testenv.Option
	for _, b := range bs {
		opts = append(opts, testenv.WithRuntime(testenv.Runtime{Name: "cost-" + b.name, Binary: b.path}),
			testenv.WithRuntime(testenv.Runtime{Name: "cost-" + b.name + "-dense", Binary: b.path, Options: "PodsPerShim = 0"}))
	}
	env, err := testenv.Start(repo, shim, "shimcost", append(opts, testenv.WithSharedHost())...)
	defer func() {
		// Leaks stops containerd.
		if leaks := env.Leaks(); len(leaks) > 0 {
			fmt.Fprintln(os.Stderr, "shimcost: left behind:", leaks)
		}
		os.RemoveAll(env.Dir)
	}()
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient("unix://"+env.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := cri.NewRuntimeServiceClient(conn)
	ctx := context.Background()
	var ids []string
	defer func() {
		for _, id := range ids {
			_, _ = rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: id})
			_, _ = rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: id})
		}
	}()
	runPod := func(b build, handler string, i int) (int, error) {
		uid := fmt.Sprintf("cost-%s-%d-%d", b.name, i, time.Now().UnixNano())
		config := &cri.PodSandboxConfig{
			Metadata:     &cri.PodSandboxMetadata{Name: "cost-" + b.name, Namespace: "default", Uid: uid},
			Hostname:     "cost",
			LogDirectory: filepath.Join(env.Dir, "logs", uid),
			DnsConfig:    &cri.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}},
			Labels:       map[string]string{"app": "cost"},
			Linux: &cri.LinuxPodSandboxConfig{
				SecurityContext: &cri.LinuxSandboxSecurityContext{
					NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_POD, Pid: cri.NamespaceMode_POD, Ipc: cri.NamespaceMode_POD},
				},
			},
		}
		resp, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: config, RuntimeHandler: handler})
		if err != nil {
			return 0, fmt.Errorf("pod on %s: %w", handler, err)
		}
		ids = append(ids, resp.PodSandboxId)
		st, err := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: resp.PodSandboxId, Verbose: true})
		if err != nil {
			return 0, err
		}
		var info struct {
			Pid int `json:"pid"`
		}
		if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil || info.Pid <= 0 {
			return 0, fmt.Errorf("no pause pid in %s's status: %v", handler, st.GetInfo())
		}
		return ancestor(info.Pid, b.path)
	}
	for i := 0; i < pods; i++ {
		for _, b := range bs {
			shimPid, err := runPod(b, "cost-"+b.name, i)
			if err != nil {
				return err
			}
			// The shim's start has settled (its answers are sent, its
			// garbage collectable): read it a moment later.
			time.Sleep(time.Second)
			m, err := rollup(shimPid)
			if err != nil {
				return err
			}
			r := res[b.name]
			r.rss, r.pss = append(r.rss, m["Rss"]), append(r.pss, m["Pss"])
			r.anon, r.private = append(r.anon, m["Anonymous"]), append(r.private, m["Private_Dirty"])
		}
	}
	shared := map[string]int{}
	for i := 0; i < dense; i++ {
		for _, b := range bs {
			shimPid, err := runPod(b, "cost-"+b.name+"-dense", i)
			if err != nil {
				return err
			}
			if p, ok := shared[b.name]; ok && p != shimPid {
				return fmt.Errorf("%s's dense pods on shims %d and %d", b.name, p, shimPid)
			}
			shared[b.name] = shimPid
		}
	}
	if dense > 0 {
		time.Sleep(time.Second)
		for _, b := range bs {
			m, err := rollup(shared[b.name])
			if err != nil {
				return err
			}
			res[b.name].densePss = m["Pss"] / float64(dense)
		}
	}
	return nil
}

// ancestor is the nearest ancestor of pid running exe.
func ancestor(pid int, exe string) (int, error) {
	for p, hops := pid, 0; p > 1 && hops < 4; hops++ {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			return 0, err
		}
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		p, _ = strconv.Atoi(f[1])
		if e, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); err == nil && e == exe {
			return p, nil
		}
	}
	return 0, fmt.Errorf("pause process %d has no ancestor running %s", pid, exe)
}

// rollup reads /proc/PID/smaps_rollup, in kB.
func rollup(pid int) (map[string]float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
			m[k], _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return m, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
