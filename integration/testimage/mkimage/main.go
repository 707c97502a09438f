// Command mkimage writes an OCI archive of the host's busybox-static, for
// `ctr images import`: the demo's container image, built without a registry.
package main

import (
	"fmt"
	"os"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mkimage IMAGE-NAME ARCHIVE")
		os.Exit(2)
	}
	img, err := testimage.Busybox(os.Args[1], "sh", "sleep", "nc", "ps", "hostname", "cat", "echo", "readlink", "ls")
	if err == nil {
		err = testimage.WriteArchive(img, os.Args[2])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}
