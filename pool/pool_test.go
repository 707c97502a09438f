package pool

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestShimsAndPods(t *testing.T) {
	dir := Dir(t.TempDir(), Key("containerd.sock", "k8s.io", "shim", "{}"))
	p, err := Lock(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Unlock()
	a, b := p.NewName(), ""
	if err := p.AddShim(a, "unix:///s/a"); err != nil {
		t.Fatal(err)
	}
	if b = p.NewName(); b == a {
		t.Fatalf("NewName gave %q twice", a)
	}
	if err := p.AddShim(b, "unix:///s/b"); err != nil {
		t.Fatal(err)
	}
	for _, pod := range []string{"p1", "p2"} {
		if err := p.Assign(a, pod); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Assign(b, "p3"); err != nil {
		t.Fatal(err)
	}
	shims, err := p.Shims()
	if err != nil || len(shims) != 2 || shims[0].Name != a || !slices.Equal(shims[0].Pods, []string{"p1", "p2"}) || shims[1].Address != "unix:///s/b" {
		t.Fatalf("shims: %+v, %v", shims, err)
	}
	if s, ok := Holder(shims, "p3"); !ok || s.Name != b {
		t.Fatalf("holder of p3: %+v %v", s, ok)
	}
	if retired, err := p.Retire(a); retired || err != nil {
		t.Fatalf("a shim with pods retired: %v %v", retired, err)
	}
	if s, err := p.Release(shims[0], "p1"); err != nil || !slices.Equal(s.Pods, []string{"p2"}) {
		t.Fatalf("release p1: %+v %v", s, err)
	}
	if s, _ := p.Shim(a); !slices.Equal(s.Pods, []string{"p2"}) {
		t.Fatalf("shim a after releasing p1: %+v", s)
	}
	if shims, _ := p.Shims(); func() bool { _, ok := Holder(shims, "p1"); return ok }() {
		t.Fatal("p1 still held after its release")
	}
	s, _ := p.Shim(a)
	_, _ = p.Release(s, "p2")
	if retired, err := p.Retire(a); !retired || err != nil {
		t.Fatalf("a shim with no pod not retired: %v %v", retired, err)
	}
	if err := p.Prune(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("pool with a shim left pruned: %v", err)
	}
	s, _ = p.Shim(b)
	_, _ = p.Release(s, "p3")
	_, _ = p.Retire(b)
	if err := p.Prune(); err != nil {
		t.Fatal(err)
	}
	p.Unlock() // a pruned pool goes at Unlock, its hold's last step
	if _, err := os.Stat(filepath.Dir(dir)); !os.IsNotExist(err) {
		t.Fatalf("empty pool left: %v", err)
	}
}

// Starts that race for one pool each see the others' changes: under the
// lock, every pod lands on a shim and no two starts add the same shim.
func TestLockSerializesStarts(t *testing.T) {
	dir := Dir(t.TempDir(), "k")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := Lock(context.Background(), dir)
			if err != nil {
				errs <- err
				return
			}
			defer p.Unlock()
			shims, err := p.Shims()
			if err != nil {
				errs <- err
				return
			}
			name := ""
			for _, s := range shims {
				if len(s.Pods) < 4 {
					name = s.Name
				}
			}
			if name == "" {
				name = p.NewName()
				if err := p.AddShim(name, "unix:///"+name); err != nil {
					errs <- err
					return
				}
			}
			pod := "pod" + string(rune('A'+i%26)) + string(rune('a'+i/26))
			if err := p.Assign(name, pod); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	p, err := Lock(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Unlock()
	shims, _ := p.Shims()
	pods := 0
	for _, s := range shims {
		if len(s.Pods) > 4 {
			t.Errorf("shim %s has %d pods, room for 4", s.Name, len(s.Pods))
		}
		pods += len(s.Pods)
	}
	if pods != 64 || len(shims) != 16 {
		t.Errorf("%d pods on %d shims, want 64 on 16", pods, len(shims))
	}
}

// A start that waited on the lock of a pool pruned meanwhile locks the
// pool made anew, not the removed lock file (two holders otherwise).
func TestLockAfterPrune(t *testing.T) {
	dir := Dir(t.TempDir(), "k")
	first, err := Lock(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	locked := make(chan *Pool)
	go func() {
		p, err := Lock(context.Background(), dir)
		if err != nil {
			t.Error(err)
		}
		locked <- p
	}()
	time.Sleep(100 * time.Millisecond) // the second Lock waits on the first's file
	if err := first.Prune(); err != nil {
		t.Fatal(err)
	}
	first.Unlock()
	second := <-locked
	defer second.Unlock()
	f, err := os.Open(filepath.Join(dir, "lock"))
	if err != nil {
		t.Fatalf("the waiter holds a lock file that is gone: %v", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
		t.Fatal("the pool's lock file is free while the waiter holds the pool")
	}
}

// TestBinaryIdentity: a binary renamed over the old one at the same path,
// as an upgrade installs it, even with the same bytes, is another binary
// (its shims go in another pool); the same file read twice is the same.
func TestBinaryIdentity(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "containerd-shim-pause-v2")
	if err := os.WriteFile(path, []byte("v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	first, err := BinaryIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := BinaryIdentity(path); err != nil || again != first {
		t.Fatalf("the same file: %q then %q (%v)", first, again, err)
	}
	next := filepath.Join(dir, ".next")
	if err := os.WriteFile(next, []byte("v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	upgraded, err := BinaryIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if upgraded == first {
		t.Errorf("a binary renamed over the old one has the old one's identity %q", first)
	}
	if _, err := BinaryIdentity(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing binary has an identity")
	}
}
