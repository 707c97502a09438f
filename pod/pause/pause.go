// Package pause runs a pod's built-in pause task: a freestanding binary
// (c/pause.c), embedded in the shim, that holds the pod's namespaces, reaps
// the pod's orphans and exits 0 on SIGTERM, confined by a seccomp filter
// from its ready report on. It runs from one copy that every shim shares (in
// CacheDir, else in the directory SetFallbackDir gives: containerd's root),
// else from a sealed memfd of the shim's own. It needs no image and no runc
// call, and costs a few kilobytes.
package pause

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// readyTimeout bounds the pause task's setup (join netns, hostname, lo up).
const readyTimeout = 10 * time.Second

// Config says which namespaces the pause task creates or joins and how it
// drops its privileges.
type Config struct {
	// NetNSPath is a network namespace to join (CRI and CNI made it).
	NetNSPath string
	// NewNetwork creates a network namespace with lo up (when NetNSPath is empty).
	NewNetwork bool
	NewIPC     bool
	NewUTS     bool
	// NewPID makes the pause task PID 1 of a new PID namespace.
	NewPID   bool
	Hostname string
	// Sysctls are namespaced sysctls ("net.ipv4.ip_forward": "1").
	Sysctls map[string]string
	UID     uint32
	GID     uint32
	// UIDMappings and GIDMappings, when set, put the pause task in a user
	// namespace of the pod's own; its other new namespaces belong to it.
	// UID and GID are then IDs inside it.
	UIDMappings []syscall.SysProcIDMap
	GIDMappings []syscall.SysProcIDMap
}

// Validate reports a configuration the pause task cannot honour.
func (c Config) Validate() error {
	if !c.NewUTS && c.Hostname != "" {
		return fmt.Errorf("hostname %q needs a UTS namespace of the pod's own: %w", c.Hostname, errdefs.ErrInvalidArgument)
	}
	if len(c.Hostname) > 64 {
		return fmt.Errorf("hostname %q is longer than 64 bytes: %w", c.Hostname, errdefs.ErrInvalidArgument)
	}
	if c.NetNSPath != "" && c.NewNetwork {
		return fmt.Errorf("both a network namespace to join and a new one: %w", errdefs.ErrInvalidArgument)
	}
	if c.UID == 0 && len(c.UIDMappings) == 0 {
		return fmt.Errorf("the pause task must not run as root: %w", errdefs.ErrInvalidArgument)
	}
	if (len(c.UIDMappings) == 0) != (len(c.GIDMappings) == 0) {
		return fmt.Errorf("a user namespace needs both UID and GID mappings: %w", errdefs.ErrInvalidArgument)
	}
	for k, v := range c.Sysctls {
		if err := c.validateSysctl(k, v); err != nil {
			return err
		}
	}
	return nil
}

// validateSysctl accepts only sysctls that live in a namespace the pod owns,
// as runc does: anything else would change the host.
func (c Config) validateSysctl(key, value string) error {
	bad := func(why string) error {
		return fmt.Errorf("sysctl %q: %s: %w", key, why, errdefs.ErrInvalidArgument)
	}
	if key == "" || strings.Contains(key, "..") || strings.ContainsAny(key, "= \x00") ||
		strings.HasPrefix(key, ".") || strings.HasPrefix(key, "/") || strings.ContainsAny(value, "\x00") {
		return bad("malformed")
	}
	k := strings.ReplaceAll(key, "/", ".")
	ipc := map[string]bool{"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true,
		"kernel.sem": true, "kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true,
		"kernel.shm_rmid_forced": true}
	switch {
	case ipc[k] || strings.HasPrefix(k, "fs.mqueue."):
		if !c.NewIPC {
			return bad("the pod shares the host's IPC namespace")
		}
	case strings.HasPrefix(k, "net."):
		if !c.NewNetwork && c.NetNSPath == "" {
			return bad("the pod shares the host's network namespace")
		}
	default:
		return bad("not a namespaced sysctl")
	}
	return nil
}

// Args is the pause task's command line for this configuration.
func (c Config) Args() []string {
	args := []string{"pause"}
	ids := []string{"-r", "-u", strconv.FormatUint(uint64(c.UID), 10), "-g", strconv.FormatUint(uint64(c.GID), 10)}
	switch {
	case c.joinsUserns():
		// Credentials first: -U forks, and both processes drop to them.
		args = append(append(args, ids...), "-U", c.NetNSPath)
		ids = nil
	case c.NetNSPath != "":
		args = append(args, "-n", c.NetNSPath)
	}
	if c.NewNetwork {
		args = append(args, "-l")
	}
	if c.Hostname != "" {
		args = append(args, "-h", c.Hostname)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Sysctls)) {
		args = append(args, "-s", strings.ReplaceAll(k, ".", "/")+"="+c.Sysctls[k])
	}
	return append(args, ids...)
}

