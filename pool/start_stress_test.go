package pool

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/pkg/shim"
)

// Hundreds of starts and pod exits race on one handler's pool: no start
// fails, every pod lands on exactly one shim, no shim holds more than
// PodsPerShim, and each pod's socket leads to its shim's. (Every start
// holds the pool: the rounds are few, to keep the test within seconds.)
func TestStartStress(t *testing.T) {
	const workers, rounds, perShim = 200, 2, 8
	ps := newPooledStart(t, perShim)
	var mu sync.Mutex
	staying := map[string]string{} // pod: address
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for n := range rounds {
				id := fmt.Sprintf("pod-%d-%d", w, n)
				address, err := ps.start(id)
				if err != nil {
					errs <- fmt.Errorf("start %s: %w", id, err)
					return
				}
				if (w+n)%2 == 0 {
					mu.Lock()
					staying[id] = address
					mu.Unlock()
					continue
				}
				if err := ps.leave(id); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	waitAll(t, &wg, errs)
	shims := ps.shims(t)
	held := 0
	for _, s := range shims {
		if len(s.Pods) > perShim {
			t.Errorf("shim %s holds %d pods, room for %d", s.Name, len(s.Pods), perShim)
		}
		held += len(s.Pods)
	}
	if held != len(staying) {
		t.Errorf("%d pods held, want %d", held, len(staying))
	}
	for id, address := range staying {
		s, ok := Holder(shims, id)
		if !ok {
			t.Errorf("pod %s on no shim", id)
			continue
		}
		if target, err := os.Readlink(socketPath(address)); err != nil || target != socketPath(s.Address) {
			t.Errorf("pod %s's socket leads to %q (%v), not to its shim's %s", id, target, err, s.Address)
		}
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.listeners) != len(shims) {
		t.Errorf("%d shims run, %d recorded", len(ps.listeners), len(shims))
	}
	t.Logf("%d pods stay on %d shims; %d shims started", len(staying), len(shims), len(ps.spawned))
}

// leave is what a shared shim does as a pod of it shuts down: the pod
// leaves the pool and its socket goes; with its last pod the shim leaves
// too, and the pool if it was the last shim.
func (ps *pooledStart) leave(id string) error {
	locked, err := Lock(context.Background(), ps.dir)
	if err != nil {
		return err
	}
	defer locked.Unlock()
	shims, err := locked.Shims()
	if err != nil {
		return err
	}
	s, ok := Holder(shims, id)
	if !ok {
		return fmt.Errorf("pod %s on no shim", id)
	}
	if s, err = locked.Release(s, id); err != nil {
		return err
	}
	address, err := shim.CreateSocketAddress(ps.ctx, ps.socketDir, ps.opts.GetContainerdGrpcAddress(), id, false)
	if err != nil {
		return err
	}
	if err := os.Remove(socketPath(address)); err != nil {
		return err
	}
	if retired, err := locked.Retire(s.Name); err != nil || !retired {
		return err
	}
	ps.mu.Lock()
	l := ps.listeners[s.Address]
	delete(ps.listeners, s.Address)
	ps.mu.Unlock()
	l.Close() // removes the socket
	return locked.Prune()
}
