// Command conformance runs the CRI validation suite (critest) against one
// private containerd on two handlers, runc (containerd's runc shim with a
// pause image) and pause (this shim, no image), to compare them spec by
// spec: it fails when a spec passes on runc but not on pause. Images
// critest pulls are built here from host files, served by a registry on
// 127.0.0.1 to which containerd sends every pull. See `make conformance`.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/standin"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// skips are the specs that cannot run on this machine, for both handlers
// alike, each with its reason.
var skips = []struct{ pattern, reason string }{
	{`image with digest|digested image`, "the image is pinned by an upstream digest no local build can reproduce"},
	{`should support network|should support port mapping|should support hostNetwork|should support portforward \[Conformance\]`, "fetches http://POD_IP or a host port from the host first: the test CNI bridge has no address on the host, and host ports need portmap and iptables"},
	{`\[Benchmark\]|benchmark`, "benchmarks, not conformance (critest runs them only with -benchmark)"},
	{`AppArmor|apparmor`, "AppArmor is not enabled on this kernel"},
	{`SELinux|selinux`, "SELinux is not enabled on this kernel"},
}

func main() {
	handlers := flag.String("handlers", "runc,pause", "runtime handlers to run critest on")
	focus := flag.String("focus", "", "run only specs matching this regexp")
	out := flag.String("out", "_output", "report directory")
	strict := flag.Bool("strict", false, "fail on any failed spec, not only on those that pass on the first handler")
	standins := flag.String("standins", "", "read the stand-in images' programs from this directory instead of building them (a node without gcc)")
	buildOnly := flag.String("build-standins", "", "only build the stand-ins' programs into this directory")
	flag.Parse()
	if *buildOnly != "" {
		repo, _ := os.Getwd()
		if err := os.MkdirAll(*buildOnly, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			os.Exit(1)
		}
		if _, err := standin.BuildPrograms(repo, *buildOnly, ""); err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			os.Exit(1)
		}
		return
	}
	prebuilt = *standins
	code, err := run(strings.Split(*handlers, ","), *focus, *out, *strict)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// prebuilt is the -standins directory.
var prebuilt string

// denseHandler is the handler whose pods all share one shim (PodsPerShim
// = 0), added when asked for.
const denseHandler = "pause-dense"

func run(handlers []string, focus, out string, strict bool) (code int, retErr error) {
	repo, err := os.Getwd()
	if err != nil {
		return 1, err
	}
	shim, missing := testenv.Prerequisites(repo)
	if missing != "" {
		return 1, fmt.Errorf("cannot run: %s", missing)
	}
	tools := []string{"critest", "crane", "gcc"}
	if prebuilt != "" {
		tools = tools[:2]
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return 1, fmt.Errorf("%s is not installed (run `make deps-conformance`)", tool)
		}
	}
	work, err := os.MkdirTemp("", "pause-conformance-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(work)

	registry, stopRegistry, err := standin.StartRegistry(work)
	if err != nil {
		return 1, err
	}
	defer stopRegistry()

	opts := []testenv.Option{testenv.WithRegistryMirror(registry)}
	if slices.Contains(handlers, denseHandler) {
		opts = append(opts, testenv.WithRuntime(testenv.Runtime{Name: denseHandler, Options: "PodsPerShim = 0"}))
	}
	crunOpts, err := crunRuntimes(handlers)
	if err != nil {
		return 1, err
	}
	opts = append(opts, crunOpts...)
	env, err := testenv.Start(repo, shim, "pause-conformance", opts...)
	defer func() {
		if leaks := env.Leaks(); len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "conformance: left behind:\n  %s\n", strings.Join(leaks, "\n  "))
			if code == 0 {
				code = 1
			}
		}
		if code == 0 && retErr == nil {
			os.RemoveAll(env.Dir)
		} else {
			fmt.Fprintln(os.Stderr, "conformance: containerd log kept in", filepath.Join(env.Dir, "containerd.log"))
		}
	}()
	if err != nil {
		return 1, err
	}
	if err := publishImages(env, registry, work, prebuilt); err != nil {
		return 1, err
	}

	results := map[string]map[string]string{} // spec -> handler -> state
	for _, h := range handlers {
		states, err := critest(env, h, focus, filepath.Join(work, h+".json"))
		if err != nil {
			return 1, err
		}
		for spec, state := range states {
			if results[spec] == nil {
				results[spec] = map[string]string{}
			}
			results[spec][h] = state
		}
	}
	return compare(results, handlers, out, strict)
}

