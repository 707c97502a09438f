package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

func quantile(v []float64) quantiles {
	if len(v) == 0 {
		return quantiles{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return math.Round(s[max(i, 0)]*100) / 100
	}
	return quantiles{P50: at(0.50), P99: at(0.99)}
}

// measures are the ratios to runc each handler is given, in report order.
var measures = []struct{ key, label string }{
	{"sandbox_ready_p50", "sandbox ready p50 (CNI)"},
	{"sandbox_ready_p99", "sandbox ready p99 (CNI)"},
	{"sandbox_ready_hostnet_p50", "sandbox ready p50 (host network)"},
	{"pod_ready_p50", "pod ready p50 (sandbox + 1 container)"},
	{"teardown_p50", "teardown p50 (stop + remove)"},
	{"pss_per_pod", "PSS per pod (shims + pause)"},
	{"pause_pss", "pause PSS"},
	{"threads_per_shim", "threads per shim"},
	{"pods_per_s", "pods per second, 8 clients (higher is better)"},
	{"p99_growth_vs_runc", "p99 growth from 10 to N live pods, over runc's"},
}

func label(key string) string {
	for _, m := range measures {
		if m.key == key {
			return m.label
		}
	}
	return key
}

// ratios are each handler's measures over runc's (3 decimals; 0 where
// either is missing).
func ratios(h map[string]result) map[string]map[string]float64 {
	s := h[stock]
	out := map[string]map[string]float64{}
	for _, name := range handlers {
		if name == stock {
			continue
		}
		p := h[name]
		out[name] = map[string]float64{
			"sandbox_ready_p50":         ratio(p.SandboxReadyMs.P50, s.SandboxReadyMs.P50),
			"sandbox_ready_p99":         ratio(p.SandboxReadyMs.P99, s.SandboxReadyMs.P99),
			"sandbox_ready_hostnet_p50": ratio(p.SandboxReadyHostMs.P50, s.SandboxReadyHostMs.P50),
			"pod_ready_p50":             ratio(p.PodReadyMs.P50, s.PodReadyMs.P50),
			"teardown_p50":              ratio(p.TeardownMs.P50, s.TeardownMs.P50),
			"pss_per_pod":               ratio(p.PSSPerPodKB, s.PSSPerPodKB),
			"pause_pss":                 ratio(p.PausePSSKB, s.PausePSSKB),
			"threads_per_shim":          ratio(p.ThreadsPerShim, s.ThreadsPerShim),
			"pods_per_s":                ratio(p.PodsPerS, s.PodsPerS),
			"p99_growth_vs_runc":        ratio(p.P99Growth, s.P99Growth),
		}
	}
	return out
}

// goals are the targets: ratio to runc at most Max. A p99 growth
// no worse than runc's is a growth ratio of at most 1.
var goals = []struct {
	handler, key string
	max          float64
}{
	{ours, "sandbox_ready_p50", 0.40},
	{ours, "sandbox_ready_p99", 0.55},
	{ours, "pod_ready_p50", 0.70},
	{ours, "teardown_p50", 0.60},
	{ours, "p99_growth_vs_runc", 1},
	{dense, "pss_per_pod", 0.10},
	{dense, "sandbox_ready_p50", 0.30},
	{dense, "sandbox_ready_p99", 0.45},
	{dense, "pod_ready_p50", 0.60},
	{dense, "teardown_p50", 0.50},
	{dense, "p99_growth_vs_runc", 1},
}

// verdict is a goal checked against a run. A ratio the run could not
// measure (0: a run of 10 pods or fewer has no growth) is not Known, and
// not Met.
type verdict struct {
	Handler string  `json:"handler"`
	Key     string  `json:"key"`
	Label   string  `json:"label"`
	Ratio   float64 `json:"ratio"`
	Max     float64 `json:"max"`
	Known   bool    `json:"known"`
	Met     bool    `json:"met"`
}

func evaluate(r map[string]map[string]float64) []verdict {
	var out []verdict
	for _, g := range goals {
		v := verdict{Handler: g.handler, Key: g.key, Label: label(g.key), Ratio: r[g.handler][g.key], Max: g.max}
		v.Known = v.Ratio > 0
		v.Met = v.Known && v.Ratio <= g.max
		out = append(out, v)
	}
	return out
}

// goalOf is the verdict of a handler's measure, if it has a goal.
func goalOf(vs []verdict, handler, key string) (verdict, bool) {
	for _, v := range vs {
		if v.Handler == handler && v.Key == key {
			return v, true
		}
	}
	return verdict{}, false
}

func (v verdict) String() string {
	switch {
	case !v.Known:
		return fmt.Sprintf("≤ %.2f (n/a)", v.Max)
	case v.Met:
		return fmt.Sprintf("≤ %.2f ✓", v.Max)
	}
	return fmt.Sprintf("≤ %.2f ✗", v.Max)
}

func report(res *results, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, "results.json"), res); err != nil {
		return err
	}
	md := markdown(res)
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	var parts []string
	for _, v := range res.Targets {
		parts = append(parts, fmt.Sprintf("%s/%s=%.3g", v.Handler, v.Key, v.Ratio))
	}
	met := 0
	for _, v := range res.Targets {
		if v.Met {
			met++
		}
	}
	fmt.Printf("bench: ratios to runc (PODS=%d), %d of %d targets met: %s\n", res.Pods, met, len(res.Targets), strings.Join(parts, " "))
	return nil
}