// userns tells whether the pause task holds a user namespace of the pod's.
func (c Config) userns() bool { return len(c.UIDMappings) > 0 }

// joinsUserns: CRI made the pod's network namespace inside the pod's user
// namespace; the pause task joins both (and makes the rest) itself, since
// the pod's containers must mount sysfs in a network namespace their user
// namespace owns. A host-network pod gets a new user namespace instead.
func (c Config) joinsUserns() bool { return c.userns() && c.NetNSPath != "" }

func (c Config) cloneflags() uintptr {
	if c.joinsUserns() {
		return 0
	}
	var f uintptr
	for _, ns := range []struct {
		on   bool
		flag uintptr
	}{{c.userns(), unix.CLONE_NEWUSER}, {c.NewNetwork, unix.CLONE_NEWNET}, {c.NewIPC, unix.CLONE_NEWIPC}, {c.NewUTS, unix.CLONE_NEWUTS}, {c.NewPID, unix.CLONE_NEWPID}} {
		if ns.on {
			f |= ns.flag
		}
	}
	return f
}

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

// CacheDir holds one copy of the pause binary that every shim executes, so
// the kernel shares its pages between all pods (a copy per shim would cost
// each pod its own). It is on tmpfs, only root writes there, and each shim
// checks the copy byte for byte before using it. Directory and file are
// open to all for execution: a pause task in a pod's user namespace runs
// it as a mapped, unprivileged host uid.
const CacheDir = "/run/containerd-shim-pause-v2"

var (
	exeOnce sync.Once
	exePath string
	exeErr  error
	// execDirs are where a shared copy may live, in order: CacheDir (tmpfs)
	// first, then what SetFallbackDir adds (on disk, for hosts that mount
	// /run noexec, as Debian's initramfs does).
	execDirs = []string{CacheDir}
)

// SetFallbackDir adds a directory for the shared copy, tried when the ones
// before it cannot hold an executable. Call it before the first Start.
func SetFallbackDir(dir string) { execDirs = append(execDirs, dir) }

// executable is the path to exec the pause binary from, settled once per
// shim: the shared copy in the first of execDirs whose mount allows exec
// (written if missing or different), else a sealed memfd of the shim's own,
// named through the shim's pid (not /proc/self: in the child, fd N may by
// then be one of the files passed to it). The memfd stays open for the life
// of the shim. When nothing can be executed, the error names each place and
// the mount that forbids it.
func executable() (string, error) {
	exeOnce.Do(func() {
		var why []string
		for _, dir := range execDirs {
			f, err := sharedCopy(dir)
			if err == nil {
				err = executableHere(f.Name())
				if err == nil {
					exePath = f.Name()
					f.Close()
					return
				}
				f.Close()
			}
			why = append(why, err.Error())
		}
		f, err := privateCopy()
		if err == nil {
			path := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
			if err = executableHere(path); err == nil {
				exePath = path
				return
			}
			f.Close()
			err = fmt.Errorf("memfd: %w (is vm.memfd_noexec set to 2?)", err)
		}
		why = append(why, err.Error())
		exeErr = fmt.Errorf("no place to execute the pause task from: %s; mount one of these directories with exec (or allow executable memfds): %w",
			strings.Join(why, "; "), errdefs.ErrFailedPrecondition)
	})
	return exePath, exeErr
}

// executableHere asks the kernel whether path may be executed (access(2)
// with X_OK fails on a noexec mount) and, if not, says which mount forbids it.
func executableHere(path string) error {
	err := unix.Faccessat(unix.AT_FDCWD, path, unix.X_OK, unix.AT_EACCESS)
	if err == nil {
		return nil
	}
	var st unix.Statfs_t
	if unix.Statfs(path, &st) == nil && st.Flags&unix.ST_NOEXEC != 0 {
		return fmt.Errorf("%s: the mount at %s is noexec", path, mountPoint(filepath.Dir(path)))
	}
	return fmt.Errorf("%s is not executable: %w", path, err)
}

// mountPoint is the top of the mount that holds dir: the highest ancestor
// on the same device.
func mountPoint(dir string) string {
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil {
		return dir
	}
	for {
		parent := filepath.Dir(dir)
		var pst unix.Stat_t
		if parent == dir || unix.Stat(parent, &pst) != nil || pst.Dev != st.Dev {
			return dir
		}
		dir = parent
	}
}

