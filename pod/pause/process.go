package pause

import (
	"sync"
	"syscall"
	"time"
)

// Process is a running (or exited) pause task.
type Process struct {
	// Pid holds the pod's namespaces (/proc/Pid/ns/*): the pod's PID 1.
	Pid int
	// Pids are all its processes: with -U, a parent waiting for Pid too.
	Pids []int
	// StartTime is Pid's start time in clock ticks after boot (field 22
	// of /proc/Pid/stat), read once Pid was known to be the pause task's;
	// never 0. With Pid, it names the process where a pidfd cannot.
	StartTime uint64
	StartedAt time.Time

	done     chan struct{}
	status   int
	exitedAt time.Time

	// mu guards the targets: a pidfd is closed once the process has been
	// reaped, and must not be closed while a signal goes through it.
	mu sync.Mutex
	// child is the process started, podInit the pod's PID 1 (child
	// itself, except with -U); both nil once done.
	child, podInit *target
}

// Done is closed when the pause task has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited tells whether the pause task has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Exit returns the exit status and time; valid once Done is closed.
func (p *Process) Exit() (int, time.Time) {
	<-p.done
	return p.status, p.exitedAt
}

// Signal sends sig to the pod's PID 1 unless it has gone. It goes through
// a pidfd, or checks the start time where there is none: the pid alone
// could by then name another process.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.podInit == nil {
		return nil
	}
	return p.podInit.signal(sig)
}

// kill ends every process of the pause task that is known: the one started
// and, with -U, the pod's PID 1 (which would otherwise die only through
// its parent-death signal).
func (p *Process) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range []*target{p.podInit, p.child} {
		if t != nil {
			_ = t.signal(syscall.SIGKILL)
		}
	}
}

// release closes the pidfds once the process started has been reaped (with
// -U its parent has reaped the pod's PID 1 before, or PID 1 has been killed
// by its parent-death signal).
func (p *Process) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.podInit != p.child {
		p.podInit.close()
	}
	p.child.close()
	p.child, p.podInit = nil, nil
}
