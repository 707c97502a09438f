package cgroups

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// TestDeleteCgroupStaysInTheHierarchies: Delete (run by `shim delete`
// from a record) refuses a path that leaves the cgroup roots, and removes
// nothing there.
func TestDeleteCgroupStaysInTheHierarchies(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.Mkdir(victim, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../../../.." + victim, "/../../../.." + victim, strings.TrimPrefix(victim, "/")} {
		err := Delete(p)
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("Delete(%q): %v, want InvalidArgument", p, err)
		}
		if _, serr := os.Stat(victim); serr != nil {
			t.Fatalf("Delete(%q) removed %s, outside the cgroup hierarchies", p, victim)
		}
	}
	if err := Delete("/pause-unit-test-never-made/x"); err != nil {
		t.Errorf("a cgroup that does not exist: %v", err)
	}
}
