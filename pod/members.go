package pod

import (
	"context"
	"sync"
	"syscall"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
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
		_, err := p.host.Tasks.Kill(ctx, &taskAPI.KillRequest{ID: id, Signal: uint32(sig), All: sig == syscall.SIGKILL})
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
			_, _ = p.host.Tasks.Wait(ctx, &taskAPI.WaitRequest{ID: id})
		})
	}
	wg.Wait()
}
