// Package pause runs a pod's built-in pause task: a freestanding binary
// (c/pause.c), embedded in the shim, that holds the pod's namespaces. It
// needs no image, no runc call, and costs a few kilobytes.
package pause

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// The pause task also reaps the pod's orphans, exits 0 on SIGTERM, and is
// confined by a seccomp filter from its ready report on. It runs from the
// first place that may execute it: one copy that every shim shares (in
// CacheDir, else in the directory SetFallbackDir gives: containerd's
// root), else a sealed memfd of the shim's own (binary.go).

// readyTimeout bounds the pause task's setup (join netns, hostname, lo up).
const readyTimeout = 10 * time.Second

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
