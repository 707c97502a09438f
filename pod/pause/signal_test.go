package pause

import (
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/proc"
)

// TestSignalSparesAProcessThatReusedThePid: with -U the pod's PID 1 is the
// shim's grandchild, reaped by its parent, not by the shim. Between its
// death and the shim learning of its parent's exit, its pid can name
// another process: a signal meant for the pause task must not reach it.
// The test holds the exit dispatch (a busy shim can be that slow) and puts
// a new process at the pid; with a pidfd, and as on a kernel without
// pidfd_open (pid and start time).
func TestSignalSparesAProcessThatReusedThePid(t *testing.T) {
	for _, withPidfd := range []bool{true, false} {
		name := map[bool]string{true: "pidfd", false: "start time"}[withPidfd]
		t.Run(name, func(t *testing.T) {
			c := joinsUsernsConfig(t)
			if !withPidfd {
				saved := pidfdOpen
				pidfdOpen = func(int) (int, error) { return -1, unix.ENOSYS }
				t.Cleanup(func() { pidfdOpen = saved })
			}
			p, err := Start(c)
			if err != nil {
				t.Fatal(err)
			}
			pid := p.Pid
			exits.mu.Lock()
			held := true
			release := func() {
				if held {
					held = false
					exits.mu.Unlock()
				}
			}
			t.Cleanup(func() { release(); <-p.Done() })

			if err := unix.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitGone(t, p.Pids...)
			if p.Exited() {
				t.Fatal("the exit was dispatched although the dispatch was held")
			}
			// A later clock tick: the new process's start time differs,
			// as it does whenever a pid is reused.
			time.Sleep(20 * time.Millisecond)
			victim := startAt(t, pid)
			if err := p.Signal(syscall.SIGKILL); err != nil {
				t.Errorf("signal a pause task that has gone: %v", err)
			}
			if diedWithin(victim, 200*time.Millisecond) {
				t.Errorf("Signal killed pid %d, a process started after the pause task had gone", pid)
			}
			release()
			<-p.Done()
		})
	}
}

// TestSignalReachesTheUsernsPauseTask: with -U, Signal reaches the pod's
// PID 1 (its parent then exits as it does), and StartTime is PID 1's.
func TestSignalReachesTheUsernsPauseTask(t *testing.T) {
	c := joinsUsernsConfig(t)
	p, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, p)
	if start, err := proc.StartTime(p.Pid); err != nil || start != p.StartTime {
		t.Errorf("StartTime %d, /proc/%d/stat says %d (%v)", p.StartTime, p.Pid, start, err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the pause task did not exit on SIGTERM")
	}
	if code, _ := p.Exit(); code != 0 {
		t.Errorf("exit status %d on SIGTERM, want 0", code)
	}
}

// TestProcessClosesItsPidfds: the pidfds a pause task is signalled through
// are closed once it is done; a shim serves pods for a long time.
func TestProcessClosesItsPidfds(t *testing.T) {
	c := joinsUsernsConfig(t)
	before := openFDs(t)
	p, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after the pause task is done, %d before", after, before)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Errorf("signal after done: %v", err)
	}
}
