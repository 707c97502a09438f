package runcmonitor

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	runc "github.com/containerd/go-runc"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/reaptest"
)

// TestWaitWhileExitQueueIsFull: a runc command's exit reaches its waiter at
// once while another subscriber of the reaper takes no exits, as runc.v2's
// exit handler takes none while it waits for a `runc kill --all`. The
// reaper then hands over one exit a second; the stock monitor waits behind
// every exit queued before the command's.
func TestWaitWhileExitQueueIsFull(t *testing.T) {
	reaptest.Children(t)
	clogged := reaper.Default.Subscribe() // read by no one, as a busy exit handler's
	t.Cleanup(func() { reaper.Default.Unsubscribe(clogged) })
	const queued = 32 + 15 // the subscription's buffer, then a second per exit
	for range queued {
		child := exec.Command("true")
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		waitGone(t, child.Process.Pid)
	}

	m := New(reaper.Default)
	start := time.Now()
	status := run(t, m, exec.Command("sh", "-c", "exit 3"))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the command's exit took %v to reach its waiter behind %d queued exits", took.Round(time.Millisecond), queued)
	}
	if status != 3 {
		t.Errorf("exit status %d, want 3", status)
	}
}

// TestWaitStatus: statuses as the reaper reports them, whether the monitor
// or the reaper reaps the command.
func TestWaitStatus(t *testing.T) {
	m := New(reaper.Default)
	for _, tc := range []struct {
		name   string
		script string
		want   int
	}{
		{"exit 0", "exit 0", 0},
		{"exit 7", "exit 7", 7},
		{"SIGKILL", "kill -9 $$", 128 + 9},
	} {
		// No reaper loop runs here: only the monitor reaps.
		t.Run(tc.name+" reaped by the monitor", func(t *testing.T) {
			if got := run(t, m, exec.Command("sh", "-c", tc.script)); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
		t.Run(tc.name+" reaped by the reaper first", func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tc.script)
			ec, err := m.Start(cmd)
			if err != nil {
				t.Fatal(err)
			}
			waitZombie(t, cmd.Process.Pid)
			if err := reaper.Reap(); err != nil {
				t.Fatal(err)
			}
			got, err := m.Wait(cmd, ec)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
	if n := kept(m); n != 0 {
		t.Errorf("%d pidfds kept after every command was waited for", n)
	}
}

// TestWaitRacingTheReaper: commands with output, their exits raced for by
// the reaper's loop as in the shim; each gives its status and its whole
// output, whoever reaps it.
func TestWaitRacingTheReaper(t *testing.T) {
	reaptest.Children(t)
	m := New(reaper.Default)
	for i := range 200 {
		var out bytes.Buffer
		cmd := exec.Command("sh", "-c", "echo out; exit 5")
		cmd.Stdout = &out
		if status := run(t, m, cmd); status != 5 || out.String() != "out\n" {
			t.Fatalf("command %d: status %d, output %q; want 5, %q", i, status, out.String(), "out\n")
		}
	}
}

// TestPidfdOfACommandNeverWaitedFor: go-runc leaves a command it started
// unwaited for when the command's I/O fails; its pidfd closes, and its
// subscription ends, once the command is collected.
func TestPidfdOfACommandNeverWaitedFor(t *testing.T) {
	reaptest.Children(t)
	m := New(reaper.Default)
	ec, err := m.Start(exec.Command("true"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for kept(m) > 0 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := kept(m); n > 0 {
		t.Fatalf("%d pidfds kept for a command collected without Wait", n)
	}
	for {
		select {
		case _, open := <-ec:
			if !open {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the reaper still reports exits to the subscription of a command collected without Wait")
		}
	}
}

// TestOtherExitsFlowWhileACommandRuns: while a runc command runs, the
// reaper hands the shim's other exits on at once, as with the stock
// monitor, which reads the command's subscription as it waits; one left
// unread fills after 32 exits, then holds each further exit a second.
func TestOtherExitsFlowWhileACommandRuns(t *testing.T) {
	reaptest.Children(t)
	m := New(reaper.Default)
	long := exec.Command("sleep", "60")
	ec, err := m.Start(long)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { _, _ = m.Wait(long, ec); close(waited) }()
	defer func() { _ = long.Process.Kill(); <-waited }()

	other := reaper.Default.Subscribe()
	defer reaper.Default.Unsubscribe(other)
	const exits = 32 + 16
	pids := map[int]bool{}
	for range exits {
		child := exec.Command("true")
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		pids[child.Process.Pid] = true
	}
	start := time.Now()
	deadline := time.After(4 * time.Second) // unread: 16 s and more
	for len(pids) > 0 {
		select {
		case e := <-other:
			delete(pids, e.Pid)
		case <-deadline:
			t.Fatalf("%d of %d exits still not handed on after %v while a command ran", len(pids), exits, time.Since(start).Round(time.Millisecond))
		}
	}
}

func kept(m *Monitor) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pidfds)
}

func run(t *testing.T, m runc.ProcessMonitor, cmd *exec.Cmd) int {
	t.Helper()
	ec, err := m.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	status, err := m.Wait(cmd, ec)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// waitZombie waits until pid has exited and waits to be reaped.
func waitZombie(t *testing.T, pid int) {
	t.Helper()
	if state := waitState(t, pid); state != "Z" {
		t.Fatalf("process %d was reaped before the test could", pid)
	}
}

// waitGone waits until pid has exited, reaped or not.
func waitGone(t *testing.T, pid int) { waitState(t, pid) }

// waitState polls pid until it is a zombie ("Z") or gone ("").
func waitState(t *testing.T, pid int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return "" // gone, or going
		}
		if err != nil {
			t.Fatal(err)
		}
		if fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); fields[0] == "Z" {
			return "Z"
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("process %d did not exit", pid)
	return ""
}
