package pause

import (
	"bytes"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/reaptest"
)

func valid() Config {
	return Config{NewNetwork: true, NewIPC: true, NewUTS: true, NewPID: true, Hostname: "pod", UID: 65535, GID: 65535}
}

func TestArgs(t *testing.T) {
	c := valid()
	c.Sysctls = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "4096"}
	got := strings.Join(c.Args(), " ")
	want := "pause -l -h pod -s kernel/shmmax=4096 -s net/ipv4/ip_forward=1 -r -u 65535 -g 65535"
	if got != want {
		t.Fatalf("args %q, want %q", got, want)
	}
	c = valid()
	c.NewNetwork, c.NetNSPath = false, "/var/run/netns/x"
	if args := c.Args(); !slices.Contains(args, "-n") || slices.Contains(args, "-l") {
		t.Fatalf("joining a netns: %v", args)
	}
}

func TestValidate(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"root uid":              func(c *Config) { c.UID = 0 },
		"hostname without uts":  func(c *Config) { c.NewUTS = false },
		"long hostname":         func(c *Config) { c.Hostname = strings.Repeat("h", 65) },
		"join and new netns":    func(c *Config) { c.NetNSPath = "/x" },
		"host sysctl":           func(c *Config) { c.Sysctls = map[string]string{"kernel.panic": "1"} },
		"path escape sysctl":    func(c *Config) { c.Sysctls = map[string]string{"net/../../etc": "1"} },
		"net sysctl, host net":  func(c *Config) { c.NewNetwork = false; c.Sysctls = map[string]string{"net.core.somaxconn": "1"} },
		"ipc sysctl, host ipc":  func(c *Config) { c.NewIPC = false; c.Sysctls = map[string]string{"kernel.shmmax": "1"} },
		"sysctl value with NUL": func(c *Config) { c.Sysctls = map[string]string{"net.core.somaxconn": "1\x00"} },
	} {
		c := valid()
		mutate(&c)
		if err := c.Validate(); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: got %v, want invalid argument", name, err)
		}
	}
	c := valid()
	c.Sysctls = map[string]string{"net.ipv4.ping_group_range": "0 0", "fs.mqueue.msg_max": "10"}
	if err := c.Validate(); err != nil {
		t.Errorf("namespaced sysctls: %v", err)
	}
}

// rootConfig is a valid configuration for a pause task run by this test,
// which needs root.
func rootConfig(t *testing.T) Config {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the pause task makes namespaces and changes uid")
	}
	reaptest.Children(t)
	c := valid()
	return c
}

// TestPauseTask runs the embedded binary: it holds its namespaces, drops
// every privilege and exits 0 on SIGTERM.
func TestPauseTask(t *testing.T) {
	c := rootConfig(t)
	c.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "80"}
	p, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Uid:\t65535"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("pause task status lacks %q", want)
		}
	}
	host, _ := os.Readlink("/proc/self/ns/uts")
	pod, _ := os.Readlink("/proc/" + strconv.Itoa(p.Pid) + "/ns/uts")
	if host == pod {
		t.Error("pause task shares the host's UTS namespace")
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("pause task did not exit on SIGTERM")
	}
	if code, _ := p.Exit(); code != 0 {
		t.Errorf("exit status %d on SIGTERM, want 0", code)
	}
}

func TestPauseTaskReportsSetupFailure(t *testing.T) {
	c := rootConfig(t)
	c.NewNetwork, c.NetNSPath = false, "/proc/self/ns/ipc" // not a network namespace
	_, err := Start(c)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "join netns") {
		t.Fatalf("got %v, want the failed step", err)
	}
}

// TestSharedCopyReplacesATamperedFile: every shim executes the one copy in
// CacheDir, so a copy that differs from the embedded binary is replaced. It
// tampers with a copy of its own: pause tasks of other tests (package task
// runs at the same time) and of the host execute the one in CacheDir.
func TestSharedCopyReplacesATamperedFile(t *testing.T) {
	dir := t.TempDir()
	f, err := sharedCopy(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := f.Name()
	f.Close()
	if err := os.Chmod(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho not pause\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err = sharedCopy(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, _ := os.ReadFile(path)
	if !bytes.Equal(data, binary) {
		t.Error("the tampered copy was used")
	}
}

// TestPauseTaskInUserNamespace: with mappings the pause task holds a user
// namespace of the pod's own and runs in it as the pod's uid 65535.
func TestPauseTaskInUserNamespace(t *testing.T) {
	c := rootConfig(t)
	c.UIDMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 200000, Size: 65536}}
	c.GIDMappings = c.UIDMappings
	p, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Signal(syscall.SIGKILL); <-p.Done() }()
	pid := strconv.Itoa(p.Pid)
	uidMap, _ := os.ReadFile("/proc/" + pid + "/uid_map")
	if got := strings.Join(strings.Fields(string(uidMap)), " "); got != "0 200000 65536" {
		t.Errorf("uid_map %q", got)
	}
	status, _ := os.ReadFile("/proc/" + pid + "/status")
	for _, want := range []string{"Uid:\t265535\t265535", "CapEff:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("pause task status lacks %q", want)
		}
	}
	host, _ := os.Readlink("/proc/self/ns/user")
	if pod, _ := os.Readlink("/proc/" + pid + "/ns/user"); pod == host {
		t.Error("pause task is in the host's user namespace")
	}
}

