package main

import (
	"slices"
	"strings"
	"testing"
)

func TestRotate(t *testing.T) {
	s := []string{"a", "b", "c", "d"}
	first := map[string]int{}
	for i := range 8 {
		r := rotate(s, i)
		if len(r) != 4 || !slices.Contains(r, "a") || !slices.Contains(r, "d") {
			t.Fatalf("rotate(%d) = %v", i, r)
		}
		first[r[0]]++
	}
	for _, x := range s {
		if first[x] != 2 {
			t.Errorf("%s went first %d times in 8 rounds, want 2", x, first[x])
		}
	}
	if !slices.Equal(s, []string{"a", "b", "c", "d"}) {
		t.Errorf("rotate changed its input: %v", s)
	}
}

func TestRatiosAndTargets(t *testing.T) {
	h := map[string]result{
		stock: {SandboxReadyMs: quantiles{100, 200}, PodReadyMs: quantiles{200, 300}, TeardownMs: quantiles{100, 150},
			PSSPerPodKB: 5000, P99Growth: 1.6},
		ours: {SandboxReadyMs: quantiles{40, 110}, PodReadyMs: quantiles{150, 250}, TeardownMs: quantiles{60, 90},
			PSSPerPodKB: 4900, P99Growth: 1.7},
		dense: {SandboxReadyMs: quantiles{30, 80}, PodReadyMs: quantiles{120, 200}, TeardownMs: quantiles{50, 70},
			PSSPerPodKB: 400, P99Growth: 1.2},
	}
	r := ratios(h)
	if r[ours]["sandbox_ready_p50"] != 0.4 || r[ours]["sandbox_ready_p99"] != 0.55 || r[dense]["pss_per_pod"] != 0.08 {
		t.Errorf("ratios %v", r)
	}
	if r[ours]["p99_growth_vs_runc"] != 1.063 || r[dense]["p99_growth_vs_runc"] != 0.75 {
		t.Errorf("growth over runc's: pause %v, dense %v", r[ours]["p99_growth_vs_runc"], r[dense]["p99_growth_vs_runc"])
	}
	got := map[string]bool{}
	for _, v := range evaluate(r) {
		if !v.Known {
			t.Errorf("%s %s unknown", v.Handler, v.Key)
		}
		got[v.Handler+" "+v.Key] = v.Met
	}
	want := map[string]bool{
		"pause sandbox_ready_p50":        true, // at the target exactly
		"pause sandbox_ready_p99":        true,
		"pause pod_ready_p50":            false, // 0.75 > 0.70
		"pause teardown_p50":             true,
		"pause p99_growth_vs_runc":       false, // grew more than runc
		"pause-dense pss_per_pod":        true,
		"pause-dense sandbox_ready_p50":  true,
		"pause-dense sandbox_ready_p99":  true,
		"pause-dense pod_ready_p50":      true,
		"pause-dense teardown_p50":       true,
		"pause-dense p99_growth_vs_runc": true,
	}
	for k, w := range want {
		if met, ok := got[k]; !ok || met != w {
			t.Errorf("%s: met %v (present %v), want %v", k, met, ok, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d targets, want %d", len(got), len(want))
	}
}

// TestGrowthUnknownWithoutTenPods: a run of 10 pods has no "at 10" probe
// to grow from; its growth target is neither met nor missed.
func TestGrowthUnknownWithoutTenPods(t *testing.T) {
	h := map[string]result{stock: {SandboxReadyMs: quantiles{100, 200}}, ours: {SandboxReadyMs: quantiles{50, 90}}, dense: {}}
	for _, v := range evaluate(ratios(h)) {
		if v.Key == "p99_growth_vs_runc" && (v.Known || v.Met) {
			t.Errorf("%s growth: %+v", v.Handler, v)
		}
		if v.Handler == dense && v.Met {
			t.Errorf("dense measured nothing, yet %s is met", v.Key)
		}
	}
	if s := (verdict{Max: 1}).String(); !strings.Contains(s, "n/a") {
		t.Errorf("unknown verdict reads %q", s)
	}
}

func TestParseLog(t *testing.T) {
	const id = "69a48b7ccaac5789757ad46f6d85b2dd346abae0a804b51c5edcf6e49a21e085"
	const other = "c5271ff17b5a3d83606615d0e048c1ac35bc698a018955da762b9d1c5b11799a"
	log := strings.Join([]string{
		`time="2026-11-25T23:15:51.960539219Z" level=debug msg="generated id for sandbox name \"bench-36_bench_bench-36_0\"" podsandboxid=` + id,
		`time="2026-11-25T23:15:51.964000000Z" level=debug msg="begin cni setup" podsandboxid=` + id,
		`time="2026-11-25T23:15:51.992000000Z" level=debug msg="cni result: {\"Interfaces\":{\"eth0\":{}}}" podsandboxid=` + id,
		`time="2026-11-25T23:15:52.039000000Z" level=info msg="connecting to shim ` + id + `" address="unix:///x/s/6c60" namespace=k8s.io protocol=ttrpc version=3`,
		`time="2026-11-25T23:15:52.043644323Z" level=info msg="sandbox created" cri=true netns=/var/run/netns/cni-1 pod=bench/bench-36 runtime=io.containerd.pause.v2 sandbox=` + id,
		`time="2026-11-25T23:15:52.052000000Z" level=info msg="sandbox started" pid=11872 pod=bench/bench-36 runtime=io.containerd.pause.v2 sandbox=` + id,
		`time="2026-11-25T23:15:52.055000000Z" level=info msg="RunPodSandbox for name:\"bench-36\" uid:\"bench-36\" namespace:\"bench\" returns sandbox id \"` + id + `\""`,
		`time="2026-11-25T23:15:52.099000000Z" level=info msg="connecting to shim ` + other + `" address="unix:///x/s/6c60"`,
		`time="2026-11-25T23:15:53.000000000Z" level=info msg="connecting to shim ` + id + `" address="unix:///x/s/6c60"`,
		`not a log line`,
	}, "\n")
	times, err := parseLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	s := times[id].spans()
	if !s.cniOK || s.cni != 28 || !s.afterCNIOK || s.afterCNI != 63 || !s.shimCallsOK || s.shimCalls != 13 {
		t.Errorf("spans %+v, want cni 28 ms, after CNI 63 ms, shim calls 13 ms", s)
	}
	// A container's connection has no sandbox lines: nothing to measure.
	if s := times[other].spans(); s.cniOK || s.afterCNIOK || s.shimCallsOK {
		t.Errorf("container %s: spans %+v", other, s)
	}
	p := sandboxParts([]string{id, other, "missing"}, times)
	if p.Pods != 1 || p.CNIMs.P50 != 28 || p.ShimCallsMs.P50 != 13 {
		t.Errorf("parts %+v", p)
	}
}
