package shim

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/log"
)

// TestStartAnswersOnlyItsResult: containerd reads `shim start`'s standard
// output and error together as its answer (the shim's address), so a log
// line written there while a start does its work — here, removing a dead
// shared shim from the pool — fails the pod's start ("unsupported
// protocol: time=… level=info …").
func TestStartAnswersOnlyItsResult(t *testing.T) {
	ps := newPooledStart(t, 2)
	ps.runtimeOpts.PodsPerShim = 2
	if err := ps.opts.AddExtension(&runtimeoptions.Options{ConfigBody: []byte("PodsPerShim = 2\n")}); err != nil {
		t.Fatal(err)
	}
	ps.opts.InstanceID = "pod-a"
	// A shim recorded but never started: nobody at its address, no pod.
	dead := filepath.Join(ps.dir, "100")
	if err := os.MkdirAll(filepath.Join(dead, "pods"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, "address"), []byte("unix://"+filepath.Join(ps.socketDir, "dead")), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	prev := log.L.Logger.Out
	log.L.Logger.SetOutput(&stderr)
	t.Cleanup(func() { log.L.Logger.SetOutput(prev) })

	result, err := (&Manager{}).Start(ps.ctx, ps.opts)
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
