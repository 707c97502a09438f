//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// make e2e-conformance runs Kubernetes' own node conformance specs
// (e2e.test, the specs labelled NodeConformance) on the one-node cluster,
// once per handler: each run gets a cluster of its own whose CRI default
// runtime (default_runtime_name) is that handler, so the specs' pods, which
// name no RuntimeClass, all run on it. The first handler is the baseline: a
// spec that passes there and not on another is a regression, and fails the
// test.
//
// The environment sets it up:
//
//	E2E_CONFORMANCE           the report directory; unset, TestNodeConformance skips
//	E2E_CONFORMANCE_HANDLERS  the handlers, baseline first (runc,pause)
//	E2E_CONFORMANCE_FOCUS     a regexp narrowing the specs (all NodeConformance specs)
//	E2E_CONFORMANCE_PROCS     ginkgo's parallel processes (4)
//	E2E_CONFORMANCE_SLOW      set: the skipped long specs run too (see conformanceSkips)
const (
	conformanceEnv      = "E2E_CONFORMANCE"
	conformanceHandlers = "E2E_CONFORMANCE_HANDLERS"
	conformanceFocus    = "E2E_CONFORMANCE_FOCUS"
	conformanceProcs    = "E2E_CONFORMANCE_PROCS"
	conformanceSlow     = "E2E_CONFORMANCE_SLOW"
)

// conformance is set by TestMain when conformanceEnv is: then no shared
// cluster starts, and TestNodeConformance starts its own.
var conformance *conformanceRun

type conformanceRun struct{ repo, shim, out string }

// nodeConformance is the label of the specs run (e2e.test also writes it in
// their names, as [NodeConformance]).
const nodeConformance = "NodeConformance"

// conformanceSkip is specs skipped on every handler alike, and why.
type conformanceSkip struct {
	pattern, reason string
	// long ones run when E2E_CONFORMANCE_SLOW is set.
	long bool
}

// conformanceSkips are the specs that cannot run on this cluster, or take
// too long for the run, for every handler alike, each with its reason. The
// suite's pods live on a CNI bridge that has no address on the host
// (testenv), so nothing on the host reaches a pod's IP (guardPodSubnet
// keeps such packets on the host).
var conformanceSkips = []conformanceSkip{
	{`Probing container .*(/healthz http|tcp:8080|GRPC) liveness probe|Probing container with readiness probe|Probing container should have monotonically increasing restart count|Probing container should override timeoutGracePeriodSeconds when LivenessProbe field is set`,
		"an HTTP, TCP or gRPC probe: the kubelet connects to the pod's IP from the host, which has no route to the pods (exec probes run)", false},
	{`Container Lifecycle Hook when create a pod with lifecycle hook should execute (poststart|prestop) https? hook`,
		"an HTTP hook: the kubelet sends it to a pod's IP from the host, which has no route to the pods (exec hooks run)", false},
	{`Networking Granular Checks: Pods should function for node-pod communication`,
		"a host-network pod (the host's network namespace) connects to pod IPs, which the host has no route to", false},
	{`Networking Granular Checks: Pods should function for intra-pod communication`,
		"the netserver pods it starts have HTTP readiness and liveness probes, which the kubelet sends to their IPs from the host", false},
	{`Pods should cap back-off at MaxContainerBackOff`,
		"[Slow], about 30 minutes alone (it waits twice the kubelet's 300 s back-off cap, then times capped restarts), more than the rest of a handler's run; container restarts and their back-off are also what the liveness and back-off reset specs that run check. SLOW=1 runs it", true},
}

// activeSkips are the skips in force for this run.
func activeSkips() []conformanceSkip {
	var skips []conformanceSkip
	for _, s := range conformanceSkips {
		if !s.long || os.Getenv(conformanceSlow) == "" {
			skips = append(skips, s)
		}
	}
	return skips
}

// guardPodSubnet makes the pods' subnet unreachable from the host for the
// run: a probe, a hook or a connection from the host to a pod's IP then
// fails at once instead of leaving by the host's default route (without
// it, the kubelet's HTTP probes of pod IPs went out and were answered from
// off the host). Pods' own traffic stays in their network namespaces and
// on the bridge, which this route does not touch. It is removed at the
// end, unless it was there before.
func guardPodSubnet(t *testing.T) {
	t.Helper()
	out, err := exec.Command("ip", "route", "add", "unreachable", testenv.PodSubnet).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "File exists") {
			t.Logf("a route for %s is already there, left as it is: %s", testenv.PodSubnet, routeFor(testenv.PodSubnet))
			return
		}
		t.Fatalf("ip route add unreachable %s: %v: %s", testenv.PodSubnet, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "route", "del", "unreachable", testenv.PodSubnet).CombinedOutput(); err != nil {
			t.Errorf("ip route del unreachable %s: %v: %s", testenv.PodSubnet, err, out)
		}
	})
}

func routeFor(prefix string) string {
	out, _ := exec.Command("ip", "route", "show", prefix).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// conformanceTools are what make deps-conformance and deps-k8s-conformance
// install, beyond make e2e's.
var conformanceTools = []string{"kube-scheduler", "kube-controller-manager", "e2e.test", "ginkgo", "agnhost", "crane", "busybox-upstream", "gcc"}

// specResult is one spec's outcome on one handler.
type specResult struct {
	State   string `json:"state"`             // ginkgo's: passed, failed, skipped, ...
	Message string `json:"message,omitempty"` // why it failed or was skipped
	Seconds int    `json:"seconds,omitempty"`
}

// handlerRun sums up one handler's run.
type handlerRun struct {
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
	// Seconds is e2e.test's run, ClusterSeconds the cluster's start,
	// images and drain besides.
	Seconds        int `json:"seconds"`
	ClusterSeconds int `json:"clusterSeconds"`
}

// TestNodeConformance: Kubernetes' NodeConformance specs pass on handler
// pause wherever they pass on runc (see the comment on conformanceEnv).
func TestNodeConformance(t *testing.T) {
	if conformance == nil {
		if skip != "" {
			t.Skip(skip)
		}
		t.Skip("make e2e-conformance runs it (" + conformanceEnv + "=<report dir>)")
	}
	for _, tool := range conformanceTools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (run `make deps-conformance deps-k8s-conformance`)", tool)
		}
	}
	handlers := strings.Split(envOr(conformanceHandlers, "runc,pause"), ",")
	focus := os.Getenv(conformanceFocus)
	procs, err := strconv.Atoi(envOr(conformanceProcs, "4"))
	if err != nil || procs < 1 {
		t.Fatalf("%s=%q: want a number of processes", conformanceProcs, os.Getenv(conformanceProcs))
	}
	version, err := exec.Command("e2e.test", "--version").Output()
	if err != nil {
		t.Fatalf("e2e.test --version: %v", err)
	}
	images, pause := conformanceImages(t)
	guardPodSubnet(t)

	results := map[string]map[string]specResult{} // spec -> handler -> result
	runs := map[string]*handlerRun{}
	for _, h := range handlers {
		run := &handlerRun{}
		runs[h] = run
		t.Run(h, func(t *testing.T) {
			for spec, r := range runNodeConformance(t, h, focus, procs, images, pause, run) {
				if results[spec] == nil {
					results[spec] = map[string]specResult{}
				}
				results[spec][h] = r
			}
		})
	}
	regressions := writeConformanceReport(t, strings.TrimSpace(string(version)), handlers, focus, procs, results, runs)
	for _, r := range regressions {
		t.Errorf("passes on %s, not on %s", handlers[0], r)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
