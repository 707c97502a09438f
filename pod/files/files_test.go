package files

import (
	"testing"

	"github.com/containerd/errdefs"
)

// TestCRIDirsNeedContainerdRoot: without containerd's root (start could
// not find it) a CRI pod's files have no place: the pod fails clearly.
func TestCRIDirsNeedContainerdRoot(t *testing.T) {
	if _, err := Locate("", "/s/p/ns/id", "id"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("unknown root: %v", err)
	}
}
