package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// usage is a handler's memory at one moment, per pod: the shim processes
// serving its pods, each counted once however many pods it serves, and the
// pods' pause processes (pause containers for runc), over the pods.
type usage struct {
	pssPerPod float64 // kB, shims + pause processes, per pod
	pausePSS  float64 // kB, pause process alone, per pod
	threads   float64 // per shim process
	shims     int     // distinct shim processes serving the pods
	pods      int
}

// podProcs is one pod's pause process and the shim process serving it.
type podProcs struct{ pause, shim int }

// account sums what pods cost: the PSS of each distinct shim once and of
// every pause process, over the number of pods.
func account(pods []podProcs, pss func(pid int) float64, threads func(pid int) int) usage {
	if len(pods) == 0 {
		return usage{}
	}
	var u usage
	shims := map[int]bool{}
	for _, p := range pods {
		pause := pss(p.pause)
		u.pssPerPod += pause
		u.pausePSS += pause
		if !shims[p.shim] {
			shims[p.shim] = true
			u.pssPerPod += pss(p.shim)
			u.threads += float64(threads(p.shim))
		}
	}
	n := float64(len(pods))
	return usage{
		pssPerPod: u.pssPerPod / n,
		pausePSS:  u.pausePSS / n,
		threads:   u.threads / float64(len(shims)),
		shims:     len(shims),
		pods:      len(pods),
	}
}

// memory measures a handler's live pods. Each pod's pause pid comes from
// CRI (the verbose status, as crictl inspectp shows it), and its shim is
// the nearest ancestor of the pause process running the handler's shim
// binary: the shim forks the pause task (runc's shim is the subreaper of
// its pause container), so pods sharing a shim name the same pid.
func (b *bench) memory(ctx context.Context, handler string) (usage, error) {
	exe, err := shimBinary(b.env.Shim, handler)
	if err != nil {
		return usage{}, err
	}
	var procs []podProcs
	for _, p := range b.liveOf(handler) {
		pause, err := b.pausePid(ctx, p.id)
		if err != nil {
			return usage{}, fmt.Errorf("%s: pod %s: %w", handler, p.id, err)
		}
		shim, err := servingShim(pause, exe)
		if err != nil {
			return usage{}, fmt.Errorf("%s: pod %s: %w", handler, p.id, err)
		}
		procs = append(procs, podProcs{pause: pause, shim: shim})
	}
	if len(procs) == 0 {
		return usage{}, fmt.Errorf("%s: no live pod to measure", handler)
	}
	return account(procs, pss, func(pid int) int { return statusInt(pid, "Threads") }), nil
}

// shimBinary is the executable of a handler's shims, as /proc/PID/exe
// names it.
func shimBinary(ours, handler string) (string, error) {
	if handler != stock {
		return ours, nil
	}
	p, err := exec.LookPath("containerd-shim-runc-v2")
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(p)
}

// pausePid is the pid CRI reports for a pod's sandbox: the pause task, or
// runc's pause container.
func (b *bench) pausePid(ctx context.Context, id string) (int, error) {
	st, err := b.rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		return 0, err
	}
	return infoPid(st.GetInfo()["info"])
}

// infoPid reads "pid" from the JSON of a verbose sandbox status's "info"
// entry (CRI's SandboxInfo in podsandbox mode, the shim's own in shim mode).
func infoPid(info string) (int, error) {
	var v struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(info), &v); err != nil {
		return 0, fmt.Errorf("sandbox status info: %w", err)
	}
	if v.Pid <= 0 {
		return 0, fmt.Errorf("sandbox status info has no pid")
	}
	return v.Pid, nil
}

// servingShim walks up from a pause process to the first ancestor running
// exe (the pause task itself, or a waiting parent in a user namespace,
// sits below the shim).
func servingShim(pid int, exe string) (int, error) {
	for p, hops := pid, 0; p > 1 && hops < 4; hops++ {
		p = statusInt(p, "PPid")
		if e, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); err == nil && e == exe {
			return p, nil
		}
	}
	return 0, fmt.Errorf("pause process %d has no ancestor running %s", pid, exe)
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
