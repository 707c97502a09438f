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
	r, p := readyPod(t)
	ctx := podCtx()
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

// TestRegistryIndexFollowsMembersAndShutdown: the registry's index and its
// count of live pods follow containers that join, fail to be created, are
// deleted, and pods that shut down and are removed.
func TestRegistryIndexFollowsMembersAndShutdown(t *testing.T) {
	r := NewRegistry(&Deps{Options: options.Default(), Tasks: noTasks{}}, 0)
	ctx := podCtx()
	spec := criContainerSpec(t, t.TempDir())
	var pods []*Pod
	for _, id := range []string{"a", "b"} {
		p, err := r.Create(ctx, criPodSpec(t, r, id))
		if err != nil {
			t.Fatal(err)
		}
		markReady(p)
		pods = append(pods, p)
	}
	a, b := pods[0], pods[1]
	for _, c := range []struct {
		p  *Pod
		id string
		ok bool
	}{{a, "a1", true}, {a, "a2", false}, {b, "b1", true}} {
		if _, err := c.p.Admit(ctx, c.id, spec); err != nil {
			t.Fatal(err)
		}
		c.p.Created(c.id, c.ok)
	}
	if r.MemberOf("a1") != a || r.MemberOf("b1") != b || r.MemberOf("a2") != nil {
		t.Fatal("index: a1, b1 members of their pods, a2 (its create failed) of none")
	}
	a.Forget("a1")
	if r.MemberOf("a1") != nil {
		t.Error("a deleted container is still indexed")
	}
	for _, p := range pods {
		p.mu.Lock()
		p.pause = nil // no pause task of its own to stop
		p.mu.Unlock()
	}
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !r.Live() {
		t.Fatal("b is live, the shim must stay")
	}
	if err := r.Remove("b"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("removing a live pod: %v", err)
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Live() {
		t.Error("every pod is shut down, yet the registry is live")
	}
	if r.MemberOf("b1") != nil {
		t.Error("a shut-down pod's container is still indexed")
	}
	for _, id := range []string{"a", "b"} {
		if err := r.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	if r.Len() != 0 || len(r.members) != 0 || r.live != 0 {
		t.Errorf("after removal: %d pods, %d indexed, %d live", r.Len(), len(r.members), r.live)
	}
}

// TestAdmitWhilePauseExits: the pause task dies while an admission does its
// spec I/O off the pod's lock: the container does not join (it would enter
// the namespaces of a dead process, or of another that took its pid), and
// its reservation goes.
func TestAdmitWhilePauseExits(t *testing.T) {
	r, p := readyPod(t)
	ctx := podCtx()
	stepHook = func(name string) {
		if name == "admit spec joined" {
			p.mu.Lock()
			defer p.mu.Unlock()
			if err := p.state.pauseExited(p); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { stepHook = nil })
	if _, err := p.Admit(ctx, "late", criContainerSpec(t, t.TempDir())); err == nil {
		t.Fatal("a container joined a pod whose pause task exited during its admission")
	}
	if r.MemberOf("late") != nil {
		t.Error("the container is a member")
	}
	p.mu.Lock()
	_, reserved := p.creating["late"]
	p.mu.Unlock()
	if reserved {
		t.Error("its reservation is left")
	}
}

// readyPod is a ready pod of a registry of its own, over no tasks.
func readyPod(t *testing.T) (*Registry, *Pod) {
	t.Helper()
	r := NewRegistry(&Deps{Options: options.Default(), Tasks: noTasks{}}, 0)
	p, err := r.Create(podCtx(), criPodSpec(t, r, "sb"))
	if err != nil {
		t.Fatal(err)
	}
	markReady(p)
	return r, p
}
