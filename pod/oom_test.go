package pod

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// oomPod is a pod whose cgroup's memory.events is a file of the test's,
// with kills counted so far.
func oomPod(t *testing.T, kills uint64) (*Pod, func(uint64)) {
	t.Helper()
	root := t.TempDir()
	cgroup := filepath.Join(root, "kubepods", "podx")
	if err := os.MkdirAll(cgroup, 0o700); err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(cgroup, "memory.events")
	set := func(n uint64) {
		data := fmt.Sprintf("low 0\nhigh 0\nmax 7\noom %d\noom_kill %d\noom_group_kill 0\n", n, n)
		if err := os.WriteFile(events, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set(kills)
	saved := unifiedMountpoint
	unifiedMountpoint = func() string { return root }
	t.Cleanup(func() { unifiedMountpoint = saved })
	p := &Pod{id: "sb"}
	p.rec.PodCgroup = "/kubepods/podx"
	p.countOOMBaseline() // the first container's admission
	return p, set
}

func TestMissedOOM(t *testing.T) {
	// The pod's cgroup already counted 2 kills (an earlier sandbox of the
	// same pod): not this pod's containers'.
	p, kills := oomPod(t, 2)
	if p.MissedOOM("a") {
		t.Error("a SIGKILLed container claimed a kill counted before the pod's first container")
	}
	// A kill no TaskOOM reported: the first SIGKILLed member takes it, once.
	kills(3)
	if !p.MissedOOM("a") {
		t.Error("a container killed with no TaskOOM while the pod counted a new kill: not found")
	}
	if p.MissedOOM("b") {
		t.Error("one kill claimed twice")
	}
	// A reported kill is its container's, and accounted for.
	p.OOMReported("c")
	kills(4)
	if p.MissedOOM("c") || p.MissedOOM("d") {
		t.Error("a kill TaskOOM reported was claimed again")
	}
	// A member SIGKILLed on request leaves the kill to its victim.
	p.KillRequested("e")
	kills(5)
	if p.MissedOOM("e") {
		t.Error("a container killed on request claimed the OOM killer's kill")
	}
	if !p.MissedOOM("f") {
		t.Error("the OOM killer's victim found no kill left")
	}
	// What the account keeps of a member goes when the member is deleted
	// (a TaskOOM for a child process, then a clean exit: no MissedOOM).
	p.OOMReported("x")
	p.KillRequested("y")
	for _, id := range []string{"c", "e", "x", "y"} {
		p.Forget(id)
	}
	if len(p.oom.noted) != 0 || len(p.oom.killed) != 0 {
		t.Errorf("deleted members kept in the OOM account: %v %v", p.oom.noted, p.oom.killed)
	}
}

func TestMissedOOMWithoutCgroupV2(t *testing.T) {
	p, kills := oomPod(t, 0)
	unifiedMountpoint = func() string { return "" } // cgroup v1
	kills(1)
	if p.MissedOOM("a") {
		t.Error("cgroup v1: a kill claimed from counters that do not add up the pod's")
	}
	p, kills = oomPod(t, 0)
	p.rec.PodCgroup = "" // no cgroup of its own
	kills(1)
	if p.MissedOOM("a") {
		t.Error("a pod without a cgroup claimed a kill")
	}
}
