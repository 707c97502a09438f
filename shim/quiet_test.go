package shim

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pool"
)

// TestStartAnswersOnlyItsResult: containerd reads `shim start`'s standard
// output and error together as its answer (the shim's address), so a log
// line written there while a start does its work — here, removing a dead
// shared shim from the pool — fails the pod's start ("unsupported
// protocol: time=… level=info …").
func TestStartAnswersOnlyItsResult(t *testing.T) {
	// Socket paths have a length limit: keep the directory short.
	socketDir, err := os.MkdirTemp("", "pool")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(socketDir) })
	t.Chdir(t.TempDir()) // the pod's bundle
	ctx := namespaces.WithNamespace(context.Background(), "pool-test")
	opts := &bootapi.BootstrapParams{ContainerdGrpcAddress: "/run/test/containerd.sock", SocketDir: &socketDir, InstanceID: "pod-a"}
	if err := opts.AddExtension(&runtimeoptions.Options{ConfigBody: []byte("PodsPerShim = 2\n")}); err != nil {
		t.Fatal(err)
	}
	runtimeOpts, err := options.FromBootstrap(opts)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := pool.DirFor(socketDir, opts.ContainerdGrpcAddress, "pool-test", runtimeOpts)
	if err != nil {
		t.Fatal(err)
	}
	spawnShared = func(context.Context, *bootapi.BootstrapParams, options.Options, string, server) error { return nil }
	t.Cleanup(func() { spawnShared = spawn })
	// A shim recorded but never started: nobody at its address, no pod.
	dead := filepath.Join(dir, "100")
	if err := os.MkdirAll(filepath.Join(dead, "pods"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, "address"), []byte("unix://"+filepath.Join(socketDir, "dead")), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	prev := log.L.Logger.Out
	log.L.Logger.SetOutput(&stderr)
	t.Cleanup(func() { log.L.Logger.SetOutput(prev) })

	result, err := (&Manager{}).Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(result.GetAddress(), "unix://") {
		t.Errorf("address %q", result.GetAddress())
	}
	if stderr.Len() > 0 {
		t.Errorf("shim start wrote %q beside its answer", stderr.String())
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead shim's record is left: %v", err)
	}
}
