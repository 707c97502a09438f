//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
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
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

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
