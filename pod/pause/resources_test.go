package pause

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openFDs counts the test process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestStartSaysWhatRanOutOfDescriptors: a shim out of descriptors gets an
// error that says what the pause task was missing, not a bare EMFILE.
func TestStartSaysWhatRanOutOfDescriptors(t *testing.T) {
	c := rootConfig(t)
	if _, err := executable(); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe() // the poller is set up before descriptors run out
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Close()

	var saved unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	limit := saved
	limit.Cur = uint64(openFDs(t) + 64)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &limit); err != nil {
		t.Fatal(err)
	}
	var filler []int
	t.Cleanup(func() {
		for _, fd := range filler {
			unix.Close(fd)
		}
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &saved)
	})
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		filler = append(filler, fd)
	}
	// One descriptor free: enough for what comes before the pipe.
	unix.Close(filler[len(filler)-1])
	filler = filler[:len(filler)-1]

	p, err := Start(c)
	if err == nil {
		_ = p.Signal(syscall.SIGKILL)
		<-p.Done()
		t.Fatal("started with one descriptor free")
	}
	if !errors.Is(err, unix.EMFILE) || !strings.Contains(err.Error(), "pause task") {
		t.Fatalf("got %q, want EMFILE saying what it was for", err)
	}
}

// TestSharedCopyClosesWhatItOpened: a shared copy that cannot be used
// (here: its mode cannot be set, the file is immutable) leaves no
// descriptor open behind it; executable() tries it in every shim.
func TestSharedCopyClosesWhatItOpened(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes a file immutable")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	f, err := sharedCopy(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := f.Name()
	setFlags := func(flags int) {
		if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, flags); err != nil {
			t.Fatalf("set inode flags of %s: %v", path, err)
		}
	}
	setFlags(0x10) // FS_IMMUTABLE_FL (linux/fs.h)
	t.Cleanup(func() { setFlags(0); f.Close() })

	before := openFDs(t)
	g, err := sharedCopy(dir)
	if err == nil {
		g.Close()
		t.Fatal("an immutable copy whose mode cannot be set was used")
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after a failed sharedCopy, %d before (%v)", after, before, err)
	}
}
