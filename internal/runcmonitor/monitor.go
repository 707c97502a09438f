// Package runcmonitor waits for the runc commands of containerd's runc task
// service on each command's own process, not on the shim's reaper queue.
package runcmonitor

import (
	"errors"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// Monitor is a runc.ProcessMonitor over the reaper.
//
// The reaper hands every exit of the shim's children to every subscriber
// in turn, waiting up to a second per exit for all of them to take it.
// runc.v2's exit handler is one goroutine reading one such subscription.
// When a container whose PID namespace is the pod's exits, that handler
// itself runs `runc kill --all`, then waits for the runc's exit. A shim
// serving many pods that are removed together queues more exits than the
// handler's subscription holds: the reaper then hands over one exit a
// second, the runc the handler waits for among them, while the handler
// drains nothing (docs/failure-model.md). Waiting on the runc process
// itself, through a pidfd, breaks that loop. The reaper stays the path
// where pidfds are missing, or for a runc it reaped first.
type Monitor struct {
	reaper *reaper.Monitor

	mu     sync.Mutex
	pidfds map[chan runc.Exit]int // a started command's subscription -> its pidfd
}

// New returns a Monitor that subscribes each command to r, as the stock
// monitor does, and waits on the command's pidfd where it has one.
func New(r *reaper.Monitor) *Monitor {
	return &Monitor{reaper: r, pidfds: map[chan runc.Exit]int{}}
}

// Start starts c, subscribed to the reaper, and keeps a pidfd for it.
func (m *Monitor) Start(c *exec.Cmd) (chan runc.Exit, error) {
	pidfd := askPidfd(c)
	ec, err := m.reaper.Start(c)
	if err != nil {
		return nil, err
	}
	if *pidfd >= 0 {
		m.keep(ec, *pidfd)
		// go-runc returns without Wait when a start's I/O fails after the
		// start: the pidfd and the subscription go with the command.
		runtime.AddCleanup(c, m.forget, ec)
	}
	return ec, nil
}

// StartLocked is Start from a locked OS thread, for a command whose
// parent-death signal must outlive no thread.
func (m *Monitor) StartLocked(c *exec.Cmd) (chan runc.Exit, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return m.Start(c)
}

// Wait returns c's exit status. It reaps c on its pidfd, unless the reaper
// reaped it first and so reports it. Meanwhile it takes every exit the
// reaper offers c's subscription, as the stock wait does: a subscription
// nobody reads fills, then costs the reaper a second per exit of the shim.
// cmd.Wait runs once either way: it ends c's I/O copies, and a second call
// would block for ever.
func (m *Monitor) Wait(c *exec.Cmd, ec chan runc.Exit) (int, error) {
	pidfd := m.take(ec)
	if pidfd < 0 {
		return m.reaper.Wait(c, ec)
	}
	reported := make(chan int, 1)
	go drain(ec, c.Process.Pid, reported)
	status, err := reap(pidfd)
	unix.Close(pidfd)
	if err != nil {
		// ECHILD: the reaper reaped c first. Any other error is a kernel
		// whose pidfds cannot be waited on. The reaper reports c's exit.
		status = <-reported
	}
	m.reaper.Unsubscribe(ec) // ends drain
	_ = c.Wait()             // c is reaped: this only ends its I/O copies
	return status, nil
}

// drain takes ec's exits until ec is closed, reporting pid's first.
func drain(ec chan runc.Exit, pid int, reported chan<- int) {
	sent := false
	for e := range ec {
		if e.Pid == pid && !sent {
			reported <- e.Status
			sent = true
		}
	}
}

// askPidfd makes c's start return a pidfd for it in the int returned, which
// stays -1 where the kernel gives none.
func askPidfd(c *exec.Cmd) *int {
	pidfd := -1
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.SysProcAttr.PidFD = &pidfd
	return &pidfd
}

func (m *Monitor) keep(ec chan runc.Exit, pidfd int) {
	m.mu.Lock()
	m.pidfds[ec] = pidfd
	m.mu.Unlock()
}

// forget closes ec's pidfd and subscription unless Wait took them.
func (m *Monitor) forget(ec chan runc.Exit) {
	if pidfd := m.take(ec); pidfd >= 0 {
		unix.Close(pidfd)
		m.reaper.Unsubscribe(ec)
	}
}

// take returns ec's pidfd, or -1, and forgets it.
func (m *Monitor) take(ec chan runc.Exit) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	pidfd, ok := m.pidfds[ec]
	if !ok {
		return -1
	}
	delete(m.pidfds, ec)
	return pidfd
}

// sigchld is the kernel's siginfo as waitid fills it for a child, on
// 64-bit Linux, the shim's architectures (unix.Siginfo leaves the union
// unnamed).
type sigchld struct {
	Signo  int32
	Errno  int32
	Code   int32
	_      int32
	Pid    int32
	UID    uint32
	Status int32
	_      [100]byte
}

// cldExited is siginfo's code for a child that exited (the others: a
// signal ended it).
const cldExited = 1

// reap waits for the process of pidfd to exit and reaps it, returning its
// status as the reaper reports it: 128 plus the signal for a process a
// signal ended. It fails with ECHILD if another wait reaped it first.
func reap(pidfd int) (int, error) {
	var info sigchld
	for {
		err := unix.Waitid(unix.P_PIDFD, pidfd, (*unix.Siginfo)(unsafe.Pointer(&info)), unix.WEXITED, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, err
		}
		break
	}
	if info.Code == cldExited {
		return int(info.Status), nil
	}
	return 128 + int(info.Status), nil // CLD_KILLED, CLD_DUMPED
}

var _ [128 - unsafe.Sizeof(sigchld{})]struct{} // the kernel's siginfo is 128 bytes
var _ [unsafe.Sizeof(sigchld{}) - 128]struct{}
