// Command mkinstaller writes the installer image of deploy/installer.yaml
// as an OCI archive: busybox (for sh, cp, sed, sleep), the shim, the
// containerd drop-in and deploy/install.sh, and the node installer
// (/containerd-shim-pause-installer) when given. No registry, no Docker
// engine. The shell and install.sh go once no manifest runs install.sh.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

func main() {
	if len(os.Args) != 4 && len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: mkinstaller SHIM IMAGE-NAME ARCHIVE [INSTALLER]")
		os.Exit(2)
	}
	installer := ""
	if len(os.Args) == 5 {
		installer = os.Args[4]
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], installer); err != nil {
		fmt.Fprintln(os.Stderr, "mkinstaller:", err)
		os.Exit(1)
	}
}

func run(shim, name, archive, installer string) error {
	img, err := testimage.Busybox(name, "sh", "cp", "sed", "mv", "echo", "sleep", "mkdir", "chmod")
	if err != nil {
		return err
	}
	type file struct {
		src, dst string
		mode     int64
	}
	files := []file{
		{shim, "containerd-shim-pause-v2", 0o755},
		{filepath.Join("deploy", "containerd-pause.toml"), "containerd-pause.toml", 0o644},
		{filepath.Join("deploy", "install.sh"), "install.sh", 0o755},
	}
	if installer != "" {
		files = append(files, file{installer, "containerd-shim-pause-installer", 0o755})
	}
	for _, f := range files {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return err
		}
		img.Files = append(img.Files, testimage.File{Path: f.dst, Data: data, Mode: f.mode})
	}
	img.Cmd = []string{"/bin/sh", "/install.sh", "/host"}
	return testimage.WriteArchive(img, archive)
}
