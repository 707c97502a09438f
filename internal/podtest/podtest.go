// Package podtest is what the tests of packages above pod share: a
// TestMain that keeps their pods' record copies off the host.
package podtest

import (
	"os"
	"testing"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod"
)

// Main runs m with the pods' record copies in a directory of its own,
// removed afterwards: a copy left where a real `shim delete` sweeps would
// be taken for a pod of the host's.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "pause-orphans-")
	if err != nil {
		panic(err)
	}
	pod.SetOrphanDir(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
