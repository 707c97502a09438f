//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/installer"
)

// criHandlers are the handlers CRI lists, each with its runtime type.
func criHandlers(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	rt := testCRI(t)
	st, err := rt.Status(ctx, &cri.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	handlers, err := installer.ParseStatus(st)
	if err != nil {
		t.Fatal(err)
	}
	return handlers
}

// classPod is an idle pod on RuntimeClass handler.
func classPod(name, handler string) *corev1.Pod {
	pod := newPod(name, handler, sh("app", idle))
	pod.Spec.RuntimeClassName = ptr(handler)
	return pod
}

// shimVersion is what `binary -v` says its version is.
func shimVersion(t *testing.T, binary string) string {
	t.Helper()
	out, err := exec.Command(binary, "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -v: %v: %s", binary, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Version:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s -v names no version: %s", binary, out)
	return ""
}

// podShimVersion is the version of the shim binary that runs the pause
// task pid, its parent: the binary the process started from, even once
// replaced on disk.
func podShimVersion(t *testing.T, pid int) string {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return shimVersion(t, "/proc/"+fields[1]+"/exe")
}

// installLeftovers names, as leaks, what the installer puts on the node and
// the test's uninstall did not take away, and removes it.
func installLeftovers() []string {
	var leaks []string
	for _, f := range []string{installedShim, dropIn} {
		if _, err := os.Stat(f); err == nil {
			leaks = append(leaks, "installer file "+f)
			os.Remove(f)
		}
	}
	_ = os.Remove(filepath.Dir(dropIn))
	return leaks
}

// installedShimProcesses names, as leaks, the installed shim's processes
// left once the cluster is stopped.
func installedShimProcesses() []string {
	var leaks []string
	// The installed shim's processes, of any version (a replaced binary's
	// reads "(deleted)").
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if exe, err := os.Readlink(p + "/exe"); err == nil && strings.HasPrefix(exe, installedShim) {
			leaks = append(leaks, fmt.Sprintf("installed shim process %s (%s)", filepath.Base(p), exe))
		}
	}
	return leaks
}
