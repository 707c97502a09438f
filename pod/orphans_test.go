package pod

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

// TestKilledShimDeleteLeavesNothingAfterNextSweep: containerd runs `shim
// delete` once after a shim dies and then removes the bundle, pod.json
// with it. A delete killed before it cleaned up leaves the pod's mount,
// files, cgroup, pause task and socket with no record in any bundle: the
// next `shim delete` of any sandbox must find them and remove them.
func TestKilledShimDeleteLeavesNothingAfterNextSweep(t *testing.T) {
	r := testRegistry(t, options.Default())
	id := "orphan"
	sp := criPodSpec(t, r, id)
	var proc *pause.Process
	r.Host().StartPause = func(c pause.Config) (*pause.Process, error) {
		var err error
		proc, err = pause.Start(c)
		return proc, err
	}
	p, err := r.Create(podCtx(), sp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeleteCgroup(p.rec.PodCgroup) })
	t.Cleanup(func() {
		if proc != nil {
			_ = proc.Signal(syscall.SIGKILL)
		}
	})
	// The pod's socket, named as containerd names one; nobody listens.
	sock := filepath.Join(t.TempDir(), fmt.Sprintf("%x", sha256.Sum256([]byte(id))))
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The shim is killed once its pod runs, and so is its `shim delete`
	// before it did anything; containerd then removes the bundle.
	stopStartAt(t, p, "pause task recorded", []string{"unix://" + sock})
	rec, err := savedRecord(sp.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(sp.Bundle); err != nil {
		t.Fatal(err)
	}

	SweepOrphans(context.Background(), nil)

	shm := filepath.Join(rec.Files.VolatileDir, "shm")
	if mounted(t, shm) {
		t.Errorf("the pod's /dev/shm %s is still mounted after the sweep", shm)
	}
	for _, dir := range []string{rec.Files.Dir, rec.Files.VolatileDir} {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("the pod's files %s are left after the sweep", dir)
		}
	}
	if cgroupExists(rec.PodCgroup) {
		t.Errorf("the pod's cgroup %s is left after the sweep", rec.PodCgroup)
	}
	if _, err := os.Stat(sock); err == nil {
		t.Error("the dead shim's socket is left after the sweep")
	}
	select {
	case <-proc.Done():
	case <-time.After(5 * time.Second):
		t.Error("the pause task survived the sweep")
	}
	if left, _ := os.ReadDir(orphanDir); len(left) != 0 {
		t.Errorf("the sweep left %d record copies", len(left))
	}
}
