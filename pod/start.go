package pod

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
	procfs "github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/proc"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/files"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

// Start makes the pod's files and cgroups and runs its pause task; it
// returns the pause task's pid. sockets are the shim's, which `shim delete`
// removes with the pod if the shim cannot.
func (p *Pod) Start(ctx context.Context, sockets []string) (int, error) {
	rec, err := p.enterStarting(sockets)
	if err != nil {
		return 0, err
	}
	proc, rec, err := p.setUp(ctx, rec)
	if terr := p.leaveStarting(ctx, proc, rec, err); terr != nil {
		if err == nil {
			// What the start made is published nowhere: it goes now.
			p.undoSetUp(ctx, proc, rec)
		}
		return 0, errors.Join(err, terr)
	}
	if err != nil {
		return 0, err
	}
	return proc.Pid, nil
}

// enterStarting moves the pod to starting, so that a call coming while its
// pause task gets ready gets an answer instead of waiting. It returns the
// pod's record for the start to fill in.
func (p *Pod) enterStarting(sockets []string) (record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.state.start(p); err != nil {
		return record{}, err
	}
	rec := p.rec
	rec.Sockets = sockets
	return rec, nil
}

// leaveStarting ends the start: the transition first, then, if the start made
// its pause task, it publishes what the start made and wakes the calls
// waiting for it. A stop that began meanwhile waited for this, and stops
// the pause task now published. A transition the state machine does not
// make is an error (the pod's state is not what the start left it in):
// nothing is published then.
func (p *Pod) leaveStarting(ctx context.Context, proc *pause.Process, rec record, err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if terr := p.state.started(p, err == nil); terr != nil {
		log.G(ctx).WithError(terr).Error("end of sandbox start")
		return terr
	}
	if err != nil {
		return nil
	}
	// Field by field: the pod's cgroups are read without the lock.
	p.rec.Files, p.rec.Sockets = rec.Files, rec.Sockets
	p.rec.PausePid, p.rec.PauseStartTime = rec.PausePid, rec.PauseStartTime
	p.pause = proc
	p.placed = make(chan struct{})
	go p.placePause(context.WithoutCancel(ctx), proc)
	go p.watchPause(ctx, proc)
	return nil
}

// setUp makes the pod's files and cgroups and runs its pause task in them,
// which may take up to the pause task's ready timeout. It runs without the
// pod's lock, so it fills in rec, a copy of the pod's record, and leaves
// the pod itself alone: leaveStarting publishes what it made.
//
// It records before it acts: the state file names all the start will
// make (files, cgroups, units) before it makes any, then the pause task
// once it runs, so that `shim delete` finds whatever a shim killed at any
// step left. On failure it removes what it made, and leaves the shim's
// sockets, which the shim still serves (another start may come).
func (p *Pod) setUp(ctx context.Context, rec record) (_ *pause.Process, _ record, retErr error) {
	var proc *pause.Process
	defer func() {
		if retErr != nil {
			p.undoSetUp(ctx, proc, rec)
		}
	}()
	if p.cfg.FromCRI {
		dirs, err := files.Locate(p.deps.ContainerdRoot, p.bundle, rec.ID)
		if err != nil {
			return nil, rec, err
		}
		rec.Files = dirs
	}
	if err := rec.save(p.bundle); err != nil {
		return nil, rec, fmt.Errorf("record sandbox %s: %w", p.id, err)
	}
	passStep("start recorded")
	if p.cfg.FromCRI {
		if err := rec.Files.Create(p.cfg.CRI, p.cfg.HostIPC); err != nil {
			return nil, rec, err
		}
		passStep("pod files made")
		failpoint.Inject(failpoint.PodStartAfterFiles)
	}
	if rec.OwnsPodCgroup {
		if _, err := cgroups.New(rec.PodCgroup); err != nil {
			return nil, rec, err
		}
		passStep("pod cgroup made")
		failpoint.Inject(failpoint.PodStartAfterCgroup)
	}
	proc, err := p.deps.runPause(p.pauseCfg)
	if err != nil {
		return nil, rec, err
	}
	passStep("pause task started")
	failpoint.Inject(failpoint.PodStartAfterPause)
	start, err := procfs.StartTime(proc.Pid)
	if err == nil && start == 0 {
		err = errors.New("start time 0")
	}
	if err != nil {
		// Recorded without its start time, the pause task could never be
		// told from a process that took its pid later: `shim delete`
		// would not kill it.
		return nil, rec, fmt.Errorf("pause task %d exited as it started (its start time: %v): %w", proc.Pid, err, errdefs.ErrFailedPrecondition)
	}
	rec.PausePid, rec.PauseStartTime = proc.Pid, start
	if err := rec.save(p.bundle); err != nil {
		return nil, rec, fmt.Errorf("record pause task of sandbox %s: %w", p.id, err)
	}
	passStep("pause task recorded")
	failpoint.Inject(failpoint.PodStartAfterState)
	return proc, rec, nil
}

