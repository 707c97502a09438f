package pod

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/proc"
)

// TestCleanupBundleKillsRecordedPauseIdempotently is `shim delete` after a
// shim crash: from the bundle alone it kills the recorded process, and a
// second delete finds nothing left to do.
func TestCleanupBundleKillsRecordedPauseIdempotently(t *testing.T) {
	bundle := t.TempDir()
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = sleeper.Wait(); close(done) }()
	t.Cleanup(func() { _ = sleeper.Process.Kill() })
	start, err := proc.StartTime(sleeper.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	st := record{ID: "p", PausePid: sleeper.Process.Pid, PauseStartTime: start}
	if err := st.save(bundle); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		isPod, err := CleanupBundle(context.Background(), bundle)
		if !isPod || err != nil {
			t.Fatalf("delete %d: pod %v, %v", i, isPod, err)
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the recorded pause process was not killed")
	}
}

// A pid that now names another process (other start time) is not killed.
func TestCleanupBundleSparesReusedPid(t *testing.T) {
	bundle := t.TempDir()
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	st := record{ID: "p", PausePid: other.Process.Pid, PauseStartTime: 1}
	if err := st.save(bundle); err != nil {
		t.Fatal(err)
	}
	if _, err := CleanupBundle(context.Background(), bundle); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("an unrelated process with the recorded pid was killed: %v", err)
	}
}

func TestCleanupBundleOfContainer(t *testing.T) {
	bundle := t.TempDir()
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte("{}"), 0o600)
	if isPod, err := CleanupBundle(context.Background(), bundle); isPod || err != nil {
		t.Errorf("a container's bundle taken for a pod: %v %v", isPod, err)
	}
	os.WriteFile(filepath.Join(bundle, stateFile), []byte("{"), 0o600)
	if _, err := CleanupBundle(context.Background(), bundle); err == nil {
		t.Error("malformed pod state: no error")
	}
}
