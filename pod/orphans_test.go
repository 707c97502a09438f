package pod

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/files"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pool"
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
	r.Deps().StartPause = func(c pause.Config) (*pause.Process, error) {
		var err error
		proc, err = pause.Start(c)
		return proc, err
	}
	p, err := r.Create(podCtx(), sp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cgroups.Delete(p.rec.PodCgroup) })
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

// orphanOf writes a copy of a record naming files under a fresh containerd
// root, for a bundle that lies where containerd puts one, and returns the
// bundle and the pod's files directory.
func orphanOf(t *testing.T, id string) (bundle, filesDir string) {
	t.Helper()
	dir := t.TempDir()
	bundle = filepath.Join(dir, "state", "io.containerd.runtime.v2.task", testNamespace, id)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	pf, err := files.Locate(filepath.Join(dir, "root"), bundle, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(pf.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := (record{ID: id, Files: pf}).save(bundle); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(orphanPath(bundle)) })
	return bundle, pf.Dir
}

// TestSweepLeavesPodsWithABundle: a copy whose bundle exists is its pod's
// (a live shim's, or one whose delete is still to come): a sweep leaves
// the pod and the copy alone.
func TestSweepLeavesPodsWithABundle(t *testing.T) {
	bundle, files := orphanOf(t, "kept")
	SweepOrphans(context.Background(), nil)
	if _, err := os.Stat(files); err != nil {
		t.Errorf("the sweep removed the files of a pod whose bundle exists: %v", err)
	}
	if _, err := os.Stat(orphanPath(bundle)); err != nil {
		t.Errorf("the sweep removed the copy of a pod whose bundle exists: %v", err)
	}
}

// TestSweepLeavesUntrustedCopies: a copy that is damaged, or names a
// bundle other than the one it is named after, is acted on in no part.
func TestSweepLeavesUntrustedCopies(t *testing.T) {
	for name, edit := range map[string]func(o *orphan) []byte{
		"malformed": func(*orphan) []byte { return []byte("{") },
		"another bundle": func(o *orphan) []byte {
			o.Bundle = filepath.Join(filepath.Dir(o.Bundle), "other", o.Record.ID)
			data, _ := json.Marshal(o)
			return data
		},
		"files not the pod's": func(o *orphan) []byte {
			o.Record.Files.Dir = filepath.Dir(o.Record.Files.Dir)
			data, _ := json.Marshal(o)
			return data
		},
		"pool not a pool": func(o *orphan) []byte {
			o.Pool = "/etc"
			data, _ := json.Marshal(o)
			return data
		},
	} {
		t.Run(name, func(t *testing.T) {
			bundle, files := orphanOf(t, "untrusted")
			data, err := os.ReadFile(orphanPath(bundle))
			if err != nil {
				t.Fatal(err)
			}
			var o orphan
			if err := json.Unmarshal(data, &o); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(orphanPath(bundle), edit(&o), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(bundle); err != nil {
				t.Fatal(err)
			}
			var left []string
			SweepOrphans(context.Background(), func(_ context.Context, dir, _, _ string) { left = append(left, dir) })
			if _, err := os.Stat(files); err != nil {
				t.Errorf("the sweep acted on an untrusted copy: %v", err)
			}
			if len(left) != 0 {
				t.Errorf("the sweep left pools %v for an untrusted copy", left)
			}
			if _, err := decodeOrphan(orphanPath(bundle), edit(&o)); !errors.Is(err, errdefs.ErrDataLoss) {
				t.Errorf("decode of an untrusted copy: %v, want ErrDataLoss", err)
			}
		})
	}
}

// TestSweepLeavesThePool: the pod of a shared shim leaves its pool from the
// copy, as its own delete would have from the bundle.
func TestSweepLeavesThePool(t *testing.T) {
	bundle, files := orphanOf(t, "pooled")
	poolDir := filepath.Join(t.TempDir(), "pause-pools", "0123456789abcdef")
	if err := os.WriteFile(filepath.Join(bundle, pool.BundleFile), []byte(poolDir), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (record{ID: "pooled", Files: mustCRIDirs(t, files, bundle)}).save(bundle); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(bundle); err != nil {
		t.Fatal(err)
	}
	var left [][2]string
	SweepOrphans(context.Background(), func(_ context.Context, dir, id, _ string) { left = append(left, [2]string{dir, id}) })
	if len(left) != 1 || left[0] != [2]string{poolDir, "pooled"} {
		t.Errorf("pools left: %v, want %s for pod pooled", left, poolDir)
	}
	if _, err := os.Stat(files); err == nil {
		t.Error("the pod's files are left after the sweep")
	}
	if _, err := os.Stat(orphanPath(bundle)); err == nil {
		t.Error("the copy is left after the sweep")
	}
}

// mustCRIDirs are the CRI directories of the pod whose files directory is
// dir.
func mustCRIDirs(t *testing.T, dir, bundle string) files.Dirs {
	t.Helper()
	root := strings.TrimSuffix(dir, string(filepath.Separator)+filepath.Join(files.CRIDirName, "sandboxes", filepath.Base(bundle)))
	pf, err := files.Locate(root, bundle, filepath.Base(bundle))
	if err != nil {
		t.Fatal(err)
	}
	return pf
}

// TestShutdownDropsTheCopy: a pod cleaned up by its shim leaves no copy of
// its record behind, and one whose start failed neither.
func TestShutdownDropsTheCopy(t *testing.T) {
	r := testRegistry(t, options.Default())
	ctx := podCtx()
	sp := criPodSpec(t, r, "dropped")
	p, err := r.Create(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(orphanPath(sp.Bundle)); err != nil {
		t.Fatalf("a started pod has no copy of its record: %v", err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(orphanPath(sp.Bundle)); err == nil {
		t.Error("the copy of the record is left after shutdown")
	}
}

// TestSweepRemovesSocketsOfAFailedStart: containerd runs no `shim delete`
// after a `shim start` that failed, and removes the bundle: the socket the
// start made goes at the next sweep if nobody listens there, and stays
// while a shim serves it.
func TestSweepRemovesSocketsOfAFailedStart(t *testing.T) {
	dir := t.TempDir()
	// Short: a socket's path has room for 107 bytes.
	sockDir, err := os.MkdirTemp("/tmp", "s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	var bundles, socks []string
	for _, id := range []string{"dead", "live"} {
		bundle := filepath.Join(dir, "state", "io.containerd.runtime.v2.task", testNamespace, id)
		if err := os.MkdirAll(bundle, 0o700); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(sockDir, fmt.Sprintf("%x", sha256.Sum256([]byte(id))))
		if err := RecordShimSockets(bundle, id, []string{"unix://" + sock}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(orphanPath(bundle)) })
		bundles, socks = append(bundles, bundle), append(socks, sock)
	}
	if err := os.WriteFile(socks[0], nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", socks[1])
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, b := range bundles {
		if err := os.RemoveAll(b); err != nil {
			t.Fatal(err)
		}
	}
	SweepOrphans(context.Background(), nil)
	if _, err := os.Stat(socks[0]); err == nil {
		t.Error("the socket of a failed start is left after the sweep")
	}
	if _, err := os.Stat(orphanPath(bundles[0])); err == nil {
		t.Error("the copy of a failed start is left after the sweep")
	}
	if _, err := os.Stat(socks[1]); err != nil {
		t.Errorf("the sweep removed a socket a shim serves: %v", err)
	}
	if err := RecordShimSockets(bundles[0], "dead", []string{"unix:///not/a/shim/socket"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("a socket address that is not a shim's: %v, want ErrInvalidArgument", err)
	}
}
