package proc

import (
	"os"
	"os/exec"
	"testing"
)

func TestReadStat(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep to start: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	st, err := ReadStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.PPid != os.Getpid() || st.Start == 0 || (st.State != 'S' && st.State != 'R') {
		t.Errorf("stat of a sleeping child: %+v, want parent %d, a start time, state S or R", st, os.Getpid())
	}
	again, err := StartTime(cmd.Process.Pid)
	if err != nil || again != st.Start {
		t.Errorf("start time read twice: %d then %d (%v)", st.Start, again, err)
	}
	if _, err := ReadStat(1 << 30); err == nil {
		t.Error("a pid that does not exist has a stat")
	}
}
