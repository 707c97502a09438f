// Command mkinstaller writes the installer image of deploy/installer.yaml as
// an OCI archive: the files it is given (the shim and the node installer),
// each at the image's root, and nothing else: no shell, no libc (both are
// static). The DaemonSets name the command. No registry, no Docker engine.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: mkinstaller IMAGE-NAME ARCHIVE FILE...")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkinstaller:", err)
		os.Exit(1)
	}
}

func run(name, archive string, files []string) error {
	img := testimage.Image{Name: name}
	seen := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		base := filepath.Base(f)
		if seen[base] {
			return fmt.Errorf("two files named %s", base)
		}
		seen[base] = true
		img.Files = append(img.Files, testimage.File{Path: base, Data: data, Mode: 0o755})
	}
	return testimage.WriteArchive(img, archive)
}
