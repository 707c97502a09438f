package testenv

import (
	"bufio"
	"context"
	"encoding/json"
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
func (env *Env) findLeaks() []string {
	var leaks []string
	ctx := namespaces.WithNamespace(context.Background(), env.Namespace)
	if sbs, err := env.Client.SandboxStore().List(ctx); err == nil {
		for _, sb := range sbs {
			leaks = append(leaks, "sandbox "+sb.ID)
		}
	}
	if resp, err := env.Client.TaskService().List(ctx, nil); err == nil {
		for _, t := range resp.Tasks {
			leaks = append(leaks, "task "+t.ID)
		}
	}
	leaks = append(leaks, dirEntries(filepath.Join(env.Dir, "state", "io.containerd.runtime.v2.task", env.Namespace), "bundle")...)
	leaks = append(leaks, dirEntries(filepath.Join(env.Dir, "s"), "shim socket")...)
	return leaks
}

// recordCopyDir holds the shims' copies of their pods' records (package
// pod's orphanDir): each names its bundle.
const recordCopyDir = "/run/containerd-shim-pause-v2/pods"

// recordCopies names, as leaks, the pod record copies of this containerd's
// bundles: `shim delete` (or the sweep of a later one) removes each.
func (env *Env) recordCopies() []string {
	var leaks []string
	files, _ := filepath.Glob(filepath.Join(recordCopyDir, "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var copy struct{ Bundle string }
		if json.Unmarshal(data, &copy) == nil && strings.HasPrefix(copy.Bundle, env.Dir+"/") {
			leaks = append(leaks, "pod record copy "+f+" of "+copy.Bundle)
		}
	}
	return leaks
}

// awaitShimExits gives the shims a moment to exit: a shim exits a moment
// after answering ShutdownSandbox, and removes the last of its sockets
// (pkg/shim's) as it does. A shim that stays is a leak of its own.
func (env *Env) awaitShimExits() {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && env.ShimProcesses() > 0; {
		time.Sleep(50 * time.Millisecond)
	}
}

// findHostLeaks looks on the host, once containerd is gone, for the shim's
// processes, pause tasks, runc containers, mounts and cgroups.
func (env *Env) findHostLeaks() []string {
	var leaks []string
	env.awaitShimExits()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if exe, err := os.Readlink(p + "/exe"); err == nil && exe == env.Shim {
			leaks = append(leaks, fmt.Sprintf("shim process %d", pid))
		}
		if isPauseTask(pid) && env.ownsOrOrphaned(pid) {
			leaks = append(leaks, fmt.Sprintf("pause task %d", pid))
		}
	}
	leaks = append(leaks, dirEntries(filepath.Join("/run/containerd/runc", env.Namespace), "runc container")...)
	leaks = append(leaks, env.recordCopies()...)
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if strings.Contains(s.Text(), env.Dir) {
				leaks = append(leaks, "mount "+s.Text())
			}
		}
		f.Close()
	}
	// Every pod cgroup of the suite lives under /<namespace>; containerd
	// made that parent, the suite removes it once it is empty.
	for _, root := range CgroupRoots() {
		nsDir := filepath.Join(root, env.Namespace)
		leaks = append(leaks, subdirs(nsDir, "cgroup")...)
		_ = os.Remove(nsDir)
	}
	return leaks
}

// ownsOrOrphaned tells whether a pause task is this suite's: its parent is
// the shim under test, or it has lost its shim (a leak whoever made it).
// Another shim binary's pause tasks (another checkout's tests running on the
// same host) are not this suite's to count.
func (env *Env) ownsOrOrphaned(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 2 {
		return false
	}
	parent, err := os.Readlink("/proc/" + f[1] + "/exe")
	return err != nil || parent == env.Shim || f[1] == "1"
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

// CgroupRoots are the hierarchies a pod cgroup appears in: the unified one,
// or every v1 hierarchy (and, on hybrid hosts, the unified one beside them).
func CgroupRoots() []string {
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

// Leaks stops containerd and lists everything the run left: pods and tasks
// containerd still knows, bundles, sockets, shim and pause processes, runc
// containers, mounts, cgroups, network namespaces and the CNI bridge.
func (env *Env) Leaks() []string {
	var leaks []string
	env.awaitShimExits() // before their sockets are listed
	if env.Client != nil {
		leaks = env.findLeaks()
	}
	env.Stop()
	if !env.sharedHost {
		leaks = append(leaks, newEntries(env.netnsBefore, netnsEntries(), "netns")...)
	}
	leaks = append(leaks, env.removeBridge()...)
	leaks = append(leaks, env.findHostLeaks()...)
	return append(leaks, systemdLeaks()...)
}

// Residue lists what Leaks would, but leaves containerd running: for a
// test that checks after each of its cases on one containerd.
func (env *Env) Residue() []string {
	env.awaitShimExits() // before their sockets are listed
	leaks := env.findLeaks()
	if !env.sharedHost {
		leaks = append(leaks, newEntries(env.netnsBefore, netnsEntries(), "netns")...)
	}
	leaks = append(leaks, env.findHostLeaks()...)
	if SystemdDriver() {
		leaks = append(leaks, LoadedUnits("cri-containerd-*", "pause-*.slice", "pauseit-*-pod*")...)
	}
	return leaks
}
