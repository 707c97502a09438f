package pod

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
)

// stopMembers gives the pod's containers timeout to exit on SIGTERM (none
// when it is zero), then kills what is left.
func (p *Pod) stopMembers(ctx context.Context, timeout time.Duration) {
	if timeout > 0 {
		p.signalMembers(ctx, syscall.SIGTERM)
		wctx, cancel := context.WithTimeout(ctx, timeout)
		p.waitMembers(wctx)
		cancel()
	}
	p.signalMembers(ctx, syscall.SIGKILL)
	p.waitMembers(ctx)
}

func (p *Pod) memberIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.members))
	for id := range p.members {
		ids = append(ids, id)
	}
	return ids
}

// signalMembers signals the init process of every container of the pod; a
// container that has already exited answers NotFound, which is fine.
func (p *Pod) signalMembers(ctx context.Context, sig syscall.Signal) {
	for _, id := range p.memberIDs() {
		_, err := p.deps.Tasks.Kill(ctx, &taskAPI.KillRequest{ID: id, Signal: uint32(sig), All: sig == syscall.SIGKILL})
		if err != nil && !errdefs.IsNotFound(errgrpc.ToNative(err)) {
			log.G(ctx).WithError(err).WithFields(log.Fields{"container": id, "signal": sig}).Debug("signal container")
		}
	}
}

// waitMembers waits, in parallel, until every container has exited or ctx ends.
func (p *Pod) waitMembers(ctx context.Context) {
	var wg sync.WaitGroup
	for _, id := range p.memberIDs() {
		wg.Go(func() {
			_, _ = p.deps.Tasks.Wait(ctx, &taskAPI.WaitRequest{ID: id})
		})
	}
	wg.Wait()
}

// Admit joins the container id, whose spec is at configPath, to the pod:
// its spec is rewritten to live in the pod (see joinPod). Created must
// follow once runc's create has ended.
//
// The pod's lock is not held over the spec's I/O: the id is reserved first
// (a second admission of it conflicts, and a stop waits for it as for a
// create under way), then the spec is read and rewritten, and the container
// joins the pod, or its reservation is dropped.
func (p *Pod) Admit(ctx context.Context, id, configPath string) (string, error) {
	pausePid, done, err := p.reserve(id)
	if err != nil {
		return "", err
	}
	cgroupsPath, err := joinPod(configPath, id, p, pausePid)
	if err != nil {
		p.Created(id, false)
		return "", err
	}
	passStep("admit spec joined")
	failpoint.Inject(failpoint.PodAdmitAfterSpec)
	p.countOOMBaseline()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.creating[id] != done {
		// Never: only Created drops a reservation, and it follows Admit.
		return "", fmt.Errorf("container %s of sandbox %s: its admission was dropped: %w", id, p.id, errdefs.ErrAborted)
	}
	if err := p.state.admit(p); err != nil || p.pause == nil || p.pause.Pid != pausePid {
		// The pause task went while the spec was written: the container
		// would enter the namespaces of a dead process, or of another that
		// took its pid.
		close(done)
		delete(p.creating, id)
		if err == nil {
			err = fmt.Errorf("sandbox %s: its pause task changed during the admission of %s: %w", p.id, id, errdefs.ErrAborted)
		}
		return "", err
	}
	p.members[id] = struct{}{}
	if p.reg != nil {
		p.reg.joined(p, id)
	}
	log.G(ctx).WithField("container", id).Debug("container joins pod")
	return cgroupsPath, nil
}

// reserve takes container id for an admission, if the pod takes one: it
// returns the pause task's pid, which the spec joins, and the channel Created
// closes.
func (p *Pod) reserve(id string) (int, chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.state.admit(p); err != nil {
		return 0, nil, err
	}
	_, member := p.members[id]
	_, admitting := p.creating[id]
	if member || admitting {
		return 0, nil, fmt.Errorf("container %s already exists in sandbox %s: %w", id, p.id, errdefs.ErrAlreadyExists)
	}
	done := make(chan struct{})
	p.creating[id] = done
	return p.pause.Pid, done, nil
}

// Created ends the create of an admitted container: a member if runc
// created it, forgotten if not.
func (p *Pod) Created(id string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if done, found := p.creating[id]; found {
		close(done)
		delete(p.creating, id)
	}
	if !ok {
		p.dropMember(id)
	}
}

// Forget drops a container that has been deleted.
func (p *Pod) Forget(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropMember(id)
	delete(p.oom.noted, id)
	delete(p.oom.killed, id)
}

// dropMember removes id from the pod's members and the registry's index;
// the pod's lock is held.
func (p *Pod) dropMember(id string) {
	if _, ok := p.members[id]; !ok {
		return
	}
	delete(p.members, id)
	if p.reg != nil {
		p.reg.left(p, id)
	}
}

// IsMember tells whether container id belongs to the pod.
func (p *Pod) IsMember(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.members[id]
	return ok
}
