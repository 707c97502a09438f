package pause

import (
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSignalSparesAProcessThatReusedThePid: with -U the pod's PID 1 is the
// shim's grandchild, reaped by its parent, not by the shim. Between its
// death and the shim learning of its parent's exit, its pid can name
// another process: a signal meant for the pause task must not reach it.
// The test holds the exit dispatch (a busy shim can be that slow) and puts
// a new process at the pid.
func TestSignalSparesAProcessThatReusedThePid(t *testing.T) {
	c := joinsUsernsConfig(t)
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
	victim := startAt(t, pid)
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Errorf("signal a pause task that has gone: %v", err)
	}
	if diedWithin(victim, 200*time.Millisecond) {
		t.Errorf("Signal killed pid %d, a process started after the pause task had gone", pid)
	}
	release()
	<-p.Done()
}
