package installer

import (
	"fmt"
	"os"
)

// InstallShim copies the shim binary src to dst (the host's bin dir under
// the host root) atomically: a running shim keeps its old inode, new pods
// start on the new binary. Nothing is written when dst already holds the
// same bytes. It says whether dst changed.
func InstallShim(src, dst string) (bool, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return false, fmt.Errorf("read the shim to install: %w", err)
	}
	changed, err := writeAtomic(dst, data, 0o755)
	if err != nil {
		return false, fmt.Errorf("install the shim as %s: %w", dst, err)
	}
	return changed, nil
}
