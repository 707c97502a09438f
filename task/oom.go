package task

import (
	"context"
	"sync/atomic"
	"syscall"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/core/runtime"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod"
)

// oomEvents passes runc.v2's events on to containerd and adds, before a
// member's exit, the TaskOOM that runc.v2's watcher missed (see
// pod.MissedOOM): CRI then reports the exit as OOMKilled, as the OOM
// killer's.
type oomEvents struct {
	shim.Publisher
	// pods is the shim's registry, stored once it exists (runc.v2's task
	// service, which the registry needs, takes this publisher first).
	pods atomic.Pointer[pod.Registry]
}

func (e *oomEvents) member(id string) *pod.Pod {
	if r := e.pods.Load(); r != nil {
		return r.MemberOf(id)
	}
	return nil
}

func (e *oomEvents) Publish(ctx context.Context, topic string, event events.Event) error {
	switch ev := event.(type) {
	case *eventstypes.TaskOOM:
		if p := e.member(ev.ContainerID); p != nil {
			p.OOMReported(ev.ContainerID)
		}
	case *eventstypes.TaskExit:
		// An init's exit by SIGKILL: 128 + 9.
		if ev.ID == ev.ContainerID && ev.ExitStatus == 128+uint32(syscall.SIGKILL) {
			if p := e.member(ev.ContainerID); p != nil && p.MissedOOM(ev.ContainerID) {
				log.G(ctx).WithFields(p.LogFields()).WithField("container", ev.ContainerID).Info("container killed by the OOM killer; its watcher missed it")
				if err := e.Publisher.Publish(ctx, runtime.TaskOOMEventTopic, &eventstypes.TaskOOM{ContainerID: ev.ContainerID}); err != nil {
					log.G(ctx).WithError(err).Error("post event")
				}
			}
		}
	}
	return e.Publisher.Publish(ctx, topic, event)
}

// Kill notes a SIGKILL sent to a running member's init: its exit is the
// kill's, not the OOM killer's. A kill after the exit (CRI deletes an exited
// container's task with one) changes nothing.
func (t *taskService) Kill(ctx context.Context, r *taskAPI.KillRequest) (*ptypes.Empty, error) {
	if r.ExecID == "" && syscall.Signal(r.Signal) == syscall.SIGKILL {
		if p := t.svc.pods.MemberOf(r.ID); p != nil {
			// runc.v2 answers State from memory; an exit is STOPPED before
			// Wait returns, so before anyone can react to it.
			if st, err := t.TTRPCTaskService.State(ctx, &taskAPI.StateRequest{ID: r.ID}); err == nil && st.Status != task.Status_STOPPED {
				p.KillRequested(r.ID)
			}
		}
	}
	return t.TTRPCTaskService.Kill(ctx, r)
}
