package pod

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/reaptest"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

// errNoPause is the stress test's failed pause start.
var errNoPause = errors.New("no pause task this time")

// TestRegistryStress drives one registry from hundreds of goroutines at
// once (run it with -race): creates, starts, stops, shutdowns and removes,
// abandons of pods never started, container admits, and every lookup,
// on a few dozen sandbox ids, for a few seconds. Every call answers with
// success or an error of its kind, none hangs, and once every pod is shut
// down no pause task, cgroup or pod is left.
func TestRegistryStress(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the pods run pause tasks in cgroups of their own")
	}
	reaptest.Children(t)
	t.Cleanup(func() { _ = cgroups.Delete("/" + testNamespace) })
	opts := options.Default()
	opts.StartTimeout = options.Duration(300 * time.Millisecond) // some pods are abandoned
	var (
		procsMu sync.Mutex
		procs   []*pause.Process
		starts  atomic.Int64
	)
	deps := &Deps{Options: opts, Tasks: noTasks{}, StartPause: func(c pause.Config) (*pause.Process, error) {
		// A pause task without namespaces of its own: cheap, and as real
		// for the registry; one start in five fails.
		if starts.Add(1)%5 == 0 {
			return nil, errNoPause
		}
		proc, err := pause.Start(pause.Config{UID: c.UID, GID: c.GID})
		if err == nil {
			procsMu.Lock()
			procs = append(procs, proc)
			procsMu.Unlock()
		}
		return proc, err
	}}
	r := NewRegistry(deps, 0)
	deps.Abandoned = func(_ context.Context, p *Pod) { _ = r.Remove(p.ID()) }

	const ids, workers = 32, 300
	bundles := make([]string, ids)
	for i := range bundles {
		bundles[i] = t.TempDir()
	}
	ctx := podCtx()
	deadline := time.Now().Add(3 * time.Second)
	var (
		wg    sync.WaitGroup
		calls atomic.Int64
	)
	unexpected := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 18))
			spec := filepath.Join(t.TempDir(), "config.json")
			for time.Now().Before(deadline) {
				i := rng.IntN(ids)
				id := fmt.Sprintf("stress-%d", i)
				err := stressCall(ctx, r, rng.IntN(10), id, bundles[i], spec, fmt.Sprintf("c-%d", w))
				calls.Add(1)
				if err != nil && !expectedStressError(err) {
					unexpected <- fmt.Errorf("sandbox %s: %w", id, err)
					return
				}
			}
		}(w)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("calls hang")
	}
	close(unexpected)
	for err := range unexpected {
		t.Errorf("unexpected error: %v", err)
	}
	// The end of every pod: shut down, removed, nothing left of it.
	for _, p := range r.Pods() {
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("shut down %s: %v", p.ID(), err)
		}
		if err := r.Remove(p.ID()); err != nil {
			t.Errorf("remove %s: %v", p.ID(), err)
		}
	}
	if r.Len() != 0 || r.Live() {
		t.Errorf("%d pods left in the registry", r.Len())
	}
	procsMu.Lock()
	defer procsMu.Unlock()
	for _, proc := range procs {
		select {
		case <-proc.Done():
		case <-time.After(5 * time.Second):
			_ = proc.Signal(9)
			t.Errorf("pause task %d outlived its pod", proc.Pid)
		}
	}
	for i := 0; i < ids; i++ {
		if cg := fmt.Sprintf("/%s/stress-%d", testNamespace, i); cgroupExists(cg) {
			t.Errorf("cgroup %s left", cg)
		}
	}
	t.Logf("%d calls, %d pause starts, by %d goroutines", calls.Load(), starts.Load(), workers)
}

// stressCall makes one call of kind op on pod id.
func stressCall(ctx context.Context, r *Registry, op int, id, bundle, spec, container string) error {
	switch op {
	case 0:
		_, err := r.Create(ctx, Spec{ID: id, Namespace: testNamespace, Bundle: bundle})
		return err
	case 1:
		_, _ = r.Get(id)
		_ = r.Len()
		_ = r.Live()
		_ = r.MemberOf(container)
		_ = r.Only()
		return nil
	case 2:
		return r.Remove(id)
	}
	p, err := r.Get(id)
	if err != nil {
		return err
	}
	switch op {
	case 3, 4:
		_, err = p.Start(ctx, nil)
	case 5:
		err = p.Stop(ctx, 0)
	case 6:
		err = p.Shutdown(ctx)
	case 7:
		wctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		defer cancel()
		_, _, err = p.Wait(wctx)
	case 8:
		_ = p.Status(true)
		_ = p.Ping()
		_ = p.PausePid()
		_ = p.State()
	case 9:
		if err := os.WriteFile(spec, []byte(`{"linux":{"namespaces":[{"type":"mount"}]}}`), 0o600); err != nil {
			return err
		}
		if _, err = p.Admit(ctx, container, spec); err == nil {
			p.Created(container, true)
			p.Forget(container)
		}
	}
	return err
}

// expectedStressError tells the answers the stress test's calls may get:
// a refusal of its kind, a failed pause start, a wait that timed out.
func expectedStressError(err error) bool {
	return errdefs.IsAlreadyExists(err) || errdefs.IsFailedPrecondition(err) || errdefs.IsNotFound(err) ||
		errors.Is(err, errNoPause) || errors.Is(err, context.DeadlineExceeded)
}
