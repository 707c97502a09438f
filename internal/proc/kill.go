package proc

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// KillRecorded kills the process pid if it is still the one that started
// at start (clock ticks since boot), and waits up to timeout for it to be
// gone. It holds the process by a pidfd, opened before its start time is
// checked: once the check passes, the signal cannot reach another process
// that took the pid meanwhile. Without pidfds (Linux before 5.3, or a
// seccomp filter that refuses them) it checks the start time and signals
// the pid, as shims did before pidfds.
func KillRecorded(pid int, start uint64, timeout time.Duration) error {
	fd, err := pidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil // gone
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
		return killByPid(pid, start, timeout)
	case err != nil:
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if st, err := StartTime(pid); err != nil || st != start {
		return nil // another process, or none: the pause task is gone
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("pidfd_send_signal %d: %w", pid, err)
	}
	// The pidfd turns readable once the process has exited, reaped or not.
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("process %d still runs %s after SIGKILL", pid, timeout)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1)
		if err == nil && n > 0 {
			return nil
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for process %d: %w", pid, err)
		}
	}
}

// pidfdOpen is pidfd_open(2); tests take it away to check the fallback.
var pidfdOpen = unix.PidfdOpen

// killByPid is KillRecorded without a pidfd: between the check of the
// start time and the signal, the pid could in principle be reused.
func killByPid(pid int, start uint64, timeout time.Duration) error {
	if st, err := StartTime(pid); err != nil || st != start {
		return nil
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	waitGone(pid, start, timeout)
	return nil
}

// waitGone waits until pid no longer names the process that started at
// start; a zombie is gone for this purpose (its parent reaps it).
func waitGone(pid int, start uint64, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		st, err := ReadStat(pid)
		if err != nil || st.Start != start || st.State == 'Z' {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
