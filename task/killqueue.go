package task

import (
	"context"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/errdefs/pkg/errgrpc"
)

// killQueue is runc.v2's task service with at most killsAtOnce kills
// under way.
//
// runc.v2 handles exits in one goroutine, which takes a container's lock to
// record its exit; a Kill holds that lock while `runc kill` runs, and runc
// kill's own exit reaches its waiter only once the reaper has offered it to
// every subscriber, that goroutine's queue among them, for up to a second
// each while the queue is full. Kills at once on a shared shim (a namespace
// deleted, a node drained) kill containers whose exits wait behind a kill's
// lock; the queue fills, every exit then costs the reaper its second, and
// the removals stall for minutes.
type killQueue struct {
	taskAPI.TTRPCTaskService
	turn chan struct{}
}

// killsAtOnce is one: while the exit handler waits for a kill's lock, no
// other kill's exits (its container's, runc's) pile up in its queue (32
// exits). Eight at once still wedged a shared shim of 30 pods removed at
// once; a slow `runc kill` costs each pod its time in turn instead.
const killsAtOnce = 1

func newKillQueue(r taskAPI.TTRPCTaskService) *killQueue {
	return &killQueue{TTRPCTaskService: r, turn: make(chan struct{}, killsAtOnce)}
}

func (q *killQueue) Kill(ctx context.Context, r *taskAPI.KillRequest) (*ptypes.Empty, error) {
	select {
	case q.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, errgrpc.ToGRPC(ctx.Err())
	}
	defer func() { <-q.turn }()
	return q.TTRPCTaskService.Kill(ctx, r)
}
