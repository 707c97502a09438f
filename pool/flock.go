package pool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// How long each of the pool's users waits for its lock. A holder keeps it
// only for reading and writing records and starting a process, so a wait
// longer than these is a holder that is stuck (stopped, or hung on a
// file system), not a busy pool.
const (
	// StartLockTimeout bounds `shim start` and a shared shim's record
	// updates: past it the pod fails naming the holder, where it would
	// otherwise hang until containerd gave up on it.
	StartLockTimeout = 30 * time.Second
	// LeaveLockTimeout bounds `shim delete`'s share. containerd kills a
	// delete after its cleanup timeout (5 s unless configured), and the
	// pod's own cleanup comes after the pool's: a delete that waited
	// longer would die before it, leaving the pod's processes, mounts and
	// cgroups for some later delete. The pool's record of the pod is
	// repaired by the next start or delete in the pool that finds its
	// shim dead and its bundle gone.
	LeaveLockTimeout = 2 * time.Second
)

// flockExclusive takes an exclusive flock on f, waiting until ctx ends.
// On success the caller keeps f; on an error f is closed. When ctx ends
// first the error names the lock's holders, and the wait goes on in the
// background, which closes f (letting go of the lock) once it gets it.
func flockExclusive(ctx context.Context, f *os.File) error {
	fd := int(f.Fd())
	err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return err
	}
	st, serr := f.Stat()
	var (
		mu        sync.Mutex
		abandoned bool
		got       = make(chan error, 1)
	)
	go func() {
		err := flockWait(fd)
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			f.Close()
			return
		}
		got <- err
	}()
	select {
	case err := <-got:
		return closeOnError(f, err)
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case err := <-got:
		return closeOnError(f, err) // it came as ctx ended
	default:
	}
	abandoned = true
	holders := "unknown"
	if serr == nil {
		holders = lockHolders(st)
	}
	return fmt.Errorf("waited for the lock held by %s: %w", holders, ctx.Err())
}

func closeOnError(f *os.File, err error) error {
	if err != nil {
		f.Close()
	}
	return err
}

// flockWait waits for an exclusive flock on fd.
func flockWait(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// lockHolders names the processes that hold a lock on the file st
// describes, as the kernel lists them in /proc/locks ("pid 123"), for an
// operator to find the one that is stuck.
func lockHolders(st os.FileInfo) string {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return "unknown"
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	// "1: FLOCK  ADVISORY  WRITE 123 00:1a:4567 0 EOF"; a waiter's line
	// has "->" after the number.
	file := fmt.Sprintf("%02x:%02x:%d", unix.Major(sys.Dev), unix.Minor(sys.Dev), sys.Ino)
	var pids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] == "->" || fields[5] != file {
			continue
		}
		if _, err := strconv.Atoi(fields[4]); err == nil {
			pids = append(pids, "pid "+fields[4])
		}
	}
	if len(pids) == 0 {
		return "unknown"
	}
	return strings.Join(pids, ", ")
}
