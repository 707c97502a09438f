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

// targets are the goals for each ratio (pause/runc; lower is
// better but for pods_per_s).
var targets = []struct {
	key, label, goal string
	ok               func(float64) bool
}{
	{"sandbox_ready_p50", "sandbox ready p50 (CNI)", "≤ 0.30", func(r float64) bool { return r <= 0.30 }},
	{"sandbox_ready_p99", "sandbox ready p99 (CNI)", "≤ 0.50", func(r float64) bool { return r <= 0.50 }},
	{"sandbox_ready_hostnet_p50", "sandbox ready p50 (host network)", "", nil},
	{"pod_ready_p50", "pod ready p50 (sandbox + 1 container)", "≤ 0.70", func(r float64) bool { return r <= 0.70 }},
	{"teardown_p50", "teardown p50 (stop + remove)", "≤ 0.50", func(r float64) bool { return r <= 0.50 }},
	{"pss_per_pod", "PSS per pod (shim + pause)", "≤ 0.50", func(r float64) bool { return r <= 0.50 }},
	{"pause_pss", "pause PSS", "≤ 0.25", func(r float64) bool { return r <= 0.25 }},
	{"threads_per_shim", "threads per shim", "", nil},
	{"pods_per_s", "pods per second, 8 clients (higher is better)", "", nil},
	{"p99_growth_10_to_n", "pause: p99 sandbox ready with N / with 10 live pods (20 probes each)", "≤ 1.5", func(r float64) bool { return r <= 1.5 }},
}

func report(res *results, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, "results.json"), res); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(markdown(res)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "chart.svg"), []byte(chart(res)), 0o644); err != nil {
		return err
	}
	fmt.Print(markdown(res))
	var parts []string
	for _, t := range targets {
		parts = append(parts, fmt.Sprintf("%s=%.3g", t.key, res.Ratio[t.key]))
	}
	fmt.Printf("bench: pause/runc ratios (PODS=%d): %s\n", res.Pods, strings.Join(parts, " "))
	return nil
}

func markdown(res *results) string {
	var b strings.Builder
	s, p := res.Handlers[stock], res.Handlers[ours]
	fmt.Fprintf(&b, "Benchmark of %s, %d live pods per handler; %s.\n\n", res.Date, res.Pods, res.Machine)
	fmt.Fprintf(&b, "Versions: %s.\n\n", versionsLine(res.Versions))
	b.WriteString("| measure | runc + pause image | pause shim | ratio | target |\n| --- | --- | --- | --- | --- |\n")
	q := func(x quantiles) string { return fmt.Sprintf("%.1f / %.1f ms", x.P50, x.P99) }
	rows := map[string][2]string{
		"sandbox_ready_p50":         {q(s.SandboxReadyMs), q(p.SandboxReadyMs)},
		"sandbox_ready_p99":         {q(s.SandboxReadyMs), q(p.SandboxReadyMs)},
		"sandbox_ready_hostnet_p50": {q(s.SandboxReadyHostMs), q(p.SandboxReadyHostMs)},
		"pod_ready_p50":             {q(s.PodReadyMs), q(p.PodReadyMs)},
		"teardown_p50":              {q(s.TeardownMs), q(p.TeardownMs)},
		"pss_per_pod":               {fmt.Sprintf("%.0f kB", s.PSSPerPodKB), fmt.Sprintf("%.0f kB", p.PSSPerPodKB)},
		"pause_pss":                 {fmt.Sprintf("%.0f kB", s.PausePSSKB), fmt.Sprintf("%.0f kB", p.PausePSSKB)},
		"threads_per_shim":          {fmt.Sprintf("%.1f", s.ThreadsPerShim), fmt.Sprintf("%.1f", p.ThreadsPerShim)},
		"pods_per_s":                {fmt.Sprintf("%.1f", s.PodsPerS), fmt.Sprintf("%.1f", p.PodsPerS)},
		"p99_growth_10_to_n":        {q(s.SandboxReadyAt10Ms) + " → " + q(s.SandboxReadyAtNMs), q(p.SandboxReadyAt10Ms) + " → " + q(p.SandboxReadyAtNMs)},
	}
	for _, t := range targets {
		goal := t.goal
		if t.ok != nil {
			if t.ok(res.Ratio[t.key]) {
				goal += " ✓"
			} else {
				goal += " ✗"
			}
		}
		r := rows[t.key]
		fmt.Fprintf(&b, "| %s | %s | %s | %.3f | %s |\n", t.label, r[0], r[1], res.Ratio[t.key], goal)
	}
	b.WriteString("\nLatencies are p50 / p99. PSS is read from /proc/PID/smaps_rollup of each pod's pause process (pid from CRI's verbose status) and of the shim serving it (its nearest ancestor running the shim binary), each shim once however many pods it serves.\n")
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

// chart draws the sandbox-ready latency distributions (as CDFs) and the PSS
// per pod against live pods, for both handlers.
func chart(res *results) string {
	const w, h, pad = 420.0, 260.0, 40.0
	colors := map[string]string{stock: "#c0392b", ours: "#2471a3"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`, int(2*w), int(h))
	panel := func(x0 float64, title, xlabel, ylabel string, series map[string][][2]float64) {
		var xmax, ymax float64
		for _, pts := range series {
			for _, pt := range pts {
				xmax, ymax = math.Max(xmax, pt[0]), math.Max(ymax, pt[1])
			}
		}
		if xmax == 0 || ymax == 0 {
			return
		}
		px := func(x float64) float64 { return x0 + pad + x/xmax*(w-2*pad) }
		py := func(y float64) float64 { return h - pad - y/ymax*(h-2*pad) }
		fmt.Fprintf(&b, `<text x="%.0f" y="16" font-weight="bold">%s</text>`, x0+pad, title)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`, px(0), py(0), px(xmax), py(0))
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`, px(0), py(0), px(0), py(ymax))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%s (max %.4g)</text>`, px(0), h-8, xlabel, xmax)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%s (max %.4g)</text>`, x0+4, pad-10, ylabel, ymax)
		ly := 34.0
		for _, handler := range []string{stock, ours} {
			var pts []string
			for _, pt := range series[handler] {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(pt[0]), py(pt[1])))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, colors[handler], strings.Join(pts, " "))
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="%s">%s</text>`, x0+w-pad-110, ly, colors[handler], handler)
			ly += 14
		}
	}
	cdf := map[string][][2]float64{}
	for _, handler := range []string{stock, ours} {
		s := slices.Clone(res.Samples[handler]["sandbox_ready"])
		slices.Sort(s)
		for i, v := range s {
			cdf[handler] = append(cdf[handler], [2]float64{v, float64(i+1) / float64(len(s))})
		}
	}
	panel(0, "sandbox ready latency (CDF)", "ms", "fraction", cdf)
	panel(w, "PSS per pod, shim + pause", "live pods", "kB", res.Memory)
	b.WriteString("</svg>\n")
	return b.String()
}
