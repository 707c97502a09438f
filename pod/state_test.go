package pod

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/errdefs"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/reaptest"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

// bare is a pod with no configuration, to walk its states.
func bare() *Pod {
	p := &Pod{id: "sb", deps: &Deps{}, members: map[string]struct{}{}, creating: map[string]chan struct{}{}}
	p.state = &createdState{}
	return p
}

// wantRefused checks an error's kind and that it names the sandbox and
// what it is doing.
func wantRefused(t *testing.T, err error, kind func(error) bool, says string) {
	t.Helper()
	if err == nil || !kind(err) || !strings.Contains(err.Error(), "sandbox") || !strings.Contains(err.Error(), says) {
		t.Fatalf("got %v, want an error of its kind saying %q", err, says)
	}
}

// step is one call on a pod's state, and what it must give: an error of
// kind saying says (none when kind is nil), then the state after.
type step struct {
	name  string
	call  func(p *Pod) error
	kind  func(error) bool
	says  string
	after string
}

var (
	start    = func(p *Pod) error { return p.state.start(p) }
	failed   = func(p *Pod) error { return p.state.started(p, false) }
	started  = func(p *Pod) error { return p.state.started(p, true) }
	admit    = func(p *Pod) error { return p.state.admit(p) }
	stop     = func(p *Pod) error { return p.state.stop(p) }
	stopped  = func(p *Pod) error { return p.state.stopped(p) }
	shutDown = func(p *Pod) error { return p.state.shutDown(p) }
	abandon  = func(p *Pod) error { return p.state.abandon(p) }
	invalid  = func(err error) bool { return err != nil }
)

// TestStateTransitions walks a pod through the states that need no pause
// task: each transition the machine allows, and each refusal with its kind.
func TestStateTransitions(t *testing.T) {
	p := bare()
	var starting <-chan struct{}
	for i, s := range []step{
		{"admit to a created pod", admit, errdefs.IsFailedPrecondition, "is not ready", "created"},
		{"stopped without a stop", stopped, invalid, "invalid transition", "created"},
		{"start", start, nil, "", "starting"},
		{"start again", start, errdefs.IsAlreadyExists, "already starting", "starting"},
		{"admit during the start", admit, errdefs.IsFailedPrecondition, "is not ready", "starting"},
		{"the start fails", failed, nil, "", "created"},
		{"start once more", start, nil, "", "starting"},
		{"stop during the start", stop, nil, "", "stopping"},
		{"start while stopping", start, errdefs.IsFailedPrecondition, "is stopping", "stopping"},
		{"admit while stopping", admit, errdefs.IsFailedPrecondition, "is stopping", "stopping"},
		{"the start ends, the stop goes on", started, nil, "", "stopping"},
		{"a second stop", stop, nil, "", "stopping"},
		{"the stop ends", stopped, nil, "", "stopped"},
		{"start a stopped pod", start, errdefs.IsFailedPrecondition, "is stopped", "stopped"},
		{"admit to a stopped pod", admit, errdefs.IsFailedPrecondition, "is not ready", "stopped"},
		{"abandon a stopped pod", abandon, errdefs.IsFailedPrecondition, "not abandoned", "stopped"},
		{"shut down after a stop", stop, nil, "", "stopping"},
		{"the shutdown ends", shutDown, nil, "", "shut down"},
		{"stop a shut-down pod", stop, func(err error) bool { return errors.Is(err, errNothingToStop) }, "shut down", "shut down"},
		{"start a shut-down pod", start, errdefs.IsFailedPrecondition, "is shut down", "shut down"},
	} {
		err := s.call(p)
		switch {
		case s.kind == nil && err != nil:
			t.Fatalf("%d %s: %v", i, s.name, err)
		case s.kind != nil && (err == nil || !s.kind(err) || !strings.Contains(err.Error(), "sandbox") || !strings.Contains(err.Error(), s.says)):
			t.Fatalf("%d %s: %v, want an error of its kind saying %q", i, s.name, err, s.says)
		}
		if got := p.state.String(); got != s.after {
			t.Fatalf("%d %s: state %s, want %s", i, s.name, got, s.after)
		}
		// A start under way is told when it ends, to a stop that began
		// during it too.
		switch s.name {
		case "start", "start once more":
			starting = p.state.starting()
		case "stop during the start":
			if p.state.starting() != starting {
				t.Fatal("a stop that began during a start does not wait for it")
			}
		case "the start fails", "the start ends, the stop goes on":
			select {
			case <-starting:
			default:
				t.Fatalf("%s: the end of the start is not told", s.name)
			}
			if p.state.starting() != nil {
				t.Fatalf("%s: the start has ended, but is still awaited", s.name)
			}
		}
	}
	if err := p.Stop(context.Background(), 0); err != nil {
		t.Errorf("StopSandbox of a shut-down pod: %v", err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Errorf("ShutdownSandbox of a shut-down pod: %v", err)
	}
}

// noTasks stands for runc's task service in pods without containers.
type noTasks struct{}

func (noTasks) Kill(context.Context, *taskAPI.KillRequest) (*ptypes.Empty, error) {
	return nil, errdefs.ErrNotFound
}

func (noTasks) Wait(context.Context, *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	return nil, errdefs.ErrNotFound
}

func (noTasks) Delete(context.Context, *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	return nil, errdefs.ErrNotFound
}

const testNamespace = "pause-unit-test-pod"

// testRegistry is a registry whose pods run real pause tasks (root only).
func testRegistry(t *testing.T, opts options.Options) *Registry {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the pods run pause tasks in namespaces and cgroups of their own")
	}
	reaptest.Children(t)
	t.Cleanup(func() { _ = cgroups.Delete("/" + testNamespace) })
	return NewRegistry(&Deps{Options: opts, Tasks: noTasks{}}, 1)
}