// TestExecutableSkipsNoexecMounts: on a host that mounts /run noexec (Debian
// does), the pause task runs from the next directory that allows exec, and
// when none does the error names the noexec mount, never a bare EACCES.
func TestExecutableSkipsNoexecMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a noexec tmpfs")
	}
	noexec := t.TempDir()
	if err := syscall.Mount("tmpfs", noexec, "tmpfs", syscall.MS_NOEXEC|syscall.MS_NOSUID|syscall.MS_NODEV, "size=1m"); err != nil {
		t.Fatalf("mount a noexec tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(noexec, syscall.MNT_DETACH) })
	fallback := t.TempDir()

	reset := func(dirs ...string) {
		exeOnce, exePath, exeErr, execDirs = sync.Once{}, "", nil, dirs
	}
	saved := execDirs
	t.Cleanup(func() { reset(saved...) })

	reset(noexec+"/shared", fallback)
	path, err := executable()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(path, fallback+"/pause-") {
		t.Fatalf("pause runs from %s, want the exec-able fallback in %s", path, fallback)
	}
	c := rootConfig(t)
	p, err := Start(c)
	if err != nil {
		t.Fatalf("start from the fallback: %v", err)
	}
	_ = p.Signal(syscall.SIGTERM)
	<-p.Done()

	// Only noexec places: the memfd still runs it; the error path is
	// checked by asking for the shared copy alone.
	reset(noexec + "/shared")
	if path, err = executable(); err != nil || !strings.HasPrefix(path, "/proc/") {
		t.Fatalf("with /run noexec only: %q, %v; want the memfd", path, err)
	}
	f, err := sharedCopy(noexec + "/shared")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = executableHere(f.Name())
	if err == nil || !strings.Contains(err.Error(), "the mount at "+noexec+" is noexec") {
		t.Fatalf("got %v, want the noexec mount named", err)
	}
}

// TestPauseTaskOutlivesTheThreadThatStartedIt: Linux sends the parent-death
// signal when the forking thread exits, not the process, and a Go thread
// exits when a goroutine locked to it returns without unlocking (containerd's
// mount code does so on purpose). A pause task started from such a goroutine
// must live on: only the shim's death may kill it.
func TestPauseTaskOutlivesTheThreadThatStartedIt(t *testing.T) {
	c := rootConfig(t)
	type started struct {
		p   *Process
		err error
	}
	ch := make(chan started, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: this thread exits with the goroutine
		p, err := Start(c)
		ch <- started{p, err}
	}()
	s := <-ch
	if s.err != nil {
		t.Fatal(s.err)
	}
	defer func() { _ = s.p.Signal(syscall.SIGKILL); <-s.p.Done() }()
	select {
	case <-s.p.Done():
		status, _ := s.p.Exit()
		t.Fatalf("the pause task died (exit status %d) when the thread that started it exited", status)
	case <-time.After(time.Second):
	}
}

// reaperSubscribers counts the reaper's subscribers: each one is handed
// every exit of the shim's children.
func reaperSubscribers() int {
	return reflect.ValueOf(reaper.Default).Elem().FieldByName("subscribers").Len()
}

// A shim that serves many pods must not pay for each exit once per pod:
// however many pause tasks run, they share one reaper subscription, and
// each still gets its own exit.
func TestPauseTasksShareOneReaperSubscription(t *testing.T) {
	c := rootConfig(t)
	first, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	before := reaperSubscribers()
	procs := []*Process{first}
	for range 4 {
		p, err := Start(c)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	if got := reaperSubscribers(); got != before {
		t.Errorf("reaper subscribers: %d with 1 pause task, %d with 5", before, got)
	}
	_ = procs[2].Signal(syscall.SIGKILL)
	if status, _ := procs[2].Exit(); status != 128+int(syscall.SIGKILL) {
		t.Errorf("killed pause task: exit status %d, want %d", status, 128+int(syscall.SIGKILL))
	}
	for i, p := range procs {
		if i != 2 && p.Exited() {
			t.Errorf("pause task %d exited with another's exit", i)
		}
	}
	for _, p := range procs {
		_ = p.Signal(syscall.SIGTERM)
		<-p.Done()
	}
	if n := exits.count(); n != 0 {
		t.Errorf("%d exit waiters left after every pause task exited", n)
	}
}

// count is how many pause tasks wait for their exit.
func (w *exitWaiters) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.waiting)
}
