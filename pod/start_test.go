package pod

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/files"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

// criPodSpec is the Spec of a CRI pod with its own IPC namespace (so a /dev/shm
// of its own) on the host's network, whose bundle lies where containerd puts
// one, with containerd's root beside it: its start makes files, a mount, a
// cgroup and a pause task.
func criPodSpec(t testing.TB, r *Registry, id string) Spec {
	t.Helper()
	dir := t.TempDir()
	r.Deps().ContainerdRoot = filepath.Join(dir, "root")
	bundle := filepath.Join(dir, "state", "io.containerd.runtime.v2.task", testNamespace, id)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	pc := &cri.PodSandboxConfig{
		Metadata: &cri.PodSandboxMetadata{Name: id, Namespace: "default", Uid: "u-" + id},
		Hostname: id,
		Linux: &cri.LinuxPodSandboxConfig{SecurityContext: &cri.LinuxSandboxSecurityContext{
			NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_NODE, Pid: cri.NamespaceMode_POD, Ipc: cri.NamespaceMode_POD},
		}},
	}
	data, err := proto.Marshal(pc)
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := files.Locate(r.Deps().ContainerdRoot, bundle, id)
	shm := filepath.Join(dirs.VolatileDir, "shm")
	// Whatever the test's outcome, its mount must not outlive it (t.TempDir
	// could not remove it).
	t.Cleanup(func() { _ = unix.Unmount(shm, unix.MNT_DETACH) })
	return Spec{ID: id, Namespace: testNamespace, Bundle: bundle, Options: &anypb.Any{TypeUrl: criConfigType, Value: data}}
}

// savedRecord reads the record a pod saved in its bundle.
func savedRecord(bundle string) (record, error) {
	var rec record
	data, err := os.ReadFile(filepath.Join(bundle, stateFile))
	if err == nil {
		err = json.Unmarshal(data, &rec)
	}
	return rec, err
}

// mounted tells whether path is a mount point.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && fields[4] == path {
			return true
		}
	}
	return false
}

// cgroupExists tells whether the cgroup at path exists (on v1, in the pids
// hierarchy, which every pod cgroup joins).
func cgroupExists(path string) bool {
	root := "/sys/fs/cgroup/pids"
	if cgroups.Unified() {
		root = "/sys/fs/cgroup"
	}
	_, err := os.Stat(filepath.Join(root, path))
	return err == nil
}

