package pause

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/proc"
)

// target names one process for signals, proof against pid reuse: a pid
// names another process as soon as its own has been reaped, and with -U the
// pod's PID 1 is reaped by its parent, unseen by the shim. A pidfd (Linux
// 5.3 and later) names the process itself; without one, the pid and the
// start time it had must both match.
type target struct {
	pid int
	fd  int // pidfd, or -1
	// start is the process's start time in clock ticks after boot
	// (/proc/PID/stat field 22); never 0.
	start uint64
}

// pidfdOpen is pidfd_open(2); a test replaces it to act as a kernel
// without it.
var pidfdOpen = func(pid int) (int, error) { return unix.PidfdOpen(pid, 0) }

// signal sends sig to the process unless it has gone: a gone process is
// not an error.
func (t *target) signal(sig syscall.Signal) error {
	var err error
	if t.fd >= 0 {
		err = unix.PidfdSendSignal(t.fd, sig, nil, 0)
	} else {
		// Between the check and kill(2) the pid could still change hands:
		// the narrow race that only a pidfd closes.
		if start, serr := proc.StartTime(t.pid); serr != nil || start != t.start {
			return nil
		}
		err = unix.Kill(t.pid, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// alive tells whether the process has not been reaped yet (a zombie is
// alive here: its pid is still its own).
func (t *target) alive() bool {
	if t.fd >= 0 {
		return unix.PidfdSendSignal(t.fd, 0, nil, 0) == nil
	}
	start, err := proc.StartTime(t.pid)
	return err == nil && start == t.start
}

func (t *target) close() {
	if t.fd >= 0 {
		unix.Close(t.fd)
		t.fd = -1
	}
}

// adopt returns the target of the pod's PID 1 as the -U parent reported
// it: pid must name a child of parent while parent has not been reaped,
// else pid may already name another process.
func adopt(pid int, parent *target) (*target, error) {
	t := &target{pid: pid, fd: -1}
	fd, err := pidfdOpen(pid)
	switch {
	case err == nil:
		t.fd = fd
	case errors.Is(err, unix.ENOSYS): // before Linux 5.3: pid and start time
	default:
		return nil, fmt.Errorf("pidfd of the pod's PID 1 (pid %d): %w", pid, err)
	}
	ppid, err := t.readStart()
	if err != nil {
		t.close()
		return nil, err
	}
	// The /proc read was of the process t names while that is unreaped,
	// and ppid named parent while parent is unreaped.
	if ppid != parent.pid || !t.alive() || !parent.alive() {
		t.close()
		return nil, fmt.Errorf("the pod's PID 1 (pid %d) is gone or not a child of the pause task (pid %d): %w", pid, parent.pid, errdefs.ErrFailedPrecondition)
	}
	return t, nil
}

// readStart records the process's start time and returns its parent's pid.
// With a pidfd, the read is checked to be of the pidfd's process.
func (t *target) readStart() (ppid int, err error) {
	st, err := proc.ReadStat(t.pid)
	if err == nil && t.fd >= 0 && !t.alive() {
		err = fmt.Errorf("pid %d exited", t.pid)
	}
	if err != nil {
		return 0, fmt.Errorf("identify the pause task: %w", err)
	}
	t.start = st.Start
	return st.PPid, nil
}