// emptyRoot is the directory every pause task chroots into: empty, root's,
// and open to all for traversal only (a pause task in a user namespace
// enters it as a mapped, unprivileged host uid), so no pause task can list
// or open anything through it.
func emptyRoot() (string, error) {
	dir := filepath.Join(CacheDir, "root")
	if err := os.MkdirAll(CacheDir, 0o711); err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o111); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	if err := os.Chmod(dir, 0o111); err != nil {
		return "", err
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		return "", fmt.Errorf("%s must be an empty directory (%d entries, %v): %w", dir, len(entries), err, errdefs.ErrFailedPrecondition)
	}
	return dir, nil
}

// sharedCopy opens dir/pause-<digest>, writing it first if needed, and
// returns it only if its bytes are the embedded binary's. It returns no
// file with an error.
func sharedCopy(dir string) (*os.File, error) {
	sum := sha256.Sum256(binary)
	path := filepath.Join(dir, "pause-"+hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	if f, err := openVerified(path); err == nil {
		if err := os.Chmod(path, 0o555); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	tmp, err := os.CreateTemp(dir, ".pause-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(binary); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Chmod(0o555); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	// Atomic: a shim starting at the same moment sees the whole file or none.
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, err
	}
	return openVerified(path)
}

func openVerified(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(len(binary))+1))
	if err != nil || !bytes.Equal(data, binary) {
		f.Close()
		return nil, fmt.Errorf("%s is not the pause binary", path)
	}
	return f, nil
}

// privateCopy is a sealed memfd of the binary, for a host where CacheDir
// cannot be written.
func privateCopy() (*os.File, error) {
	fd, err := unix.MemfdCreate("pause", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd for the pause task: %w", err)
	}
	f := os.NewFile(uintptr(fd), "pause")
	if _, err := f.Write(binary); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the pause task: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal the pause task: %w", err)
	}
	return f, nil
}

// forkRequest asks the forker to start cmd.
type forkRequest struct {
	cmd   *exec.Cmd
	reply chan<- forkResult
}

type forkResult struct {
	exit <-chan int
	err  error
}

var (
	forkerOnce sync.Once
	forks      = make(chan forkRequest)
)

// fork starts cmd from the forker's thread; the channel returned receives
// its exit status once the reaper has reaped it.
func fork(cmd *exec.Cmd) (<-chan int, error) {
	forkerOnce.Do(func() {
		exits.subscribe()
		go forker()
	})
	reply := make(chan forkResult, 1)
	forks <- forkRequest{cmd: cmd, reply: reply}
	r := <-reply
	return r.exit, r.err
}

// forker forks every pause task from one OS thread that lives as long as
// the shim. The pause task's parent-death signal (SIGKILL, so that it dies
// with the shim) is bound by Linux to the thread that forked it, not to the
// process: forked from any other thread, it would die whenever the Go
// runtime ends that thread, as it does when a goroutine locked to a thread
// returns without unlocking it (containerd's mount code does so on purpose).
func forker() {
	runtime.LockOSThread() // never unlocked, and forker never returns
	for r := range forks {
		exit, err := exits.start(r.cmd)
		r.reply <- forkResult{exit: exit, err: err}
	}
}

// exits hands each pause task's exit to its waiter. The reaper hands every
// exit of the shim's children (containers, execs, runc) to every
// subscriber: a subscription per pause task would make each exit cost as
// many sends as the shim has pods. One subscription serves them all.
var exits = exitWaiters{waiting: map[int]chan int{}}

type exitWaiters struct {
	mu      sync.Mutex
	waiting map[int]chan int
}

// subscribe starts the one subscription and its dispatch.
func (w *exitWaiters) subscribe() {
	ec := reaper.Default.Subscribe()
	go func() {
		for e := range ec {
			w.mu.Lock()
			ch, ok := w.waiting[e.Pid]
			delete(w.waiting, e.Pid)
			w.mu.Unlock()
			if ok {
				ch <- e.Status
			}
		}
	}()
}

// start starts cmd and registers it, both under the lock: its exit, even
// an immediate one, is dispatched only after that.
func (w *exitWaiters) start(cmd *exec.Cmd) (<-chan int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan int, 1)
	w.waiting[cmd.Process.Pid] = ch
	return ch, nil
}