func markdown(res *results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Benchmark of %s, %d live pods per handler; %s.\n\n", res.Date, res.Pods, res.Machine)
	fmt.Fprintf(&b, "Versions: %s.\n\n", versionsLine(res.Versions))
	b.WriteString("| measure | runc + pause image | pause | pause-dense | pause/runc | target | pause-dense/runc | target |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	q := func(x quantiles) string {
		if x == (quantiles{}) {
			return "n/a"
		}
		return fmt.Sprintf("%.1f / %.1f ms", x.P50, x.P99)
	}
	p50 := func(x quantiles) string {
		if x == (quantiles{}) {
			return "—"
		}
		return fmt.Sprintf("%.1f ms", x.P50)
	}
	cells := func(f func(r result) string) []string {
		var c []string
		for _, h := range handlers {
			c = append(c, f(res.Handlers[h]))
		}
		return c
	}
	// row writes a measure with a ratio column (and its goal) per handler
	// other than runc; key "" writes a row without ratios.
	row := func(label, key string, values []string) {
		fmt.Fprintf(&b, "| %s | %s |", label, strings.Join(values, " | "))
		for _, h := range handlers[1:] {
			if key == "" {
				b.WriteString("  |  |")
				continue
			}
			goal := ""
			if v, ok := goalOf(res.Targets, h, key); ok {
				goal = v.String()
			}
			fmt.Fprintf(&b, " %.3f | %s |", res.Ratio[h][key], goal)
		}
		b.WriteString("\n")
	}
	same := func(s string) []string { return []string{s, s, s} }
	// overFloor is how far a p50 is from the floor's: "2.1× (+40.3 ms)".
	overFloor := func(get func(r result) quantiles, floor quantiles) []string {
		return cells(func(r result) string {
			v := get(r)
			if v.P50 == 0 || floor.P50 == 0 {
				return "n/a"
			}
			return fmt.Sprintf("%.2f× (+%.1f ms)", v.P50/floor.P50, v.P50-floor.P50)
		})
	}
	fl := res.Floor

	row("sandbox ready p50 (CNI)", "sandbox_ready_p50", cells(func(r result) string { return q(r.SandboxReadyMs) }))
	row("sandbox ready p99 (CNI)", "sandbox_ready_p99", cells(func(r result) string { return q(r.SandboxReadyMs) }))
	row("· floor: netns + CNI ADD alone (same run)", "", same(q(fl.SetupMs)))
	row("· sandbox ready p50 over the floor's", "", overFloor(func(r result) quantiles { return r.SandboxReadyMs }, fl.SetupMs))
	row("· CNI inside CRI, p50 (containerd's log)", "", cells(func(r result) string { return p50(r.Parts.CNIMs) }))
	row("· after CNI to the answer, p50 (containerd's log)", "", cells(func(r result) string { return p50(r.Parts.AfterCNIMs) }))
	row("· shim's CreateSandbox + StartSandbox, p50 (containerd's log)", "", cells(func(r result) string { return p50(r.Parts.ShimCallsMs) }))
	row("sandbox ready p50 (host network)", "sandbox_ready_hostnet_p50", cells(func(r result) string { return q(r.SandboxReadyHostMs) }))
	row("pod ready p50 (sandbox + 1 container)", "pod_ready_p50", cells(func(r result) string { return q(r.PodReadyMs) }))
	row("teardown p50 (stop + remove)", "teardown_p50", cells(func(r result) string { return q(r.TeardownMs) }))
	row("· floor: CNI DEL + netns removal alone (same run)", "", same(q(fl.TeardownMs)))
	row("· teardown p50 over the floor's", "", overFloor(func(r result) quantiles { return r.TeardownMs }, fl.TeardownMs))
	row("PSS per pod (shims + pause)", "pss_per_pod", cells(func(r result) string { return fmt.Sprintf("%.0f kB", r.PSSPerPodKB) }))
	row("pause PSS", "pause_pss", cells(func(r result) string { return fmt.Sprintf("%.0f kB", r.PausePSSKB) }))
	row(fmt.Sprintf("shim processes for the %d pods", res.Pods), "", cells(func(r result) string { return fmt.Sprint(r.Shims) }))
	row("threads per shim", "threads_per_shim", cells(func(r result) string { return fmt.Sprintf("%.1f", r.ThreadsPerShim) }))
	row("pods per second, 8 clients (higher is better)", "pods_per_s", cells(func(r result) string { return fmt.Sprintf("%.1f", r.PodsPerS) }))
	row("p99 sandbox ready with 10 → N live pods (20 probes each), growth; ratio: growth over runc's", "p99_growth_vs_runc",
		cells(func(r result) string {
			if r.P99Growth == 0 {
				return "n/a (N ≤ 10)"
			}
			return fmt.Sprintf("%.1f → %.1f ms, ×%.2f", r.SandboxReadyAt10Ms.P99, r.SandboxReadyAtNMs.P99, r.P99Growth)
		}))

	fmt.Fprintf(&b, `
Latencies are p50 / p99, measured by the client around CRI's calls. Handlers
and the floor alternate round by round.

- **Floor**: the pod network alone, %d times in the same run, taking a turn
  in each round of pod starts and teardowns: a network namespace made as CRI
  makes it (containerd's netns package) and CRI's CNI configuration run
  through go-cni as CRI runs it (its loopback network and the bridge
  conflist, same plugins, bridge and IPAM store). No handler starts a pod
  with a network faster than this; the "over the floor's" rows are how far
  each is from it.
- **Parts from containerd's log** (debug level, per timed pod; the shim's
  lines are relayed with its own timestamps): CNI inside CRI is "begin cni
  setup" to "cni result"; after CNI runs to "RunPodSandbox … returns" (CRI's
  records, the shim's bootstrap, and its sandbox calls, or runc's pause
  container); the shim's CreateSandbox + StartSandbox runs from containerd's
  "connecting to shim" to the shim's "sandbox started" (the pause task's
  start included, the bootstrap's process start not). The shim's own share
  lies between that row and the "after CNI" row.
- **PSS** is read from /proc/PID/smaps_rollup: each pod's pause process
  (pid from CRI's verbose status) and the shim process serving it (its
  nearest ancestor running the handler's shim binary), each shim counted
  once however many pods it serves, over the number of pods.
`, fl.Cycles)
	b.WriteString(execMarkdown(res.Exec))
	return b.String()
}

func versionsLine(v map[string]string) string {
	var parts []string
	for _, k := range []string{"containerd", "runc", "shim", "go"} {
		if v[k] != "" {
			parts = append(parts, k+" "+v[k])
		}
	}
	return strings.Join(parts, "; ")
}
