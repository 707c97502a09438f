// Command mkinstaller writes the installer image of deploy/installer.yaml
// as an OCI archive: busybox (for sh, cp, sed, sleep), the shim, the
// containerd drop-in and deploy/install.sh. No registry, no Docker engine.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: mkinstaller SHIM IMAGE-NAME ARCHIVE")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "mkinstaller:", err)
		os.Exit(1)
	}
}

func run(shim, name, archive string) error {
	img, err := testimage.Busybox(name, "sh", "cp", "sed", "mv", "echo", "sleep", "mkdir", "chmod")
	if err != nil {
		return err
	}
	for _, f := range []struct {
		src, dst string
		mode     int64
	}{
		{shim, "containerd-shim-pause-v2", 0o755},
		{filepath.Join("deploy", "containerd-pause.toml"), "containerd-pause.toml", 0o644},
		{filepath.Join("deploy", "install.sh"), "install.sh", 0o755},
	} {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return err
		}
		img.Files = append(img.Files, testimage.File{Path: f.dst, Data: data, Mode: f.mode})
	}
	img.Cmd = []string{"/bin/sh", "/install.sh", "/host"}
	return testimage.WriteArchive(img, archive)
}
