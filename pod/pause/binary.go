package pause

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// CacheDir holds one copy of the pause binary that every shim executes, so
// the kernel shares its pages between all pods (a copy per shim would cost
// each pod its own). It is on tmpfs, only root writes there, and each shim
// checks the copy byte for byte before using it. Directory and file are
// open to all for execution: a pause task in a pod's user namespace runs
// it as a mapped, unprivileged host uid.
const CacheDir = "/run/containerd-shim-pause-v2"

var (
	exeOnce sync.Once
	exePath string
	exeErr  error
	// execDirs are where a shared copy may live, in order: CacheDir (tmpfs)
	// first, then what SetFallbackDir adds (on disk, for hosts that mount
	// /run noexec, as Debian's initramfs does).
	execDirs = []string{CacheDir}
)

// SetFallbackDir adds a directory for the shared copy, tried when the ones
// before it cannot hold an executable. Call it before the first Start.
func SetFallbackDir(dir string) { execDirs = append(execDirs, dir) }

// executable is the path to exec the pause binary from, settled once per
// shim: the shared copy in the first of execDirs whose mount allows exec
// (written if missing or different), else a sealed memfd of the shim's own,
// named through the shim's pid (not /proc/self: in the child, fd N may by
// then be one of the files passed to it). The memfd stays open for the life
// of the shim. When nothing can be executed, the error names each place and
// the mount that forbids it.
func executable() (string, error) {
	exeOnce.Do(func() {
		var why []string
		for _, dir := range execDirs {
			f, err := sharedCopy(dir)
			if err == nil {
				err = executableHere(f.Name())
				if err == nil {
					exePath = f.Name()
					f.Close()
					return
				}
				f.Close()
			}
			why = append(why, err.Error())
		}
		f, err := privateCopy()
		if err == nil {
			path := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
			if err = executableHere(path); err == nil {
				exePath = path
				return
			}
			f.Close()
			err = fmt.Errorf("memfd: %w (is vm.memfd_noexec set to 2?)", err)
		}
		why = append(why, err.Error())
		exeErr = fmt.Errorf("no place to execute the pause task from: %s; mount one of these directories with exec (or allow executable memfds): %w",
			strings.Join(why, "; "), errdefs.ErrFailedPrecondition)
	})
	return exePath, exeErr
}

// executableHere asks the kernel whether path may be executed (access(2)
// with X_OK fails on a noexec mount) and, if not, says which mount forbids it.
func executableHere(path string) error {
	err := unix.Faccessat(unix.AT_FDCWD, path, unix.X_OK, unix.AT_EACCESS)
	if err == nil {
		return nil
	}
	var st unix.Statfs_t
	if unix.Statfs(path, &st) == nil && st.Flags&unix.ST_NOEXEC != 0 {
		return fmt.Errorf("%s: the mount at %s is noexec", path, mountPoint(filepath.Dir(path)))
	}
	return fmt.Errorf("%s is not executable: %w", path, err)
}

// mountPoint is the top of the mount that holds dir: the highest ancestor
// on the same device.
func mountPoint(dir string) string {
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil {
		return dir
	}
	for {
		parent := filepath.Dir(dir)
		var pst unix.Stat_t
		if parent == dir || unix.Stat(parent, &pst) != nil || pst.Dev != st.Dev {
			return dir
		}
		dir = parent
	}
}

// emptyRoot is the directory every pause task chroots into: empty, root's,
// and open to all for traversal only (a pause task in a user namespace
// enters it as a mapped, unprivileged host uid), so no pause task can list
// or open anything through it.
func emptyRoot() (string, error) {
	dir := filepath.Join(CacheDir, "root")
	if err := os.MkdirAll(CacheDir, 0o711); err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o111); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	if err := os.Chmod(dir, 0o111); err != nil {
		return "", err
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		return "", fmt.Errorf("%s must be an empty directory (%d entries, %v): %w", dir, len(entries), err, errdefs.ErrFailedPrecondition)
	}
	return dir, nil
}

// sharedCopy opens dir/pause-<digest>, writing it first if needed, and
// returns it only if its bytes are the embedded binary's. It returns no
// file with an error.
func sharedCopy(dir string) (*os.File, error) {
	sum := sha256.Sum256(binary)
	path := filepath.Join(dir, "pause-"+hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	if f, err := openVerified(path); err == nil {
		if err := os.Chmod(path, 0o555); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	tmp, err := os.CreateTemp(dir, ".pause-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(binary); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Chmod(0o555); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	// Atomic: a shim starting at the same moment sees the whole file or none.
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, err
	}
	return openVerified(path)
}

func openVerified(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(len(binary))+1))
	if err != nil || !bytes.Equal(data, binary) {
		f.Close()
		return nil, fmt.Errorf("%s is not the pause binary", path)
	}
	return f, nil
}

// privateCopy is a sealed memfd of the binary, for a host where CacheDir
// cannot be written.
func privateCopy() (*os.File, error) {
	fd, err := unix.MemfdCreate("pause", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd for the pause task: %w", err)
	}
	f := os.NewFile(uintptr(fd), "pause")
	if _, err := f.Write(binary); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the pause task: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal the pause task: %w", err)
	}
	return f, nil
}
