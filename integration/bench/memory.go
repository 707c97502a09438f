package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// usage is a handler's memory at one moment: PSS of its shims and their
// pause processes, per pod (one shim per pod for both handlers).
type usage struct {
	pssPerPod float64 // kB, shim + pause
	pausePSS  float64 // kB, pause alone
	threads   float64 // per shim
}

func memory(env *testenv.Env, handler string) (usage, error) {
	shimExe := env.Shim
	if handler == stock {
		p, err := exec.LookPath("containerd-shim-runc-v2")
		if err != nil {
			return usage{}, err
		}
		if shimExe, err = filepath.EvalSymlinks(p); err != nil {
			return usage{}, err
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	shims := map[int]bool{}
	parent := map[int]int{}
	comm := map[int]string{}
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if exe, err := os.Readlink(p + "/exe"); err == nil && exe == shimExe {
			shims[pid] = true
		}
		if c, err := os.ReadFile(p + "/comm"); err == nil {
			comm[pid] = strings.TrimSpace(string(c))
		}
		parent[pid] = statusInt(pid, "PPid")
	}
	// A pod is a shim with its pause child; a shim without one is a pod's
	// shim still exiting from an earlier teardown.
	pauseOf := map[int]int{}
	for pid, ppid := range parent {
		if shims[ppid] && comm[pid] == "pause" {
			pauseOf[ppid] = pid
		}
	}
	if len(pauseOf) == 0 {
		return usage{}, fmt.Errorf("%s: no pod (shim with a pause process)", handler)
	}
	var u usage
	for shimPid, pausePid := range pauseOf {
		p := pss(pausePid)
		u.pssPerPod += pss(shimPid) + p
		u.pausePSS += p
		u.threads += float64(statusInt(shimPid, "Threads"))
	}
	n := float64(len(pauseOf))
	return usage{pssPerPod: u.pssPerPod / n, pausePSS: u.pausePSS / n, threads: u.threads / n}, nil
}

// pss is a process's proportional set size in kB.
func pss(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			f, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
			return f
		}
	}
	return 0
}

func statusInt(pid int, field string) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
