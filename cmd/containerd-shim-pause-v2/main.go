// Command containerd-shim-pause-v2 is the containerd shim of runtime
// io.containerd.pause.v2: pods with a built-in pause task, containers by runc.
package main

import (
	"context"

	"github.com/containerd/containerd/v2/pkg/shim"

	_ "github.com/containerd-shim-pause/containerd-shim-pause-v2/plugin"
	pauseshim "github.com/containerd-shim-pause/containerd-shim-pause-v2/shim"
)

func main() {
	pauseshim.StampVersion()
	shim.RunShim(context.Background(), pauseshim.NewManager(pauseshim.RuntimeName))
}
