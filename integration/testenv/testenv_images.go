package testenv

import (
	"os"
	"os/exec"
	"path/filepath"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

// makeRootfs lays out a busybox root with the applets the tests use.
func makeRootfs(root string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return err
	}
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "shared"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		return err
	}
	for _, applet := range []string{"sh", "sleep", "ps", "nc", "hostname", "readlink", "cat", "echo", "tty", "true", "kill", "touch", "ls"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/:/bin/sh\n"), 0o644)
}

// importImages builds the test images from host files and imports them
// into CRI's namespace.
func (env *Env) importImages() error {
	img, err := testimage.Busybox(BusyboxImage, "sh", "sleep", "nc", "ps", "hostname", "cat", "echo",
		"readlink", "ls", "id", "tty", "head", "dd", "true", "rm", "grep", "date")
	if err != nil {
		return err
	}
	archive := filepath.Join(env.Dir, "busybox.tar")
	if err := testimage.WriteArchive(img, archive); err != nil {
		return err
	}
	return testimage.Import(env.CtrArgs(CRINamespace), archive)
}
