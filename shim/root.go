package shim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// containerdRootOf finds the root directory of the containerd with this pid
// from the metadata database it holds open
// (<root>/io.containerd.metadata.v1.bolt/meta.db). `start` is a child of
// containerd, so this costs it a directory read; the long-lived server then
// needs no client of containerd's API, whose memory every pod's shim would
// pay.
func containerdRootOf(pid int) (string, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err == nil && strings.HasSuffix(target, "/io.containerd.metadata.v1.bolt/meta.db") {
			return filepath.Dir(filepath.Dir(target)), nil
		}
	}
	return "", fmt.Errorf("process %d holds no containerd metadata database", pid)
}