// ginkgoReport is the part of ginkgo's JSON report read here.
type ginkgoReport []struct {
	SpecReports []struct {
		ContainerHierarchyTexts []string
		LeafNodeText            string
		LeafNodeType            string
		State                   string
	}
}

// critest runs the suite on one handler and returns each spec's state.
func critest(env *testenv.Env, handler, focus, report string) (map[string]string, error) {
	var skip []string
	for _, s := range skips {
		skip = append(skip, s.pattern)
	}
	args := []string{
		"-runtime-endpoint", "unix://" + env.Address, "-image-endpoint", "unix://" + env.Address,
		"-runtime-handler", handler,
		"--ginkgo.skip", strings.Join(skip, "|"),
		"--ginkgo.json-report", report,
		"--ginkgo.no-color", "--ginkgo.succinct",
	}
	if focus != "" {
		args = append(args, "--ginkgo.focus", focus)
	}
	fmt.Printf("conformance: critest on handler %s\n", handler)
	cmd := exec.Command("critest", args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	start := time.Now()
	runErr := cmd.Run() // a failing spec makes critest exit non-zero
	data, err := os.ReadFile(report)
	if err != nil {
		return nil, fmt.Errorf("critest on %s wrote no report (%v): %w", handler, runErr, err)
	}
	var r ginkgoReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	states := map[string]string{}
	for _, suite := range r {
		for _, s := range suite.SpecReports {
			if s.LeafNodeType != "It" {
				continue
			}
			name := strings.TrimSpace(strings.Join(append(slices.Clone(s.ContainerHierarchyTexts), s.LeafNodeText), " "))
			states[name] = s.State
		}
	}
	fmt.Printf("conformance: handler %s done in %s\n", handler, time.Since(start).Round(time.Second))
	return states, nil
}

// handlersWithOptions are the handlers whose CRI runtime has an options
// table (PodsPerShim, SystemdCgroup): containerd hands their containers
// runtimeoptions.v1.Options.
var handlersWithOptions = []string{denseHandler, "pause-systemd", crunHandler}

// containerdLimitation names why a spec fails on handler for a reason in
// containerd itself, or "". containerd 2.4's client starts a container with
// a user namespace by reading the container's runtime options as runc's
// (client/task.go getRuncOptions, for the I/O owner): with a non-runc
// runtime's options table it fails ("can't unmarshal type
// runtimeoptions.v1.Options to output containerd.runc.v1.Options") before
// the shim is asked. Handlers without a table, as the shipped pause, pass.
func containerdLimitation(handler, spec string) string {
	if slices.Contains(handlersWithOptions, handler) && strings.Contains(spec, "UserNamespaces") {
		return "containerd's client reads a non-runc options table as runc options for a user-namespaced container"
	}
	return ""
}

// compare writes the side-by-side table and summary; the exit code is 1 when
// a spec passes on the first handler (runc) and not on the others.
func compare(results map[string]map[string]string, handlers []string, out string, strict bool) (int, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return 1, err
	}
	specs := slices.Sorted(func(yield func(string) bool) {
		for s := range results {
			if !yield(s) {
				return
			}
		}
	})
	type count struct{ Passed, Failed, Skipped int }
	counts := map[string]*count{}
	for _, h := range handlers {
		counts[h] = &count{}
	}
	var regressions, limited []string
	var b strings.Builder
	b.WriteString("# critest (cri-tools v1.34.0), spec by spec\n\n| spec | " + strings.Join(handlers, " | ") + " |\n|---|" + strings.Repeat("---|", len(handlers)) + "\n")
	for _, spec := range specs {
		row := []string{strings.ReplaceAll(spec, "|", "\\|")}
		for _, h := range handlers {
			st := results[spec][h]
			switch st {
			case "passed":
				counts[h].Passed++
			case "failed", "panicked", "timedout", "interrupted", "aborted":
				counts[h].Failed++
			default:
				counts[h].Skipped++
			}
			row = append(row, st)
		}
		if len(handlers) > 1 && results[spec][handlers[0]] == "passed" {
			for _, h := range handlers[1:] {
				if results[spec][h] == "passed" {
					continue
				}
				if reason := containerdLimitation(h, spec); reason != "" {
					limited = append(limited, h+": "+spec+" ("+reason+")")
					continue
				}
				regressions = append(regressions, h+": "+spec)
			}
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	b.WriteString("\n## Skipped on purpose (both handlers)\n\n")
	for _, s := range skips {
		fmt.Fprintf(&b, "- `%s`: %s\n", s.pattern, s.reason)
	}
	if len(limited) > 0 {
		b.WriteString("\n## Failing for containerd, not the shim\n\n")
		for _, l := range limited {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	summary := map[string]any{"handlers": counts, "regressions": regressions, "containerdLimitations": limited}
	b.WriteString("\n## Totals\n\n")
	for _, h := range handlers {
		c := counts[h]
		fmt.Fprintf(&b, "- %s: %d passed, %d failed, %d skipped\n", h, c.Passed, c.Failed, c.Skipped)
	}
	if err := os.WriteFile(filepath.Join(out, "conformance.md"), []byte(b.String()), 0o644); err != nil {
		return 1, err
	}
	data, _ := json.MarshalIndent(summary, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "conformance.json"), append(data, '\n'), 0o644); err != nil {
		return 1, err
	}
	for _, r := range regressions {
		fmt.Println("conformance: passes on", handlers[0], "but not on", r)
	}
	for _, l := range limited {
		fmt.Println("conformance: fails for containerd, not the shim:", l)
	}
	for _, h := range handlers {
		c := counts[h]
		fmt.Printf("%s: %d passed, %d failed, %d skipped\n", h, c.Passed, c.Failed, c.Skipped)
	}
	if len(regressions) > 0 {
		return 1, nil
	}
	for _, h := range handlers {
		if strict && counts[h].Failed > 0 {
			return 1, nil
		}
	}
	return 0, nil
}

// The crun handlers run containers with crun (BinaryName): crunReference on
// containerd's runc.v2 shim with the pause image, the reference, and
// crunHandler on this shim. Added when asked for.
const (
	crunReference = "runc-crun"
	crunHandler   = "pause-crun"
)

// crunRuntimes adds the crun handlers that handlers name, with the crun on
// PATH, on the cgroup driver of the node.
func crunRuntimes(handlers []string) ([]testenv.Option, error) {
	if !slices.Contains(handlers, crunReference) && !slices.Contains(handlers, crunHandler) {
		return nil, nil
	}
	crun, err := exec.LookPath("crun")
	if err != nil {
		return nil, fmt.Errorf("handlers %s and %s need crun: %w", crunReference, crunHandler, err)
	}
	options := fmt.Sprintf("BinaryName = %q\n", crun)
	if testenv.SystemdDriver() {
		options += "SystemdCgroup = true\n"
	}
	return []testenv.Option{
		testenv.WithRuntime(testenv.Runtime{Name: crunReference, Binary: "io.containerd.runc.v2", Sandboxer: "podsandbox", PullPauseImage: true, Options: options}),
		testenv.WithRuntime(testenv.Runtime{Name: crunHandler, Options: options}),
	}, nil
}
