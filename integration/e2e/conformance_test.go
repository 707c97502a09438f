//go:build e2e

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/standin"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
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

// conformanceImages are the stand-ins for the images e2e.test pulls
// (`e2e.test --list-images`, so a new pin's tags follow) that have one;
// the rest are left out, and a spec pulling one fails on every handler.
// agnhost is the one e2e.test's own release builds (make
// deps-k8s-conformance), on the busybox stand-in. pause is Kubernetes'
// pause, for the sandbox image handler runc's pods run on.
func conformanceImages(t *testing.T) (images []testimage.Image, pause []byte) {
	t.Helper()
	out, err := exec.Command("e2e.test", "--list-images").Output()
	if err != nil {
		t.Fatalf("e2e.test --list-images: %v", err)
	}
	bins, err := standin.BuildPrograms(conformance.repo, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	base, err := standin.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	agnhost, err := exec.LookPath("agnhost")
	if err != nil {
		t.Fatal(err)
	}
	agnhostBin, err := os.ReadFile(agnhost)
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := localhostCert()
	if err != nil {
		t.Fatal(err)
	}
	const e2eImages = "registry.k8s.io/e2e-test-images/"
	for _, name := range strings.Fields(string(out)) {
		repo, _, _ := strings.Cut(name, ":")
		switch {
		case repo == e2eImages+"agnhost":
			// As upstream's: /agnhost, the entrypoint, with pause by
			// default; agnhost-2 for the entrypoint specs; /uploads for
			// netexec; a serving certificate for 127.0.0.1 (porter,
			// netexec --tls-*); a user and group defined in the image;
			// curl, which the specs run in it (upstream's has Alpine's).
			images = append(images, standin.With(base, name, []testimage.File{
				{Path: "agnhost", Data: agnhostBin, Mode: 0o755},
				{Path: "agnhost-2", Linkname: "agnhost"},
				{Path: "uploads", Dir: true},
				{Path: "localhost.crt", Data: crt, Mode: 0o644},
				{Path: "localhost.key", Data: key, Mode: 0o644},
				{Path: "usr/bin/curl", Data: []byte(curlScript), Mode: 0o755},
				{Path: "etc/passwd", Data: []byte(standin.Passwd + "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n"), Mode: 0o644},
				{Path: "etc/group", Data: []byte(standin.Group + "user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n"), Mode: 0o644},
			}, func(i *testimage.Image) { i.Entrypoint, i.Cmd = []string{"/agnhost"}, []string{"pause"} }))
		case repo == e2eImages+"busybox":
			images = append(images, standin.With(base, name, nil, nil))
		case repo == e2eImages+"nginx":
			images = append(images, standin.Webserver(base, bins, name, "nginx", "80"))
		case repo == e2eImages+"httpd":
			images = append(images, standin.Webserver(base, bins, name, "httpd", "80"))
		case repo == e2eImages+"nonewprivs":
			images = append(images, standin.Nonewprivs(base, bins, name))
		case repo == e2eImages+"nonroot":
			images = append(images, standin.With(base, name, nil, func(i *testimage.Image) { i.User = "1234" }))
		case path.Base(repo) == "pause" && strings.HasPrefix(repo, "registry.k8s.io/"):
			images = append(images, testimage.Pause(name, bins["pause"]))
		}
	}
	return images, bins["pause"]
}

// curlScript stands in for curl in the agnhost image: the specs fetch a
// URL with it (the exec hooks report to a pod over HTTP), which busybox's
// wget does as well. Options are ignored.
const curlScript = `#!/bin/sh
# Stand-in for curl: a GET of the URL argument through busybox wget.
url=
for a; do
	case $a in
	*://*) url=$a ;;
	-*) ;;
	*) [ -n "$url" ] || last=$a ;;
	esac
done
exec wget -q -O - "${url:-$last}"
`

// localhostCert is a self-signed serving certificate for 127.0.0.1 and
// ::1 and its key, PEM, as agnhost's image ships one (porter/localhost.crt).
func localhostCert() (crt, key []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// runNodeConformance brings up a cluster whose default runtime is handler,
// runs the specs there, and returns their results by spec name.
func runNodeConformance(t *testing.T, handler, focus string, procs int, images []testimage.Image, pause []byte, run *handlerRun) map[string]specResult {
	start := time.Now()
	dir, err := os.MkdirTemp("", "pause-e2e-conformance-"+handler+"-")
	if err != nil {
		t.Fatal(err)
	}
	registry, stopRegistry, err := standin.StartRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer stopRegistry()
	cl := &cluster{dir: dir}
	var tested time.Duration
	defer func() {
		drained := time.Now()
		if err := cl.drain(); err != nil {
			t.Errorf("drain: %v", err)
		}
		t.Logf("drained in %s", time.Since(drained).Round(time.Second))
		if leaks := cl.stop(); len(leaks) > 0 {
			t.Errorf("the run left behind:\n  %s", strings.Join(leaks, "\n  "))
		}
		run.ClusterSeconds = int((time.Since(start) - tested).Seconds())
		if t.Failed() {
			t.Logf("logs kept in %s (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, registry) and %s (containerd)", dir, cl.env.Dir)
			return
		}
		os.RemoveAll(dir)
		os.RemoveAll(cl.env.Dir)
	}()
	if err := startCluster(cl, conformance.repo, conformance.shim, options{defaultRuntime: handler, registry: registry, controlPlane: true}); err != nil {
		t.Fatalf("cluster: %v", err)
	}
	// CRI pulls the sandbox image for handler runc's pods.
	images = append(slices.Clone(images), testimage.Pause(cl.sandboxImage, pause))
	if err := standin.Push(cl.env, registry, dir, images); err != nil {
		t.Fatalf("stand-in images: %v", err)
	}
	t.Logf("cluster up with default runtime %s, images pushed, in %s", handler, time.Since(start).Round(time.Second))

	began := time.Now()
	report, err := runE2ETest(cl, dir, handler, focus, procs)
	tested = time.Since(began)
	run.Seconds = int(tested.Seconds())
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]specResult{}
	var focusRE *regexp.Regexp
	if focus != "" {
		focusRE = regexp.MustCompile(focus)
	}
	for _, suite := range report {
		for _, s := range suite.SpecReports {
			name := strings.TrimSpace(strings.Join(append(slices.Clone(s.ContainerHierarchyTexts), s.LeafNodeText), " "))
			if s.LeafNodeType != "It" || !hasLabel(s.ContainerHierarchyLabels, s.LeafNodeLabels, nodeConformance) ||
				(focusRE != nil && !focusRE.MatchString(name)) {
				continue
			}
			r := specResult{State: s.State, Seconds: int(s.RunTime.Seconds())}
			switch {
			case s.State == "skipped" && skipReason(name) != "":
				r.Message = "skipped here: " + skipReason(name)
			case s.State != "passed":
				r.Message = firstLine(s.Failure.Message)
				if s.Failure.Location.FileName != "" {
					r.Message += fmt.Sprintf(" (%s:%d)", path.Base(s.Failure.Location.FileName), s.Failure.Location.LineNumber)
				}
			}
			results[name] = r
			switch {
			case r.State == "passed":
				run.Passed++
			case r.State == "skipped" || r.State == "pending":
				run.Skipped++
			default:
				run.Failed++
			}
		}
	}
	t.Logf("%s: %d passed, %d failed, %d skipped, e2e.test in %s", handler, run.Passed, run.Failed, run.Skipped, tested.Round(time.Second))
	return results
}

// ginkgoReport is the part of ginkgo's JSON report read here.
type ginkgoReport []struct {
	SpecReports []struct {
		ContainerHierarchyTexts  []string
		ContainerHierarchyLabels [][]string
		LeafNodeText             string
		LeafNodeType             string
		LeafNodeLabels           []string
		State                    string
		RunTime                  time.Duration
		Failure                  struct {
			Message  string
			Location struct {
				FileName   string
				LineNumber int
			}
		}
	}
}

// runE2ETest runs e2e.test through the ginkgo CLI (procs processes) on the
// cluster, its output in the report directory, and reads its JSON report.
func runE2ETest(cl *cluster, dir, handler, focus string, procs int) (ginkgoReport, error) {
	var skips []string
	for _, s := range activeSkips() {
		skips = append(skips, s.pattern)
	}
	args := []string{
		"--procs", strconv.Itoa(procs), "--label-filter", nodeConformance,
		"--skip", strings.Join(skips, "|"),
		"--json-report", "report.json", "--output-dir", dir,
		"--no-color", "--silence-skips", "--timeout", "3h",
	}
	if focus != "" {
		args = append(args, "--focus", focus)
	}
	e2eTest, err := exec.LookPath("e2e.test")
	if err != nil {
		return nil, err
	}
	// ginkgo compares its version with the library's by `go list -m` in
	// the binary's directory, which answers for whatever module holds it
	// (this repository's, for _deps/bin): a link outside any module spares
	// a false warning. ginkgo and e2e.test come from one go.mod.
	link := filepath.Join(dir, "e2e.test")
	if err := os.Symlink(e2eTest, link); err != nil {
		return nil, err
	}
	args = append(args, link, "--", "--kubeconfig", cl.kubeconfig)
	logPath := filepath.Join(conformance.out, "e2e-conformance-"+handler+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command("ginkgo", args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	runErr := cmd.Run() // a failing spec makes it exit non-zero
	data, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		return nil, fmt.Errorf("e2e.test on %s wrote no report (%v; its output in %s): %w", handler, runErr, logPath, err)
	}
	var r ginkgoReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("e2e.test's report: %w", err)
	}
	return r, nil
}

func hasLabel(containers [][]string, leaf []string, label string) bool {
	if slices.Contains(leaf, label) {
		return true
	}
	for _, c := range containers {
		if slices.Contains(c, label) {
			return true
		}
	}
	return false
}

// skipReason is the reason a spec is skipped here, or "".
func skipReason(name string) string {
	for _, s := range activeSkips() {
		if regexp.MustCompile(s.pattern).MatchString(name) {
			return s.reason
		}
	}
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// writeConformanceReport writes e2e-conformance.md (a table, spec by spec
// and handler by handler, the failures' messages, what is skipped and why)
// and e2e-conformance.json, and returns the regressions: "handler: spec"
// for each spec that passes on the first handler and not on that one.
func writeConformanceReport(t *testing.T, version string, handlers []string, focus string, procs int, results map[string]map[string]specResult, runs map[string]*handlerRun) []string {
	t.Helper()
	specs := make([]string, 0, len(results))
	for s := range results {
		specs = append(specs, s)
	}
	slices.Sort(specs)
	var regressions []string
	for _, spec := range specs {
		if results[spec][handlers[0]].State != "passed" {
			continue
		}
		for _, h := range handlers[1:] {
			if results[spec][h].State != "passed" {
				regressions = append(regressions, h+": "+spec)
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# Kubernetes node conformance (e2e.test %s), handler by handler\n\n", version)
	fmt.Fprintf(&b, "Specs labelled `%s`", nodeConformance)
	if focus != "" {
		fmt.Fprintf(&b, " matching `%s`", focus)
	}
	fmt.Fprintf(&b, ", %d ginkgo processes, on the one-node cluster with CRI's default runtime set to each handler in turn; %s is the baseline.\n\n", procs, handlers[0])
	b.WriteString("| handler | passed | failed | skipped | e2e.test | cluster, images, drain |\n|---|---|---|---|---|---|\n")
	for _, h := range handlers {
		r := runs[h]
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %s |\n", h, r.Passed, r.Failed, r.Skipped,
			time.Duration(r.Seconds)*time.Second, time.Duration(r.ClusterSeconds)*time.Second)
	}
	b.WriteString("\n## Regressions (pass on " + handlers[0] + ", not on another handler)\n\n")
	if len(regressions) == 0 {
		b.WriteString("None.\n")
	}
	for _, r := range regressions {
		fmt.Fprintf(&b, "- %s\n", r)
	}
	b.WriteString("\n## Skipped here, on every handler\n\n")
	for _, s := range activeSkips() {
		fmt.Fprintf(&b, "- `%s`: %s\n", s.pattern, s.reason)
	}
	b.WriteString("\n## Spec by spec\n\n| spec | " + strings.Join(handlers, " | ") + " |\n|---|" + strings.Repeat("---|", len(handlers)) + "\n")
	for _, spec := range specs {
		row := []string{mdCell(spec)}
		for _, h := range handlers {
			r := results[spec][h]
			if strings.HasPrefix(r.Message, "skipped here") {
				r.State = "skipped here"
			}
			row = append(row, r.State)
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	b.WriteString("\n## Not passed: why\n\n")
	for _, spec := range specs {
		for _, h := range handlers {
			if r := results[spec][h]; r.State != "passed" && r.State != "" && !strings.HasPrefix(r.Message, "skipped here") {
				fmt.Fprintf(&b, "- %s, %s (%s): %s\n", h, mdCell(spec), r.State, mdCell(r.Message))
			}
		}
	}

	type skipJSON struct {
		Pattern string `json:"pattern"`
		Reason  string `json:"reason"`
	}
	var skips []skipJSON
	for _, s := range activeSkips() {
		skips = append(skips, skipJSON{s.pattern, s.reason})
	}
	data, err := json.MarshalIndent(struct {
		Version     string                           `json:"version"`
		Focus       string                           `json:"focus,omitempty"`
		Procs       int                              `json:"procs"`
		Handlers    []string                         `json:"handlers"`
		Runs        map[string]*handlerRun           `json:"runs"`
		Regressions []string                         `json:"regressions"`
		Skips       []skipJSON                       `json:"skips"`
		Specs       map[string]map[string]specResult `json:"specs"`
	}{version, focus, procs, handlers, runs, regressions, skips, results}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(conformance.out, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"e2e-conformance.md": []byte(b.String()), "e2e-conformance.json": append(data, '\n')} {
		if err := os.WriteFile(filepath.Join(conformance.out, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range handlers {
		r := runs[h]
		t.Logf("%s: %d passed, %d failed, %d skipped", h, r.Passed, r.Failed, r.Skipped)
	}
	t.Logf("report in %s", filepath.Join(conformance.out, "e2e-conformance.md"))
	return regressions
}

// mdCell makes s fit a markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
