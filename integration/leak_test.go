package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// findLeaks lists what containerd still knows of the suite's pods and tasks,
// and what is left in its state: bundles and shim sockets.
func findLeaks() []string {
	var leaks []string
	ctx := namespaces.WithNamespace(context.Background(), env.namespace)
	if sbs, err := env.client.SandboxStore().List(ctx); err == nil {
		for _, sb := range sbs {
			leaks = append(leaks, "sandbox "+sb.ID)
		}
	}
	if resp, err := env.client.TaskService().List(ctx, nil); err == nil {
		for _, t := range resp.Tasks {
			leaks = append(leaks, "task "+t.ID)
		}
	}
	leaks = append(leaks, dirEntries(filepath.Join(env.dir, "state", "io.containerd.runtime.v2.task", env.namespace), "bundle")...)
	leaks = append(leaks, dirEntries(filepath.Join(env.dir, "s"), "shim socket")...)
	return leaks
}

// findHostLeaks looks on the host, once containerd is gone, for the shim's
// processes, pause tasks, runc containers, mounts and cgroups.
func findHostLeaks() []string {
	var leaks []string
	// A shim exits a moment after answering ShutdownSandbox.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && shimProcesses() > 0; {
		time.Sleep(50 * time.Millisecond)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if exe, err := os.Readlink(p + "/exe"); err == nil && exe == env.shim {
			leaks = append(leaks, fmt.Sprintf("shim process %d", pid))
		}
		if isPauseTask(pid) {
			leaks = append(leaks, fmt.Sprintf("pause task %d", pid))
		}
	}
	leaks = append(leaks, dirEntries(filepath.Join("/run/containerd/runc", env.namespace), "runc container")...)
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if strings.Contains(s.Text(), env.dir) {
				leaks = append(leaks, "mount "+s.Text())
			}
		}
		f.Close()
	}
	// Every pod cgroup of the suite lives under /<namespace>; containerd
	// made that parent, the suite removes it once it is empty.
	for _, root := range cgroupRoots() {
		nsDir := filepath.Join(root, env.namespace)
		leaks = append(leaks, subdirs(nsDir, "cgroup")...)
		_ = os.Remove(nsDir)
	}
	return leaks
}

// isPauseTask tells a pause task by its name and the uid it drops to.
func isPauseTask(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "pause" {
		return false
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.Contains(string(cmdline), "-u\x0065535")
}

// cgroupRoots are the hierarchies a pod cgroup appears in: the unified one,
// or every v1 hierarchy (and, on hybrid hosts, the unified one beside them).
func cgroupRoots() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"}
	}
	var roots []string
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range entries {
		if e.IsDir() {
			roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	return roots
}

func dirEntries(dir, what string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		out = append(out, what+" "+filepath.Join(dir, e.Name()))
	}
	return out
}

func subdirs(dir, what string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, what+" "+filepath.Join(dir, e.Name()))
		}
	}
	return out
}
