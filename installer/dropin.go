package installer

import (
	"fmt"
	"strings"
)

// criRuntimes is the CRI plugin's table of runtime handlers (config
// version 3).
const criRuntimes = `plugins."io.containerd.cri.v1.runtime".containerd.runtimes`

// RenderDropIn is the containerd drop-in declaring handlers on the shim
// at shimPath (absolute, so containerd needs no PATH for it), in the
// shape of deploy/containerd-pause.toml: the shim's sandbox API, no pause
// image. Handler DenseHandler gets PodsPerShim = densePodsPerShim.
func RenderDropIn(shimPath string, handlers []string, densePodsPerShim int) []byte {
	var b strings.Builder
	b.WriteString("# Written by containerd-shim-pause-installer, which also removes it:\n")
	b.WriteString("# the CRI runtime handlers of containerd-shim-pause-v2.\n")
	b.WriteString("version = 3\n")
	for _, h := range handlers {
		table := criRuntimes + "." + h
		fmt.Fprintf(&b, "\n[%s]\n", table)
		fmt.Fprintf(&b, "  runtime_type = %s\n", tomlString(shimPath))
		b.WriteString("  sandboxer = \"shim\"\n")
		b.WriteString("  disable_pause_image_pull = true\n")
		if h == DenseHandler {
			fmt.Fprintf(&b, "[%s.options]\n  PodsPerShim = %d\n", table, densePodsPerShim)
		}
	}
	return []byte(b.String())
}

// InstallDropIn writes the drop-in at path (under the host root) and says
// whether it changed.
func InstallDropIn(path string, data []byte) (bool, error) {
	changed, err := writeAtomic(path, data, 0o644)
	if err != nil {
		return false, fmt.Errorf("write the containerd drop-in %s: %w", path, err)
	}
	return changed, nil
}
