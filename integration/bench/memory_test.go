package main

import "testing"

// TestAccountCountsASharedShimOnce: pods that share a shim pay for it once
// between them; pods with a shim each pay for their own.
func TestAccountCountsASharedShimOnce(t *testing.T) {
	kb := map[int]float64{100: 6000, 101: 6000, 102: 6000, 1: 8, 2: 8, 3: 8, 4: 8}
	threads := map[int]int{100: 10, 101: 10, 102: 12}
	pss := func(pid int) float64 { return kb[pid] }
	thr := func(pid int) int { return threads[pid] }

	shared := account([]podProcs{{1, 100}, {2, 100}, {3, 100}, {4, 100}}, pss, thr)
	if shared.shims != 1 || shared.pods != 4 {
		t.Fatalf("shared: %d shims for %d pods, want 1 for 4", shared.shims, shared.pods)
	}
	if want := (6000 + 4*8) / 4.0; shared.pssPerPod != want {
		t.Errorf("shared: PSS per pod %v, want %v (the shim once, every pause)", shared.pssPerPod, want)
	}
	if shared.pausePSS != 8 || shared.threads != 10 {
		t.Errorf("shared: pause %v kB, %v threads per shim", shared.pausePSS, shared.threads)
	}

	own := account([]podProcs{{1, 100}, {2, 101}, {3, 102}}, pss, thr)
	if own.shims != 3 || own.pssPerPod != 6008 || own.threads != 32.0/3 {
		t.Errorf("a shim per pod: %+v", own)
	}

	// Two shims of two pods each (PodsPerShim = 2).
	pairs := account([]podProcs{{1, 100}, {2, 100}, {3, 101}, {4, 101}}, pss, thr)
	if pairs.shims != 2 || pairs.pssPerPod != (2*6000+4*8)/4.0 {
		t.Errorf("pairs: %+v", pairs)
	}
	if (account(nil, pss, thr) != usage{}) {
		t.Error("no pods: want zero usage")
	}
}

func TestInfoPid(t *testing.T) {
	for info, want := range map[string]int{
		`{"pid":4242,"processStatus":"running"}`: 4242, // CRI podsandbox (runc)
		`{"pid":17,"config":{}}`:                 17,   // this shim
	} {
		if got, err := infoPid(info); err != nil || got != want {
			t.Errorf("infoPid(%s) = %d, %v; want %d", info, got, err, want)
		}
	}
	for _, bad := range []string{"", "{}", `{"pid":0}`, "not json"} {
		if _, err := infoPid(bad); err == nil {
			t.Errorf("infoPid(%q): want an error", bad)
		}
	}
}
