package pod

import (
	"fmt"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
)

// TestAdmitHoldsNoLockOverIO: while a container's admission reads and
// rewrites its spec, the pod and the registry still answer: a lookup of
// another container, the pod's state and another admission to the same pod
// do not wait for that I/O. A second admission of the same id still
// conflicts.
func TestAdmitHoldsNoLockOverIO(t *testing.T) {
	r := NewRegistry(&Deps{Options: options.Default(), Tasks: noTasks{}}, 0)
	ctx := podCtx()
	p, err := r.Create(ctx, criPodSpec(t, r, "sb"))
	if err != nil {
		t.Fatal(err)
	}
	markReady(p)
	spec := criContainerSpec(t, t.TempDir())

	reached, release := make(chan struct{}), make(chan struct{})
	stepHook = func(name string) {
		if name == "admit spec joined" {
			select {
			case <-reached: // the held admission's own hook already fired
			default:
				close(reached)
				<-release
			}
		}
	}
	t.Cleanup(func() { stepHook = nil })
	admitted := make(chan error, 1)
	go func() {
		_, err := p.Admit(ctx, "slow", spec)
		admitted <- err
	}()
	<-reached

	answered := make(chan error, 1)
	go func() {
		if r.MemberOf("other") != nil {
			answered <- fmt.Errorf("other is a member")
			return
		}
		if s := p.State(); s != "ready" {
			answered <- fmt.Errorf("state %s", s)
			return
		}
		if _, err := p.Admit(ctx, "slow", spec); !errdefs.IsAlreadyExists(err) {
			answered <- fmt.Errorf("a second admission of the same id: %v, want AlreadyExists", err)
			return
		}
		_, err := p.Admit(ctx, "fast", spec)
		answered <- err
	}()
	waited := false
	select {
	case err := <-answered:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(2 * time.Second):
		waited = true
		t.Error("the pod's calls waited for another container's admission I/O")
	}
	close(release)
	if err := <-admitted; err != nil {
		t.Fatal(err)
	}
	if waited {
		<-answered
	}
	p.Created("slow", true)
	p.Created("fast", true)
	for _, id := range []string{"slow", "fast"} {
		if r.MemberOf(id) != p {
			t.Errorf("%s is no member of the pod", id)
		}
	}
}
