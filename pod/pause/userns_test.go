package pause

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// joinsUsernsConfig starts a pause task that holds a user namespace and a
// network namespace owned by it, as CRI makes them for a pod with
// hostUsers: false, and returns the configuration of a pause task that
// joins them (the -U path).
func joinsUsernsConfig(t *testing.T) Config {
	t.Helper()
	c := rootConfig(t)
	c.UIDMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 200000, Size: 65536}}
	c.GIDMappings = c.UIDMappings
	holder, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Signal(syscall.SIGKILL); <-holder.Done() })
	c.NewNetwork, c.NetNSPath = false, "/proc/"+strconv.Itoa(holder.Pid)+"/ns/net"
	return c
}

// stopAtEnd kills p when the test ends and waits for it.
func stopAtEnd(t *testing.T, p *Process) {
	t.Cleanup(func() { _ = p.Signal(syscall.SIGKILL); <-p.Done() })
}

// parentOf reads the parent's pid from /proc/PID/status.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatalf("/proc/%d/status has no PPid", pid)
	return 0
}

// waitGone waits until no process (not even a zombie) has any of pids.
func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pid %d still in use", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// startAt starts a process with exactly pid (testdata/samepid.c) and returns
// a pidfd of it; the process is killed when the test ends.
func startAt(t *testing.T, pid int) int {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("needs gcc (Debian package gcc; hack/deps.sh installs it)")
	}
	bin := filepath.Join(t.TempDir(), "samepid")
	if b, err := exec.Command("gcc", "-O2", "-Wall", "-Werror", "-o", bin, filepath.Join("testdata", "samepid.c")).CombinedOutput(); err != nil {
		t.Fatalf("build samepid: %v\n%s", err, b)
	}
	cmd := exec.Command(bin, strconv.Itoa(pid))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if got, _ := strconv.Atoi(strings.TrimSpace(line)); got != pid {
		t.Fatalf("samepid %d: started %q", pid, line)
	}
	// samepid waits for its child: the pid names it until we kill it.
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		unix.Close(fd)
		_ = cmd.Wait()
	})
	return fd
}

// diedWithin tells whether the process of pidfd exits within d.
func diedWithin(fd int, d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, _ := unix.Poll(fds, int(d.Milliseconds()))
	return n > 0
}
