package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCharts draws every chart from a results.json shaped as the bench
// writes it, and checks each file is there and labelled.
func TestCharts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	spread := func(base float64, n int) []float64 {
		var s []float64
		for range n {
			s = append(s, base*(0.8+0.6*rng.Float64()))
		}
		return s
	}
	r := map[string]any{
		"date": "2026-11-25", "pods": 100,
		"handler_order": []string{"runc", "pause", "pause-dense"},
		"ratio": map[string]map[string]float64{
			"pause":       {"sandbox_ready_p50": 0.57, "sandbox_ready_p99": 0.6, "pod_ready_p50": 0.67, "teardown_p50": 0.72, "pss_per_pod": 0.98, "p99_growth_vs_runc": 1.3},
			"pause-dense": {"sandbox_ready_p50": 0.5, "sandbox_ready_p99": 0.55, "pod_ready_p50": 0.6, "teardown_p50": 0.7, "pss_per_pod": 0.03},
		},
		"targets": []map[string]any{
			{"handler": "pause", "key": "sandbox_ready_p50", "ratio": 0.57, "max": 0.4, "known": true},
			{"handler": "pause-dense", "key": "pss_per_pod", "ratio": 0.03, "max": 0.1, "known": true, "met": true},
			{"handler": "pause-dense", "key": "p99_growth_vs_runc", "ratio": 0, "max": 1},
		},
		"samples": map[string]map[string][]float64{
			"runc":        {"sandbox_ready": spread(100, 100), "pod_ready": spread(180, 100), "teardown": spread(170, 100)},
			"pause":       {"sandbox_ready": spread(60, 100), "pod_ready": spread(120, 100), "teardown": spread(120, 100)},
			"pause-dense": {"sandbox_ready": spread(50, 100), "pod_ready": spread(110, 100), "teardown": spread(110, 100)},
		},
		"floor_samples": map[string][]float64{"sandbox_ready": spread(35, 200), "teardown": spread(20, 200)},
		"memory_by_pods": map[string][][2]float64{
			"runc": {{1, 5400}, {10, 5380}, {100, 5372}}, "pause": {{1, 5300}, {10, 5290}, {100, 5284}},
			"pause-dense": {{1, 5300}, {10, 600}, {100, 120}},
		},
	}
	dir := t.TempDir()
	data, _ := json.Marshal(r)
	if err := os.WriteFile(filepath.Join(dir, "results.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"latency": {"latency (ms)", "fraction of pods", "pause-dense (n=100)", "CNI floor"},
		"memory":  {"live pods per handler", "PSS per pod (kB, log scale)", "5000"},
		"targets": {"ratio to runc", "target (at most)", "pause-dense / runc", "n/a"},
	} {
		svg, err := os.ReadFile(filepath.Join(dir, name+".svg"))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(svg), w) {
				t.Errorf("%s.svg lacks %q", name, w)
			}
		}
		if st, err := os.Stat(filepath.Join(dir, name+".png")); err != nil || st.Size() < 1000 {
			t.Errorf("%s.png: %v", name, err)
		}
	}
	if os.Getenv("CHART_KEEP") != "" {
		for _, n := range []string{"latency", "memory", "targets"} {
			data, _ := os.ReadFile(filepath.Join(dir, n+".png"))
			_ = os.WriteFile(filepath.Join(os.Getenv("CHART_KEEP"), n+".png"), data, 0o644)
		}
	}
}

func TestLinearTicks(t *testing.T) {
	for _, c := range []struct {
		min, max float64
		want     string
	}{
		{0, 1, "0.0 0.2 0.4 0.6 0.8 1.0"},
		{0, 139, "0 20 40 60 80 100 120"},
		{0, 1.45, "0.0 0.2 0.4 0.6 0.8 1.0 1.2 1.4"},
		{0, 260, "0 50 100 150 200 250"},
	} {
		var labels []string
		for _, tk := range linearTicks(c.min, c.max) {
			if tk.Label != "" {
				labels = append(labels, tk.Label)
			}
		}
		if got := strings.Join(labels, " "); got != c.want {
			t.Errorf("linearTicks(%v, %v) labels %s, want %s", c.min, c.max, got, c.want)
		}
	}
}

func TestLogAxis(t *testing.T) {
	lo, hi := logRange(95, 6100)
	if lo != 50 || hi != 10000 {
		t.Errorf("logRange(95, 6100) = %v, %v; want 50, 10000", lo, hi)
	}
	lo, hi = logRange(5200, 5400)
	if lo != 5000 || hi != 10000 {
		t.Errorf("logRange(5200, 5400) = %v, %v; want 5000, 10000", lo, hi)
	}
	var labels []string
	for _, tk := range logTicks(50, 10000) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if got := strings.Join(labels, " "); got != "50 100 200 500 1000 2000 5000 10000" {
		t.Errorf("labelled ticks %s", got)
	}
}
