package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestInstallAndUninstall: `make install` puts the shim and a containerd
// drop-in under PREFIX and CONTAINERD_CONFDIR; a containerd that imports
// only that drop-in runs a CRI pod on handler pause; `make uninstall`
// removes every installed file.
func TestInstallAndUninstall(t *testing.T) {
	requireEnv(t)
	root := t.TempDir()
	prefix, confdir := filepath.Join(root, "usr"), filepath.Join(root, "etc", "containerd", "conf.d")
	make := func(target string) {
		cmd := exec.Command("make", "-C", env.Repo, target, "PREFIX="+prefix, "CONTAINERD_CONFDIR="+confdir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v: %s", target, err, out)
		}
	}
	make("install")
	shim := filepath.Join(prefix, "bin", "containerd-shim-pause-v2")
	for _, f := range []string{shim, filepath.Join(confdir, "pause.toml")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("not installed: %v", err)
		}
	}

	// A second private containerd that knows the pause runtime only from
	// the installed drop-in, which names the installed shim by its path.
	other := startContainerdWithDropIns(t, "pause-install", filepath.Join(confdir, "*.toml"))
	conn, rt := dialCRI(t, other.Address)
	defer conn.Close()
	ctx := context.Background()
	config := podConfig(t, "installed", true)
	resp, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: config, RuntimeHandler: "pause"})
	if err != nil {
		t.Fatalf("pod on the installed runtime: %v", err)
	}
	st, err := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: resp.PodSandboxId, Verbose: true})
	if err == nil {
		pid := 0
		fmt.Sscan(st.Info["pause_pid"], &pid)
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", parentOf(t, pid))); exe != shim {
			t.Errorf("the pod's shim is %s, want the installed %s", exe, shim)
		}
	}
	if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
		t.Error(err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
		t.Error(err)
	}

	make("uninstall")
	var left []string
	filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			left = append(left, path)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("make uninstall left %v", left)
	}
}

// TestInstallerImage: `make image` writes an OCI archive that ctr imports,
// and the shim in it is the one built (it runs with no shell or library in
// the image and reports the same version).
func TestInstallerImage(t *testing.T) {
	requireEnv(t)
	out := t.TempDir()
	const image = "localhost/containerd-shim-pause-v2-installer:test"
	cmd := exec.Command("make", "-C", env.Repo, "image", "OUTPUT="+out, "IMAGE="+image)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v: %s", err, msg)
	}
	if msg, err := ctr(t, "images", "import", filepath.Join(out, "installer-image.tar")); err != nil {
		t.Fatalf("ctr images import: %v: %s", err, msg)
	}
	defer ctr(t, "images", "rm", "--sync", image)
	got, err := ctr(t, "run", "--rm", "--runtime", runtimeName, image, "installer-run", "/containerd-shim-pause-v2", "-v")
	if err != nil {
		t.Fatalf("the image's shim -v: %v: %s", err, got)
	}
	want, err := exec.Command(filepath.Join(env.Repo, "bin", "containerd-shim-pause-v2"), "-v").CombinedOutput()
	if err != nil || !strings.Contains(string(want), "Version") || strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
		t.Errorf("the image's shim -v:\n%s\nthe built one's (%v):\n%s", got, err, want)
	}
}

// startContainerdWithDropIns starts a second private containerd that
// imports dropIns, which the test ends with a check that it left nothing.
func startContainerdWithDropIns(t *testing.T, name, dropIns string) *testenv.Env {
	t.Helper()
	other, err := testenv.Start(env.Repo, env.Shim, fmt.Sprintf("%s-%d", name, os.Getpid()), testenv.WithDropIn(dropIns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if leaks := other.Leaks(); len(leaks) > 0 {
			t.Errorf("left behind:\n  %s", strings.Join(leaks, "\n  "))
		}
		os.RemoveAll(other.Dir)
	})
	return other
}
