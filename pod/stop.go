package pod

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/log"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

// Stop stops the pod: SIGTERM to every container at once, SIGKILL to those
// still running at the timeout (the runtime's DefaultStopTimeout when 0),
// then the pause task last.
func (p *Pod) Stop(ctx context.Context, timeout time.Duration) error {
	if err := p.quiesce(ctx); err != nil {
		if errors.Is(err, errNothingToStop) {
			return nil
		}
		return err
	}
	if timeout == 0 {
		timeout = time.Duration(p.deps.Options.DefaultStopTimeout)
	}
	p.stopMembers(ctx, timeout)
	failpoint.Inject(failpoint.PodStopAfterMembers)
	p.mu.Lock()
	proc := p.pause
	p.mu.Unlock()
	stopPause(ctx, proc)
	return p.transition(ctx, state.stopped)
}

// Shutdown ends the pod for good: whatever still runs is killed and
// deleted, the pod's cgroups, files and mounts are removed. A pod already
// shut down has nothing left to do.
func (p *Pod) Shutdown(ctx context.Context) error {
	if err := p.quiesce(ctx); err != nil {
		if errors.Is(err, errNothingToStop) {
			return nil
		}
		return err
	}
	p.stopMembers(ctx, 0)
	for _, id := range p.memberIDs() {
		if _, err := p.deps.Tasks.Delete(ctx, &taskAPI.DeleteRequest{ID: id}); err != nil {
			log.G(ctx).WithError(err).WithField("container", id).Warn("delete container left in sandbox")
		}
		p.Forget(id)
	}
	failpoint.Inject(failpoint.PodShutdownAfterMembers)
	p.cleanup(ctx) // quiesced: nothing else changes the pod now
	return p.transition(ctx, state.shutDown)
}

// transition runs one of the pod's transitions under its lock.
func (p *Pod) transition(ctx context.Context, t func(state, *Pod) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return t(p.state, p)
}

// quiesce moves the pod to stopping, where it refuses new containers and
// starts, then waits for the start and the creates already under way,
// without the lock: stopping the pod after that misses none of them, and
// nothing else changes it.
func (p *Pod) quiesce(ctx context.Context) error {
	p.mu.Lock()
	if err := p.state.stop(p); err != nil {
		p.mu.Unlock()
		return err
	}
	pending := make([]<-chan struct{}, 0, len(p.creating)+1)
	for _, done := range p.creating {
		pending = append(pending, done)
	}
	if starting := p.state.starting(); starting != nil {
		pending = append(pending, starting)
	}
	p.mu.Unlock()
	for _, done := range pending {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("sandbox %s: waiting for its start and the containers being created: %w", p.id, ctx.Err())
		}
	}
	return nil
}

// abandon removes a pod that was created but not started within the
// StartTimeout, and tells the host: containerd's CRI shuts a sandbox down
// only if it fails after StartSandbox, so a pod whose pause image pull or
// start failed would otherwise keep its shim, and its cgroup, for ever.
func (p *Pod) abandon(ctx context.Context) {
	p.mu.Lock()
	for starting := p.state.starting(); starting != nil; starting = p.state.starting() {
		// A start under way decides: wait for it, without the lock.
		p.mu.Unlock()
		<-starting
		p.mu.Lock()
	}
	err := p.state.abandon(p)
	p.mu.Unlock()
	if err != nil {
		return // started, stopping or gone: not abandoned
	}
	p.cleanup(ctx)
	if err := p.transition(ctx, state.shutDown); err != nil {
		log.G(ctx).WithError(err).Error("abandon sandbox")
	}
	log.G(ctx).WithField("start_timeout", time.Duration(p.deps.Options.StartTimeout)).Warn("sandbox created but never started: removed")
	if p.deps.Abandoned != nil {
		p.deps.Abandoned(ctx, p)
	}
}

// stopPause ends a pause task (if any): SIGTERM, then SIGKILL after a grace.
func stopPause(ctx context.Context, proc *pause.Process) {
	if proc == nil {
		return
	}
	_ = proc.Signal(syscall.SIGTERM)
	select {
	case <-proc.Done():
		return
	case <-time.After(pauseStopGrace):
	case <-ctx.Done():
	}
	log.G(ctx).Warn("pause task ignored SIGTERM, killing it")
	_ = proc.Signal(syscall.SIGKILL)
	<-proc.Done()
}

// cleanup removes what the pod made; the pause task must be gone (or is
// killed). It waits for the pause task's exit and its cgroup, and removes
// cgroups, files and mounts: call it without the pod's lock, once no start
// is under way and none can begin (the pod is stopping). It runs once: a
// shutdown beside another one waits for the first's cleanup, and none
// runs after it, when the pod's paths may be another pod's (same id).
func (p *Pod) cleanup(ctx context.Context) {
	p.cleanedUp.Do(func() {
		p.mu.Lock()
		proc, placed, rec := p.pause, p.placed, p.rec
		p.mu.Unlock()
		if proc != nil {
			_ = proc.Signal(syscall.SIGKILL)
			<-proc.Done()
		}
		failpoint.Inject(failpoint.PodCleanupAfterPause)
		if placed != nil {
			<-placed // its cgroup is made before it is removed
		}
		passStep("cleanup begun")
		rec.cleanup(ctx)
	})
}
