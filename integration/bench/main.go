// Command bench measures pods on this runtime against the stock runc shim
// with a pause image, in one run on one private containerd, through CRI's
// gRPC API as the kubelet calls it: handler pause (a shim per pod),
// pause-dense (PodsPerShim = 0: the pods share a shim). Rounds alternate
// the handlers with a CNI floor (the pod network alone, see floor.go), so
// that drift on a shared machine hits all alike; results are reported as
// ratios to runc. See `make bench`.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

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
