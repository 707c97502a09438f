package pool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A start killed midway leaves a shim's record half written: a directory
// with no address, or an empty one. Readers skip it, and remove it (they
// hold the pool), instead of failing for the whole pool.
func TestIncompleteRecordsAreSkippedAndRemoved(t *testing.T) {
	dir := Dir(t.TempDir(), "k")
	p, err := Lock(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Unlock()
	// Killed between making the shim's directory and writing its address.
	if err := os.MkdirAll(filepath.Join(dir, "100", "pods"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Killed with the address file made but not yet written.
	if err := os.MkdirAll(filepath.Join(dir, "101", "pods"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "101", "address"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	good := p.NewName()
	if err := p.AddShim(good, "unix:///run/test/good"); err != nil {
		t.Fatal(err)
	}
	if err := p.Assign(good, "pod"); err != nil {
		t.Fatal(err)
	}
	shims, err := p.Shims()
	if err != nil {
		t.Fatalf("Shims with incomplete records beside a good one: %v", err)
	}
	if len(shims) != 1 || shims[0].Name != good || shims[0].Address != "unix:///run/test/good" || !slices.Equal(shims[0].Pods, []string{"pod"}) {
		t.Fatalf("shims: %+v, want only %s", shims, good)
	}
	for _, name := range []string{"100", "101"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("incomplete record %s left: %v", name, err)
		}
		if _, err := p.Shim(name); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Shim(%s) of a removed record: %v", name, err)
		}
	}
	// With the good shim gone the pool is empty: Prune removes it.
	if _, err := p.Release(shims[0], "pod"); err != nil {
		t.Fatal(err)
	}
	if retired, err := p.Retire(good); !retired || err != nil {
		t.Fatalf("retire %s: %v %v", good, retired, err)
	}
	if err := p.Prune(); err != nil {
		t.Fatal(err)
	}
	p.Unlock()
	if _, err := os.Lstat(filepath.Dir(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pruned pool left: %v", err)
	}
}

// Shim on its own record that is incomplete says it is not there, and
// removes it.
func TestShimOfAnIncompleteRecord(t *testing.T) {
	dir := Dir(t.TempDir(), "k")
	p, err := Lock(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Unlock()
	if err := os.MkdirAll(filepath.Join(dir, "me", "pods", "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Shim("me"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Shim of a record without address: %v, want not exist", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "me")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("incomplete record left: %v", err)
	}
	if retired, err := p.Retire("me"); !retired || err != nil {
		t.Fatalf("Retire of an incomplete record: %v %v", retired, err)
	}
}