func podCtx() context.Context { return namespaces.WithNamespace(context.Background(), testNamespace) }

// TestPauseExitedState: a pause task killed from the host moves a ready
// pod to pause exited, which takes no container and is not ready; stop
// and shutdown then end it.
func TestPauseExitedState(t *testing.T) {
	r := testRegistry(t, options.Default())
	ctx := podCtx()
	p, err := r.Create(ctx, Spec{ID: "exited", Namespace: testNamespace, Bundle: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(ctx) })
	if _, err := r.Create(ctx, Spec{ID: "other", Namespace: testNamespace, Bundle: t.TempDir()}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("a second pod in a shim of one: %v", err)
	}
	if _, err := r.Create(ctx, Spec{ID: "exited", Namespace: testNamespace, Bundle: t.TempDir()}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("the same pod again: %v", err)
	}
	pid, err := p.Start(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.State() != "ready" || p.PausePid() != pid || !p.Status(false).Ready {
		t.Fatalf("started pod: %s, pid %d", p.State(), p.PausePid())
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); p.State() != "pause exited"; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("state %s after its pause task died", p.State())
		}
	}
	st := p.Status(false)
	if st.Ready || st.Pid != pid || st.ExitedAt.IsZero() || p.PausePid() != 0 {
		t.Errorf("status of a pod whose pause task died: %+v", st)
	}
	_, err = p.Admit(ctx, "c", "/nonexistent")
	wantRefused(t, err, errdefs.IsFailedPrecondition, "is not ready")
	if err := p.Ping(); !errdefs.IsUnavailable(err) {
		t.Errorf("ping: %v", err)
	}
	if !r.Live() {
		t.Error("a pod not yet shut down does not keep the shim")
	}
	if err := p.Stop(ctx, 0); err != nil || p.State() != "stopped" {
		t.Fatalf("stop: %v, %s", err, p.State())
	}
	if err := p.Shutdown(ctx); err != nil || p.State() != "shut down" {
		t.Fatalf("shutdown: %v, %s", err, p.State())
	}
	if r.Live() {
		t.Error("a shut-down pod keeps the shim")
	}
}

// TestAbandon: a pod whose start failed is back in created, and one that
// is not started within the StartTimeout is removed and the host told.
func TestAbandon(t *testing.T) {
	opts := options.Default()
	opts.StartTimeout = options.Duration(100 * time.Millisecond)
	r := testRegistry(t, opts)
	abandoned := make(chan string, 1)
	r.Deps().Abandoned = func(_ context.Context, p *Pod) { abandoned <- p.ID() }
	r.Deps().StartPause = func(pause.Config) (*pause.Process, error) { return nil, errors.New("no pause task today") }
	ctx := podCtx()
	p, err := r.Create(ctx, Spec{ID: "abandoned", Namespace: testNamespace, Bundle: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Start(ctx, nil); err == nil {
		t.Fatal("a failed start succeeded")
	}
	if p.State() != "created" {
		t.Fatalf("after a failed start: %s", p.State())
	}
	select {
	case id := <-abandoned:
		if id != "abandoned" || p.State() != "shut down" {
			t.Errorf("abandoned %s, state %s", id, p.State())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a pod never started was not abandoned")
	}
	if _, err := os.Stat("/sys/fs/cgroup/pids/" + testNamespace + "/abandoned"); err == nil {
		t.Error("the abandoned pod's cgroup is left")
	}
}
