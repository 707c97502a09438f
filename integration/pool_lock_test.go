package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDeleteNotHeldByAStuckPool: `shim delete` of a pod whose shared shim
// died cleans the pod up even while another process holds the pool's lock
// and does not let go (a start stopped midway, say). containerd kills a
// delete after its cleanup timeout (5 s by default), so a delete that
// waited for the lock would die before the cleanup, and the pod's
// leftovers would wait for some later pod's delete.
func TestDeleteNotHeldByAStuckPool(t *testing.T) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	p := runCRIPod(t, ctx, rt, podConfig(t, "stuck-pool", false), pairHandler)
	c := p.start(t, ctx, "c", "/bin/sleep", "100000")
	copyFile, poolDir := recordCopyOf(t, p.id)
	if poolDir == "" {
		t.Fatalf("the record copy %s names no pool: is %s a shared handler?", copyFile, pairHandler)
	}

	// The stuck holder: this test, on the pool's own lock file.
	lock, err := os.OpenFile(filepath.Join(poolDir, "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	shim := p.shimOf(t, ctx)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitPodDown(t, ctx, rt, p.id, c, "its shared shim died")
	// The delete ends with the record copy: it is gone once the pod's
	// cleanup is done.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(copyFile); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pod's cleanup has not finished %v after its shim died, with the pool locked by another process (record copy %s left)", 15*time.Second, copyFile)
		}
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	removePod(t, ctx, rt, p.id)

	// The pool is whole: a pod after it starts and runs.
	next := runCRIPod(t, ctx, rt, podConfig(t, "stuck-pool-after", false), pairHandler)
	if out := execSync(t, ctx, rt, next.start(t, ctx, "c", "/bin/sleep", "100000"), "echo", "alive"); out != "alive" {
		t.Errorf("a pod after the stuck pool: exec %q", out)
	}
	removePod(t, ctx, rt, next.id)
}

// recordCopyOf finds the copy of pod id's record that its shim keeps
// outside the bundle (package pod's orphan copies), and the pool it names.
func recordCopyOf(t *testing.T, id string) (file, poolDir string) {
	t.Helper()
	files, _ := filepath.Glob("/run/containerd-shim-pause-v2/pods/*.json")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var copy struct{ Bundle, Pool string }
		if json.Unmarshal(data, &copy) == nil && filepath.Base(copy.Bundle) == id {
			return f, copy.Pool
		}
	}
	t.Fatalf("no record copy names pod %s", id)
	return "", ""
}
