package task

import (
	"context"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/log"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pool"
)

// podGone is the end of pod id in this shim, once it is shut down (or was
// never created): its sockets go, and a shim of one pod exits; a shared
// shim takes the pod out of its pool, and exits only once it has no pod
// left and none on its way (a start that gave it one holds the pool).
func (s *Service) podGone(ctx context.Context, id, bundle string) {
	pool.RemoveSockets(shimSockets(ctx, s.socketDir, s.grpcAddress, id))
	if err := s.pods.Remove(id); err != nil {
		log.G(ctx).WithError(err).Warn("forget sandbox")
	}
	if s.shared == nil {
		// A shutdown naming another pod (bad input) must not end this one.
		if !s.pods.Live() {
			s.exitAfterReply()
		}
		return
	}
	// Retire first: its lines go to the log containerd still reads.
	s.shared.Retire(ctx, poolServer{s}, id, bundle)
	s.shared.MoveLog(ctx, poolServer{s}, bundle)
}

// poolServer is the shim as its pool sees it when pods share it.
type poolServer struct{ s *Service }

func (p poolServer) Has(id string) bool {
	_, err := p.s.pods.Get(id)
	return err == nil
}

func (p poolServer) Live() bool { return p.s.pods.Live() }

func (p poolServer) Bundles() []string {
	var bundles []string
	for _, pd := range p.s.pods.Pods() {
		bundles = append(bundles, pd.Bundle())
	}
	return bundles
}

func (p poolServer) Exit() { p.s.exitAfterReply() }

// replyGrace is how long the shim outlives its answer to ShutdownSandbox.
const replyGrace = 200 * time.Millisecond

// exitAfterReply ends the shim (once no container is left) shortly after
// the current call has answered (abandon has no call: the delay is
// harmless). pkg/shim exits as soon as shutdown begins, without draining the
// ttrpc server, and containerd's sandbox controller, unlike its task manager,
// takes a connection closed before the reply for a failure.
func (s *Service) exitAfterReply() {
	time.AfterFunc(replyGrace, func() {
		_, _ = s.runc.Shutdown(context.Background(), &taskAPI.ShutdownRequest{})
	})
}
