// Command mkinstaller writes the installer image of deploy/installer.yaml as
// an OCI archive: the files it is given (the shim, the node installer), each
// at the image's root, nothing else: no shell, no libc (both are static).
// The DaemonSets name the command. No registry, no Docker engine.
//
// With -index, the image is an OCI image index of one image per
// architecture, each from the files of a directory (ARCH=DIR, e.g.
// arm64=bin/linux-arm64): one name serves amd64 as arm64 nodes.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

const usage = `usage: mkinstaller IMAGE-NAME ARCHIVE FILE...
       mkinstaller -index IMAGE-NAME ARCHIVE ARCH=DIR...`

func main() {
	args := os.Args[1:]
	index := len(args) > 0 && args[0] == "-index"
	if index {
		args = args[1:]
	}
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	run := run
	if index {
		run = runIndex
	}
	if err := run(args[0], args[1], args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkinstaller:", err)
		os.Exit(1)
	}
}

func run(name, archive string, files []string) error {
	img, err := image(name, "", files)
	if err != nil {
		return err
	}
	return testimage.WriteArchive(img, archive)
}

// runIndex writes one image per ARCH=DIR argument, under one name.
func runIndex(name, archive string, platforms []string) error {
	var imgs []testimage.Image
	seen := map[string]bool{}
	for _, p := range platforms {
		arch, dir, ok := strings.Cut(p, "=")
		if !ok || arch == "" || dir == "" {
			return fmt.Errorf("%q: want ARCH=DIR", p)
		}
		if seen[arch] {
			return fmt.Errorf("architecture %s twice", arch)
		}
		seen[arch] = true
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		var files []string
		for _, e := range entries {
			if e.Type().IsRegular() {
				files = append(files, filepath.Join(dir, e.Name()))
			}
		}
		if len(files) == 0 {
			return fmt.Errorf("%s: no files for %s", dir, arch)
		}
		img, err := image(name, arch, files)
		if err != nil {
			return err
		}
		imgs = append(imgs, img)
	}
	return testimage.WriteIndexArchive(name, imgs, archive)
}

// image holds files, each executable at the root.
func image(name, arch string, files []string) (testimage.Image, error) {
	img := testimage.Image{Name: name, Arch: arch}
	seen := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return img, err
		}
		base := filepath.Base(f)
		if seen[base] {
			return img, fmt.Errorf("two files named %s", base)
		}
		seen[base] = true
		img.Files = append(img.Files, testimage.File{Path: base, Data: data, Mode: 0o755})
	}
	return img, nil
}
