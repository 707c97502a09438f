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
	if len(shims) == 0 {
		return usage{}, fmt.Errorf("%s: no shim process", handler)
	}
	var u usage
	var pauses int
	for pid := range shims {
		u.pssPerPod += pss(pid)
		u.threads += float64(statusInt(pid, "Threads"))
	}
	for pid, ppid := range parent {
		if shims[ppid] && comm[pid] == "pause" {
			p := pss(pid)
			u.pssPerPod += p
			u.pausePSS += p
			pauses++
		}
	}
	if pauses != len(shims) {
		return usage{}, fmt.Errorf("%s: %d shims but %d pause processes", handler, len(shims), pauses)
	}
	n := float64(len(shims))
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
