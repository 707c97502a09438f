package proc

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/reaptest"
)

// TestKillRecordedWithAndWithoutPidfd: `shim delete` kills the recorded
// pause task through a pidfd, or, where pidfds are missing, by its pid and
// start time; either way a pid now held by another process is spared.
func TestKillRecordedWithAndWithoutPidfd(t *testing.T) {
	for _, pidfds := range []bool{true, false} {
		name := map[bool]string{true: "pidfd", false: "no pidfd"}[pidfds]
		t.Run(name, func(t *testing.T) {
			opened := 0
			pidfdOpen = func(pid, flags int) (int, error) {
				opened++
				if !pidfds {
					return -1, unix.ENOSYS
				}
				return unix.PidfdOpen(pid, flags)
			}
			t.Cleanup(func() { pidfdOpen = unix.PidfdOpen })
			cmd, done := reaptest.Sleeper(t)
			start, err := StartTime(cmd.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			if err := KillRecorded(cmd.Process.Pid, start+1, time.Second); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
				t.Fatal("a process with the recorded pid but another start time was killed")
			case <-time.After(100 * time.Millisecond):
			}
			if err := KillRecorded(cmd.Process.Pid, start, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the recorded process was not killed")
			}
			if opened != 2 {
				t.Errorf("pidfd_open tried %d times, want 2", opened)
			}
		})
	}
}
