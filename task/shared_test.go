package task

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sandboxAPI "github.com/containerd/containerd/api/runtime/sandbox/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pool"
)

// sharedService is a shared shim over fakeRunc whose pool holds another
// shim's record and none of its own (a start killed between starting it
// and recording it, or a reader that removed its damaged record).
func sharedService(t *testing.T, withPods bool) *testService {
	t.Helper()
	opts := options.Default()
	opts.PodsPerShim = 0
	var ts *testService
	if withPods {
		ts = newTestServiceWith(t, opts)
	} else {
		f := &fakeRunc{containers: map[string]chan struct{}{}}
		s := newService(f, opts, "")
		ts = &testService{s: s, runc: f, task: &taskService{TTRPCTaskService: f, svc: s}, sb: &sandboxService{svc: s}}
	}
	dir := pool.Dir(t.TempDir(), "k")
	pl, err := pool.Lock(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.AddShim("other", "unix:///run/test/other"); err != nil {
		t.Fatal(err)
	}
	pl.Unlock()
	// The shim's socket: pkg/shim made it, the shim removes it as it exits.
	sock := filepath.Join(t.TempDir(), "me.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ts.s.shared = &pool.SharedShim{Dir: dir, Name: "me", Address: "unix://" + sock}
	return ts
}

// socketGone fails t if the shared shim's socket is left.
func socketGone(t *testing.T, ts *testService) {
	t.Helper()
	if _, err := os.Lstat(strings.TrimPrefix(ts.s.shared.Address, "unix://")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the exited shim's socket is left: %v", err)
	}
}

// A shared shim with no record in its pool and no pod exits when it looks
// (its periodic check, or a task Shutdown) instead of staying for ever.
func TestSharedShimWithoutRecordExits(t *testing.T) {
	ts := sharedService(t, false)
	ts.s.shared.Retire(testCtx(), poolServer{ts.s}, "", "")
	if !ts.exited() {
		t.Fatal("a shared shim with no record and no pod stays")
	}
	socketGone(t, ts)
}

// A shared shim whose record is gone serves the pods it has, and exits
// after the last.
func TestSharedShimWithoutRecordExitsAfterItsPods(t *testing.T) {
	ts := sharedService(t, true)
	ctx := testCtx()
	if _, err := ts.sb.CreateSandbox(ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: "a", BundlePath: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.sb.StartSandbox(ctx, &sandboxAPI.StartSandboxRequest{SandboxID: "a"}); err != nil {
		t.Fatal(err)
	}
	ts.s.shared.Retire(ctx, poolServer{ts.s}, "", "")
	if ts.exited() {
		t.Fatal("a shared shim with no record exited under a live pod")
	}
	if _, err := ts.sb.ShutdownSandbox(ctx, &sandboxAPI.ShutdownSandboxRequest{SandboxID: "a"}); err != nil {
		t.Fatal(err)
	}
	if !ts.exited() {
		t.Fatal("a shared shim with no record stays after its last pod")
	}
	socketGone(t, ts)
}

// A pod given to a shared shim whose start was then killed never comes,
// and containerd removes its bundle (it runs no `shim delete` after a
// failed start): when the shim's last live pod leaves, it does not wait a
// StartTimeout for that pod, it takes it out of its record and exits.
func TestSharedShimDropsAPodWhoseBundleIsGone(t *testing.T) {
	ts := sharedService(t, true)
	ctx := testCtx()
	bundles := t.TempDir()
	live := filepath.Join(bundles, "a")
	if err := os.Mkdir(live, 0o700); err != nil {
		t.Fatal(err)
	}
	pl, err := pool.Lock(context.Background(), ts.s.shared.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.AddShim("me", ts.s.shared.Address); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "never-came"} {
		if err := pl.Assign("me", id); err != nil {
			t.Fatal(err)
		}
	}
	pl.Unlock()
	if _, err := ts.sb.CreateSandbox(ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: "a", BundlePath: live}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.sb.StartSandbox(ctx, &sandboxAPI.StartSandboxRequest{SandboxID: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.sb.ShutdownSandbox(ctx, &sandboxAPI.ShutdownSandboxRequest{SandboxID: "a"}); err != nil {
		t.Fatal(err)
	}
	if !ts.exited() {
		t.Fatal("the shared shim waits for a pod whose bundle containerd has removed")
	}
	socketGone(t, ts)
}