// Start runs the pause task and returns once its namespaces are ready.
func Start(cfg Config) (*Process, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	path, err := executable()
	if err != nil {
		return nil, err
	}
	root, err := emptyRoot()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe for the pause task's ready report: %w", err)
	}
	defer r.Close()

	pidfd := -1
	cmd := &exec.Cmd{
		Path:       path,
		Args:       cfg.Args(),
		Dir:        root,
		ExtraFiles: []*os.File{w},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: cfg.cloneflags(),
			Setsid:     true,
			Pdeathsig:  syscall.SIGKILL,
			PidFD:      &pidfd,
		},
	}
	if cfg.userns() && !cfg.joinsUserns() {
		// A new user namespace with the pod's mappings; become its root (a
		// mapped host uid): the host's root is not mapped in it.
		cmd.SysProcAttr.UidMappings, cmd.SysProcAttr.GidMappings = cfg.UIDMappings, cfg.GIDMappings
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true // the pause task drops its groups
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	exit, err := fork(cmd)
	w.Close()
	if errors.Is(err, unix.EACCES) {
		// access(2) allowed it, exec did not (an LSM, or the mount changed).
		return nil, fmt.Errorf("start the pause task from %s (mount %s): %w: %w", path, mountPoint(filepath.Dir(path)), err, errdefs.ErrFailedPrecondition)
	}
	if err != nil {
		return nil, fmt.Errorf("start the pause task: %w", err)
	}
	p := &Process{Pid: cmd.Process.Pid, Pids: []int{cmd.Process.Pid}, StartedAt: time.Now(), done: make(chan struct{})}
	// Its start time: for signals where there is no pidfd, and for
	// StartTime. An error here means it has already exited (its report,
	// read below, says why) or, without a pidfd, that its pid cannot be
	// told from another's: then it gets no signal.
	child := &target{pid: cmd.Process.Pid, fd: pidfd}
	_, idErr := child.readStart()
	p.child, p.podInit, p.StartTime = child, child, child.start
	go func() {
		status := <-exit
		_ = cmd.Wait() // already reaped: this releases what exec holds
		// Wait failed (ECHILD), which leaves the os.Process's own pidfd
		// open until a garbage collection: close it now.
		_ = cmd.Process.Release()
		p.release()
		p.status, p.exitedAt = status, time.Now()
		close(p.done)
	}()

	_ = r.SetReadDeadline(time.Now().Add(readyTimeout))
	msg, err := io.ReadAll(io.LimitReader(r, 4096))
	pid, perr := parseReady(msg, cfg.joinsUserns())
	if err == nil && perr == nil && pid > 0 {
		perr = p.adopt(pid)
	} else if err == nil && perr == nil {
		perr = idErr
	}
	if err == nil && perr == nil {
		return p, nil
	}
	p.kill()
	<-p.done
	if err != nil {
		return nil, fmt.Errorf("pause task did not get ready: %w", err)
	}
	return nil, fmt.Errorf("%w (exit status %d)", perr, p.status)
}

// adopt makes pid, the -U parent's child, the pod's PID 1.
func (p *Process) adopt(pid int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.child == nil {
		return fmt.Errorf("the pause task exited before its report was read: %w", errdefs.ErrFailedPrecondition)
	}
	t, err := adopt(pid, p.child)
	if err != nil {
		return err
	}
	p.podInit, p.Pid, p.StartTime = t, pid, t.start
	p.Pids = append(p.Pids, pid)
	return nil
}

// parseReady reads the pause task's report: lines, in whatever order its
// processes wrote them (each line is one write(2), whole on the pipe):
// "ok" from the pod's PID 1, with -U (wantPid) "pid N" from its parent (N:
// PID 1's pid on the host), or a failed step ("STEP: errno N").
func parseReady(msg []byte, wantPid bool) (pid int, err error) {
	ready := false
	var failed []string
	for line := range strings.Lines(string(msg)) {
		text, whole := strings.CutSuffix(line, "\n")
		switch n, perr := strconv.Atoi(strings.TrimPrefix(text, "pid ")); {
		case !whole:
			failed = append(failed, fmt.Sprintf("a report cut short (%q)", text))
		case text == "ok":
			ready = true
		case strings.HasPrefix(text, "pid ") && wantPid && pid == 0 && perr == nil && n > 0:
			pid = n
		case strings.HasPrefix(text, "pid "):
			failed = append(failed, fmt.Sprintf("an unexpected report %q", text))
		default:
			failed = append(failed, text)
		}
	}
	switch {
	case len(failed) > 0:
		return 0, fmt.Errorf("pause task setup failed: %s: %w", strings.Join(failed, "; "), errdefs.ErrFailedPrecondition)
	case !ready:
		return 0, fmt.Errorf("pause task setup failed: it exited without reporting ready: %w", errdefs.ErrFailedPrecondition)
	case wantPid && pid == 0:
		return 0, fmt.Errorf("pause task setup failed: ready without the pid of the pod's PID 1: %w", errdefs.ErrFailedPrecondition)
	}
	return pid, nil
}
