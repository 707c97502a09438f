package task

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/errdefs/pkg/errgrpc"
)

// slowKills is a runc task service whose kills last until released, and
// which counts how many run at once.
type slowKills struct {
	taskAPI.TTRPCTaskService
	release       chan struct{}
	running, most atomic.Int32
}

func (s *slowKills) Kill(ctx context.Context, r *taskAPI.KillRequest) (*ptypes.Empty, error) {
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	<-s.release
	return &ptypes.Empty{}, nil
}

func TestKillQueueBoundsKillsAtOnce(t *testing.T) {
	runc := &slowKills{release: make(chan struct{})}
	q := newKillQueue(runc)
	const kills = 3 * killsAtOnce
	done := make(chan error, kills)
	for range kills {
		go func() {
			_, err := q.Kill(context.Background(), &taskAPI.KillRequest{ID: "c", Signal: 9})
			done <- err
		}()
	}
	for runc.running.Load() < killsAtOnce {
		time.Sleep(time.Millisecond)
	}
	for i := range kills {
		time.Sleep(time.Millisecond) // a waiter may take the turn meanwhile
		runc.release <- struct{}{}
		if err := <-done; err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
	}
	if most := runc.most.Load(); most != killsAtOnce {
		t.Errorf("%d kills reached runc at once, want %d", most, killsAtOnce)
	}
}

func TestKillQueueWaitEndsWithTheCall(t *testing.T) {
	runc := &slowKills{release: make(chan struct{})}
	q := newKillQueue(runc)
	for range killsAtOnce {
		go func() { _, _ = q.Kill(context.Background(), &taskAPI.KillRequest{ID: "a", Signal: 9}) }()
	}
	for runc.running.Load() < killsAtOnce {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := q.Kill(ctx, &taskAPI.KillRequest{ID: "b", Signal: 9})
	if !errors.Is(errgrpc.ToNative(err), context.DeadlineExceeded) {
		t.Errorf("a kill waiting its turn past its deadline returned %v, want DeadlineExceeded", err)
	}
	close(runc.release)
}
