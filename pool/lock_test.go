package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// holdsLockFile fails t unless the pool's lock file, at its path, is locked
// (by the caller, who holds the pool).
func holdsLockFile(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "lock"))
	if err != nil {
		t.Fatalf("the holder's lock file is gone: %v", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
		t.Fatal("the pool's lock file is free while a holder holds the pool")
	}
}

// A Lock whose pool is pruned, and released, between its making the pool's
// directory and opening the lock file locks the pool made anew instead of
// failing (`shim start` failed so).
func TestLockSurvivesPruneBeforeOpen(t *testing.T) {
	dir := Dir(t.TempDir(), "k")
	holder, err := Lock(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	testHookBeforeOpen = func() {
		once.Do(func() {
			if err := holder.Prune(); err != nil {
				t.Error(err)
			}
			holder.Unlock()
		})
	}
	t.Cleanup(func() { testHookBeforeOpen = nil })
	p, err := Lock(context.Background(), dir)
	if err != nil {
		t.Fatalf("Lock with the pool pruned between its mkdir and open: %v", err)
	}
	defer p.Unlock()
	holdsLockFile(t, dir)
}

// A holder that pruned its pool still holds it until Unlock: a newcomer
// waits.
func TestPruneKeepsThePoolLockedUntilUnlock(t *testing.T) {
	dir := Dir(t.TempDir(), "k")
	holder, err := Lock(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Prune(); err != nil {
		t.Fatal(err)
	}
	got := make(chan *Pool, 1)
	go func() {
		p, err := Lock(context.Background(), dir)
		if err != nil {
			t.Error(err)
		}
		got <- p
	}()
	select {
	case p := <-got:
		if p != nil {
			p.Unlock()
		}
		holder.Unlock()
		t.Fatal("a newcomer locked the pool while the holder that pruned it still held it")
	case <-time.After(300 * time.Millisecond):
	}
	holder.Unlock()
	select {
	case p := <-got:
		if p == nil {
			t.Fatal("no pool")
		}
		defer p.Unlock()
		holdsLockFile(t, dir)
	case <-time.After(10 * time.Second):
		t.Fatal("the newcomer did not get the pool after the holder's Unlock")
	}
}

// Hundreds of goroutines lock one pool, change it and prune it, for a few
// seconds: no Lock fails and no two holders are ever inside at once.
func TestLockStress(t *testing.T) {
	dir := Dir(t.TempDir(), "k")
	const workers = 200
	deadline := time.Now().Add(2 * time.Second)
	var inside, overlaps, rounds, prunes atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for time.Now().Before(deadline) {
				p, err := Lock(context.Background(), dir)
				if err != nil {
					errs <- err
					return
				}
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				err = stressStep(p, rng, &prunes)
				inside.Add(-1)
				p.Unlock()
				rounds.Add(1)
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	waitAll(t, &wg, errs)
	if n := overlaps.Load(); n > 0 {
		t.Errorf("%d of %d rounds had two holders inside the pool at once", n, rounds.Load())
	}
	if prunes.Load() == 0 {
		t.Errorf("no prune in %d rounds: the test did not race Lock with Prune", rounds.Load())
	}
	t.Logf("%d rounds, %d prunes", rounds.Load(), prunes.Load())
}

// stressStep is one holder's work: add a shim with a pod, or empty the
// pool and prune it.
func stressStep(p *Pool, rng *rand.Rand, prunes *atomic.Int64) error {
	shims, err := p.Shims()
	if err != nil {
		return err
	}
	if rng.IntN(3) > 0 {
		name := p.NewName()
		if err := p.AddShim(name, "unix:///run/test/"+name); err != nil {
			return err
		}
		return p.Assign(name, "pod")
	}
	for _, s := range shims {
		if s, err = p.Release(s, "pod"); err != nil {
			return err
		}
		if _, err := p.Retire(s.Name); err != nil {
			return err
		}
	}
	prunes.Add(1)
	return p.Prune()
}

// MkdirAll fails with EEXIST when a directory it found in its way is
// removed before it checks it: Lock then starts over. A file in the way is
// an error, not a reason to try again for ever.
func TestRemovedMeanwhile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&os.PathError{Op: "mkdir", Path: filepath.Join(dir, "gone"), Err: unix.EEXIST}, true},
		{&os.PathError{Op: "mkdir", Path: dir, Err: unix.EEXIST}, true},
		{&os.PathError{Op: "mkdir", Path: filepath.Join(dir, "gone", "k"), Err: unix.ENOENT}, true},
		{&os.PathError{Op: "mkdir", Path: file, Err: unix.EEXIST}, false},
		{&os.PathError{Op: "mkdir", Path: dir, Err: unix.EACCES}, false},
	} {
		if got := removedMeanwhile(c.err); got != c.want {
			t.Errorf("removedMeanwhile(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if _, err := Lock(context.Background(), filepath.Join(file, "k")); err == nil {
		t.Error("Lock under a file succeeded")
	}
}

// waitAll waits for wg, then fails t with each error sent on errs.
func waitAll(t *testing.T, wg *sync.WaitGroup, errs chan error) {
	t.Helper()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A Lock whose holder does not let go gives up when its context ends,
// naming the holder's pid, and its abandoned wait, once it gets the lock,
// lets go of it at once: the pool is not left locked by nobody.
func TestLockGivesUpOnAStuckHolder(t *testing.T) {
	dir := Dir(t.TempDir(), "k")
	holder, err := Lock(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	p, err := Lock(ctx, dir)
	if err == nil {
		p.Unlock()
		t.Fatal("locked a pool whose holder still holds it")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("error %q: want the deadline, naming the holder pid %d", err, os.Getpid())
	}
	if waited := time.Since(began); waited > 5*time.Second {
		t.Errorf("gave up after %v, its deadline was 100ms", waited)
	}
	holder.Unlock()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err = Lock(ctx, dir)
	if err != nil {
		t.Fatalf("after the holder let go: %v (the abandoned wait kept the lock)", err)
	}
	defer p.Unlock()
	holdsLockFile(t, dir)
}