// stopStartAt runs p.Start in a goroutine that ends at the step named (as a
// shim killed there would: nothing of the start's own cleanup runs), and
// returns once it has.
func stopStartAt(t *testing.T, p *Pod, step string, sockets []string) {
	t.Helper()
	reached := false
	stepHook = func(s string) {
		if s == step {
			reached = true
			runtime.Goexit()
		}
	}
	t.Cleanup(func() { stepHook = nil })
	done := make(chan error, 1)
	go func() {
		defer close(done)
		if _, err := p.Start(podCtx(), sockets); err != nil {
			done <- err
		}
	}()
	select {
	case err, ok := <-done:
		if ok {
			t.Fatalf("the start failed before step %q: %v", step, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the start did not reach step %q", step)
	}
	if !reached {
		t.Fatalf("the start ended without reaching step %q", step)
	}
}

// TestCrashDuringStartLeavesNothingAfterShimDelete: a shim killed at any
// step of a pod's start leaves `shim delete` (CleanupBundle) a record of
// what the start made, which it removes: the pod's files and /dev/shm
// mount, its cgroup and its pause task.
func TestCrashDuringStartLeavesNothingAfterShimDelete(t *testing.T) {
	for _, step := range []string{"start recorded", "pod files made", "pod cgroup made", "pause task started", "pause task recorded"} {
		t.Run(step, func(t *testing.T) {
			r := testRegistry(t, options.Default())
			id := "crash-" + strings.ReplaceAll(step, " ", "-")
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
			// The shim's socket, named as containerd names one.
			sock := filepath.Join(t.TempDir(), fmt.Sprintf("%x", sha256.Sum256([]byte(id))))
			if err := os.WriteFile(sock, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			stopStartAt(t, p, step, []string{"unix://" + sock})
			if step == "pause task started" {
				// The shim dies before it could record the pause task, whose
				// parent-death signal kills it with the shim. This test's
				// process lives on: it does what that signal would.
				_ = proc.Signal(syscall.SIGKILL)
			}
			if _, err := CleanupBundle(context.Background(), sp.Bundle); err != nil {
				t.Fatalf("shim delete: %v", err)
			}
			dirs := p.rec.Files
			if dirs.Dir == "" {
				dirs, _ = files.Locate(r.Deps().ContainerdRoot, sp.Bundle, id)
			}
			shm := filepath.Join(dirs.VolatileDir, "shm")
			if mounted(t, shm) {
				t.Errorf("the pod's /dev/shm %s is still mounted after shim delete", shm)
			}
			for _, dir := range []string{dirs.Dir, dirs.VolatileDir} {
				if _, err := os.Stat(dir); err == nil {
					t.Errorf("the pod's files %s are left after shim delete", dir)
				}
			}
			if cg := p.rec.PodCgroup; cgroupExists(cg) {
				t.Errorf("the pod's cgroup %s is left after shim delete", cg)
			}
			if _, err := os.Stat(sock); err == nil {
				t.Error("the dead shim's socket is left after shim delete")
			}
			if proc != nil {
				select {
				case <-proc.Done():
				case <-time.After(5 * time.Second):
					_ = proc.Signal(syscall.SIGKILL)
					t.Error("the pause task survived shim delete")
				}
			}
		})
	}
}

// TestFailedStartKeepsShimSockets: a start that fails removes what it made,
// not the shim's sockets, which containerd needs to reach the shim again
// (a retried start, a restart of containerd).
func TestFailedStartKeepsShimSockets(t *testing.T) {
	r := testRegistry(t, options.Default())
	r.Deps().StartPause = func(pause.Config) (*pause.Process, error) { return nil, errors.New("no pause task today") }
	ctx := podCtx()
	p, err := r.Create(ctx, Spec{ID: "sockets", Namespace: testNamespace, Bundle: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(ctx) })
	sock := filepath.Join(t.TempDir(), "shim.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := p.Start(ctx, []string{"unix://" + sock}); err == nil {
		t.Fatal("a failed start succeeded")
	}
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("a failed start removed the shim's socket: %v", err)
	}
	if cgroupExists(p.rec.PodCgroup) {
		t.Errorf("a failed start left the pod cgroup %s it made", p.rec.PodCgroup)
	}
}

// TestStartRefusesUnknownPauseStartTime: a pause task whose start time
// cannot be read (it died at once) is not recorded with a start time of 0,
// which would keep `shim delete` from ever killing it: the start fails.
func TestStartRefusesUnknownPauseStartTime(t *testing.T) {
	r := testRegistry(t, options.Default())
	r.Deps().StartPause = func(c pause.Config) (*pause.Process, error) {
		proc, err := pause.Start(c)
		if err != nil {
			return nil, err
		}
		_ = proc.Signal(syscall.SIGKILL)
		<-proc.Done() // reaped: /proc has no start time for it
		return proc, nil
	}
	ctx := podCtx()
	bundle := t.TempDir()
	p, err := r.Create(ctx, Spec{ID: "no-start-time", Namespace: testNamespace, Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(ctx) })
	if pid, err := p.Start(ctx, nil); err == nil {
		t.Fatalf("start succeeded (pid %d) with a pause task whose start time is unknown", pid)
	}
	if p.State() != "created" {
		t.Errorf("after a failed start: %s", p.State())
	}
	if rec, err := savedRecord(bundle); err == nil && rec.PausePid != 0 && rec.PauseStartTime == 0 {
		t.Errorf("recorded pause pid %d with start time 0", rec.PausePid)
	}
}

// TestImpossibleStartTransitionFailsTheStart: a start that ends in a state
// that cannot end a start (a bug) fails, and kills the pause task it made,
// instead of answering success for a pod that is not ready.
func TestImpossibleStartTransitionFailsTheStart(t *testing.T) {
	r := testRegistry(t, options.Default())
	var (
		p    *Pod
		proc *pause.Process
	)
	r.Deps().StartPause = func(c pause.Config) (*pause.Process, error) {
		var err error
		proc, err = pause.Start(c)
		p.mu.Lock()
		p.state = &stoppedState{} // no start ends there
		p.mu.Unlock()
		return proc, err
	}
	ctx := podCtx()
	var err error
	p, err = r.Create(ctx, Spec{ID: "bad-transition", Namespace: testNamespace, Bundle: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(ctx) })
	pid, err := p.Start(ctx, nil)
	if err == nil || !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "invalid transition") {
		t.Fatalf("start: pid %d, %v; want FailedPrecondition naming the invalid transition", pid, err)
	}
	select {
	case <-proc.Done():
	case <-time.After(5 * time.Second):
		_ = proc.Signal(syscall.SIGKILL)
		t.Error("the pause task of the failed start runs on")
	}
}

// TestConcurrentShutdownsCleanUpOnce: two ShutdownSandbox calls at once
// (containerd retries one that timed out) clean the pod up once: the
// second waits for the first's cleanup instead of running its own beside
// it, or after it, when the pod's cgroup or files may belong to a pod
// created since under the same id.
func TestConcurrentShutdownsCleanUpOnce(t *testing.T) {
	r := testRegistry(t, options.Default())
	ctx := podCtx()
	p, err := r.Create(ctx, Spec{ID: "twice", Namespace: testNamespace, Bundle: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var cleanups atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	stepHook = func(s string) {
		if s == "cleanup begun" && cleanups.Add(1) == 1 {
			close(entered)
			<-release
		}
	}
	t.Cleanup(func() { stepHook = nil })
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { first <- p.Shutdown(ctx) }()
	<-entered
	go func() { second <- p.Shutdown(ctx) }()
	// The second shutdown gets as far as it will while the first cleans up.
	time.Sleep(200 * time.Millisecond)
	close(release)
	for _, ch := range []chan error{first, second} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("shutdown: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a shutdown hangs")
		}
	}
	if n := cleanups.Load(); n != 1 {
		t.Errorf("the pod was cleaned up %d times", n)
	}
	if p.State() != "shut down" {
		t.Errorf("state %s", p.State())
	}
}