// undoSetUp removes what a failed start made, as rec records it: the
// pause task, if it runs, is killed and reaped first.
func (p *Pod) undoSetUp(ctx context.Context, proc *pause.Process, rec record) {
	if proc != nil {
		_ = proc.Signal(syscall.SIGKILL)
		<-proc.Done()
	}
	rec.cleanup(ctx)
}

// placePause moves the pause task into its cgroup, off the sandbox start
// path: on cgroup v1 a first migration waits out an RCU grace period in the
// kernel, and nothing of the pod's readiness depends on where a process
// that only sleeps is accounted.
func (p *Pod) placePause(ctx context.Context, proc *pause.Process) {
	p.mu.Lock()
	placed := p.placed
	p.mu.Unlock()
	defer close(placed)
	if p.rec.PauseUnit != "" {
		// The job fails if the pause task has died meanwhile: no scope.
		if err := cgroups.StartScope(ctx, p.rec.PauseUnit, p.rec.PodSlice, proc.Pids); err != nil && !proc.Exited() {
			log.G(ctx).WithError(err).Warn("move pause task into its scope")
		}
		failpoint.Inject(failpoint.PodPauseAfterScope)
		return
	}
	if p.rec.PauseCgroup == "" {
		return
	}
	cg, err := cgroups.New(p.rec.PauseCgroup)
	for _, pid := range proc.Pids {
		if err == nil {
			err = cg.AddProc(uint64(pid))
		}
	}
	failpoint.Inject(failpoint.PodPauseAfterCgroup)
	// ESRCH: it died meanwhile (a stop), before its reaper said so.
	if err != nil && !proc.Exited() && !errors.Is(err, syscall.ESRCH) {
		log.G(ctx).WithError(err).Warn("move pause task into its cgroup")
	}
}

// watchPause ends the pod's containers when its pause task dies: without it
// they would run on in namespaces nobody holds.
func (p *Pod) watchPause(ctx context.Context, proc *pause.Process) {
	<-proc.Done()
	status, _ := proc.Exit()
	log.G(ctx).WithField("status", status).Info("pause task exited")
	p.mu.Lock()
	err := p.state.pauseExited(p)
	p.mu.Unlock()
	if err != nil {
		log.G(ctx).WithError(err).Error("pause task exit")
	}
	p.signalMembers(context.WithoutCancel(ctx), syscall.SIGKILL)
}

// Wait waits for the pod's pause task to exit, and returns its status.
func (p *Pod) Wait(ctx context.Context) (int, time.Time, error) {
	proc, err := p.settledPause(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	if proc == nil {
		return 0, time.Time{}, fmt.Errorf("sandbox %q is not started: %w", p.id, errdefs.ErrFailedPrecondition)
	}
	select {
	case <-proc.Done():
	case <-ctx.Done():
		return 0, time.Time{}, ctx.Err()
	}
	status, at := proc.Exit()
	return status, at, nil
}

// settledPause is the pod's pause task once the start under way, if any,
// has ended: nil if the pod has not started.
func (p *Pod) settledPause(ctx context.Context) (*pause.Process, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		starting := p.state.starting()
		if starting == nil {
			return p.pause, nil
		}
		p.mu.Unlock()
		select {
		case <-starting:
		case <-ctx.Done():
			p.mu.Lock()
			return nil, ctx.Err()
		}
		p.mu.Lock()
	}
}
