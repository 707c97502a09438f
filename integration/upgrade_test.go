package integration

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// TestDenseUpgradeStartsNewShim: an upgrade renames a new shim binary over
// the installed one (the node installer does). A pause-dense pod made
// after it starts on a shim of the new binary, not on the running shared
// shim of the old one, which keeps serving its pod until that ends; each
// shim exits with its last pod.
func TestDenseUpgradeStartsNewShim(t *testing.T) {
	requireEnv(t)
	installed := filepath.Join(t.TempDir(), "containerd-shim-pause-v2")
	install := func() {
		t.Helper()
		next := installed + ".next"
		if err := copyFile(env.Shim, next); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(next, installed); err != nil {
			t.Fatal(err)
		}
	}
	install()
	other := startPrivateEnv(t, "pause-upgrade",
		testenv.WithRuntime(testenv.Runtime{Name: "dense-installed", Binary: installed, Options: "PodsPerShim = 0"}))
	conn, rt := dialCRI(t, other.Address)
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	before := runCRIPod(t, ctx, rt, podConfig(t, "before-upgrade", false), "dense-installed")
	beforeCtr := before.start(t, ctx, "c", "/bin/sleep", "100000")
	oldShim := before.shimOf(t, ctx)
	install()
	after := runCRIPod(t, ctx, rt, podConfig(t, "after-upgrade", false), "dense-installed")
	after.start(t, ctx, "c", "/bin/sleep", "100000")
	newShim := after.shimOf(t, ctx)
	if newShim == oldShim {
		t.Fatalf("the pod made after the upgrade joined the old binary's shim %d", oldShim)
	}
	for pid, want := range map[int]string{oldShim: installed + " (deleted)", newShim: installed} {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != want {
			t.Errorf("shim %d runs %q (%v), want %q", pid, exe, err, want)
		}
	}
	if out := execSync(t, ctx, rt, beforeCtr, "echo", "served"); out != "served" {
		t.Errorf("the pod on the old shim after the upgrade: exec %q", out)
	}
	for _, p := range []*criPod{before, after} {
		ps, err := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: p.id})
		if err != nil || ps.Status.State != cri.PodSandboxState_SANDBOX_READY {
			t.Errorf("pod %s: %v %v", p.id, ps.GetStatus().GetState(), err)
		}
	}
	removePod(t, ctx, rt, before.id)
	waitGone(t, oldShim, "the old binary's shim after its last pod")
	removePod(t, ctx, rt, after.id)
	waitGone(t, newShim, "the new binary's shim after its last pod")
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
