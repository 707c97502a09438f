package task

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	sandboxAPI "github.com/containerd/containerd/api/runtime/sandbox/v1"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

// TestShutdownSandboxLeavesNoContainerBeingCreated: a container admitted to
// the pod while its runc create runs (outside the shim's lock) when
// ShutdownSandbox comes is either refused or killed and deleted with the
// pod; a container that comes once the shutdown has begun is refused. None
// survives the pod untracked, keeping a shim whose sockets are gone.
func TestShutdownSandboxLeavesNoContainerBeingCreated(t *testing.T) {
	ts := newTestService(t)
	ctx := testCtx()
	ts.runPod(t, "pod")
	release, created := createHeld(t, ctx, ts, &ts.runc.createHook, "early", "pod", "early")
	shut := make(chan error, 1)
	go func() {
		_, err := ts.sb.ShutdownSandbox(ctx, &sandboxAPI.ShutdownSandboxRequest{SandboxID: "pod"})
		shut <- err
	}()
	ts.waitStopping(t, "pod")
	if _, err := ts.task.Create(ctx, containerRequest(t, "pod", "late")); !errdefs.IsFailedPrecondition(errgrpc.ToNative(err)) {
		t.Errorf("a container created once the shutdown has begun: %v, want FailedPrecondition", err)
	}
	close(release)
	if err := <-created; err != nil && !errdefs.IsFailedPrecondition(errgrpc.ToNative(err)) {
		t.Errorf("the container created as the shutdown began: %v, want success or FailedPrecondition", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if left := ts.runc.alive(); len(left) > 0 {
		t.Errorf("containers survived ShutdownSandbox: %v", left)
	}
	if ts.s.isMember("early") || ts.s.isMember("late") {
		t.Error("the pod still counts a container after ShutdownSandbox")
	}
}

// slowPauseStart makes every pause task take delay to get ready.
func (ts *testService) slowPauseStart(delay time.Duration) {
	ts.s.pods.Deps().StartPause = func(c pause.Config) (*pause.Process, error) {
		time.Sleep(delay)
		return pause.Start(c)
	}
}

// TestStartSandboxRacesWaitAndStop runs StartSandbox concurrently with
// WaitSandbox and StopSandbox, these before and during the start (run it
// with -race): every call answers with success or a clear error kind, none
// hangs, and once StopSandbox has answered the pod is not ready.
func TestStartSandboxRacesWaitAndStop(t *testing.T) {
	for _, startFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("start first %v", startFirst), func(t *testing.T) {
			ts := newTestService(t)
			ts.slowPauseStart(50 * time.Millisecond)
			ts.createPod(t, "race")
			ctx, cancel := context.WithTimeout(testCtx(), 10*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, 3)
			call := func(name string, fn func() error) {
				wg.Go(func() {
					err := errgrpc.ToNative(fn())
					if err != nil && !errdefs.IsFailedPrecondition(err) && !errdefs.IsAlreadyExists(err) {
						errs <- fmt.Errorf("%s: %w", name, err)
					}
				})
			}
			start := func() {
				call("StartSandbox", func() error {
					_, err := ts.sb.StartSandbox(ctx, &sandboxAPI.StartSandboxRequest{SandboxID: "race"})
					return err
				})
			}
			if startFirst {
				start()
				time.Sleep(10 * time.Millisecond)
			}
			call("WaitSandbox", func() error {
				_, err := ts.sb.WaitSandbox(ctx, &sandboxAPI.WaitSandboxRequest{SandboxID: "race"})
				return err
			})
			call("StopSandbox", func() error {
				_, err := ts.sb.StopSandbox(ctx, &sandboxAPI.StopSandboxRequest{SandboxID: "race"})
				return err
			})
			if !startFirst {
				time.Sleep(10 * time.Millisecond) // no happens-before: what -race checks
				start()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			st, err := ts.sb.SandboxStatus(ctx, &sandboxAPI.SandboxStatusRequest{SandboxID: "race"})
			if err != nil || st.State != stateNotReady {
				t.Errorf("after StopSandbox the pod is %s (%v), want %s", st.GetState(), err, stateNotReady)
			}
		})
	}
}

// promptly fails the test unless each call answers within a few
// milliseconds; it gives each up to a second, and returns the answers.
func promptly(t *testing.T, calls map[string]func() error) map[string]error {
	t.Helper()
	const limit, patience = 200 * time.Millisecond, time.Second
	type answer struct {
		name string
		took time.Duration
		err  error
	}
	answers := make(chan answer, len(calls))
	for name, call := range calls {
		go func() {
			start := time.Now()
			err := call()
			answers <- answer{name, time.Since(start), err}
		}()
	}
	got := map[string]error{}
	timeout := time.After(patience)
	for range calls {
		select {
		case a := <-answers:
			got[a.name] = a.err
			if a.took > limit {
				t.Errorf("%s took %v (%v)", a.name, a.took, a.err)
			}
		case <-timeout:
			t.Errorf("%d of %d calls still blocked after %v", len(calls)-len(got), len(calls), patience)
			return got
		}
	}
	return got
}

// probes are the calls containerd makes on a shim it reloads (Connect,
// Pids: it gives up after 5 s and deletes the bundle) and the pod's status
// calls: none may wait for work under way on the pod.
func (ts *testService) probes(id string) map[string]func() error {
	ctx := testCtx()
	return map[string]func() error{
		"Connect": func() error { _, err := ts.task.Connect(ctx, &taskAPI.ConnectRequest{ID: id}); return err },
		"Pids":    func() error { _, err := ts.task.Pids(ctx, &taskAPI.PidsRequest{ID: id}); return err },
		"SandboxStatus": func() error {
			_, err := ts.sb.SandboxStatus(ctx, &sandboxAPI.SandboxStatusRequest{SandboxID: id, Verbose: true})
			return err
		},
		"PingSandbox": func() error { _, err := ts.sb.PingSandbox(ctx, &sandboxAPI.PingRequest{SandboxID: id}); return err },
	}
}

// TestSlowPauseStartBlocksNoOtherCall: while the pause task takes its time
// to get ready (up to 10 s), the pod answers every other call at once, a
// second StartSandbox included.
func TestSlowPauseStartBlocksNoOtherCall(t *testing.T) {
	ts := newTestService(t)
	ctx := testCtx()
	entered, release := make(chan struct{}), make(chan struct{})
	ts.s.pods.Deps().StartPause = func(c pause.Config) (*pause.Process, error) {
		close(entered)
		<-release
		return pause.Start(c)
	}
	ts.createPod(t, "slow")
	started := make(chan error, 1)
	go func() {
		_, err := ts.sb.StartSandbox(ctx, &sandboxAPI.StartSandboxRequest{SandboxID: "slow"})
		started <- err
	}()
	<-entered
	calls := ts.probes("slow")
	calls["StartSandbox again"] = func() error {
		_, err := ts.sb.StartSandbox(ctx, &sandboxAPI.StartSandboxRequest{SandboxID: "slow"})
		return err
	}
	answers := promptly(t, calls)
	if err, ok := answers["StartSandbox again"]; ok && !errdefs.IsAlreadyExists(errgrpc.ToNative(err)) {
		t.Errorf("a second StartSandbox during the start: %v, want AlreadyExists", err)
	}
	if err, ok := answers["SandboxStatus"]; ok && err != nil {
		t.Errorf("SandboxStatus during the start: %v", err)
	}
	close(release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if resp, err := ts.task.Pids(ctx, &taskAPI.PidsRequest{ID: "slow"}); err != nil || len(resp.Processes) != 1 {
		t.Errorf("Pids of the started pod: %v, %v", resp, err)
	}
}

// TestSlowRuncStateBlocksNoOtherCall: admitting a container of a sandbox
// this shim runs as a task (CRI's podsandbox mode) asks runc for that
// task's state, which may take long; the pod meanwhile answers at once.
func TestSlowRuncStateBlocksNoOtherCall(t *testing.T) {
	ts := newTestService(t)
	ctx := testCtx()
	ts.runPod(t, "pod")
	release, created := createHeld(t, ctx, ts, &ts.runc.stateHook, "pause-container", "pause-container", "c")
	promptly(t, ts.probes("pod"))
	close(release)
	if err := <-created; !errdefs.IsFailedPrecondition(errgrpc.ToNative(err)) {
		t.Errorf("a container of a sandbox that is gone: %v, want FailedPrecondition", err)
	}
}

// TestRuncStateErrorKeepsItsCause: a container of a sandbox this shim runs
// as a task (CRI's podsandbox mode) whose state runc cannot tell fails
// with runc's own error and kind; one whose sandbox runc does not know is
// refused as FailedPrecondition, runc's words kept.
func TestRuncStateErrorKeepsItsCause(t *testing.T) {
	ts := newTestService(t)
	ctx := testCtx()
	for _, c := range []struct {
		runc error
		kind func(error) bool
	}{
		{errgrpc.ToGRPCf(errdefs.ErrUnavailable, "runc state: open /run/runc/pause-container/state.json: too many open files"), errdefs.IsUnavailable},
		{errgrpc.ToGRPCf(errdefs.ErrNotFound, "container pause-container does not exist"), errdefs.IsFailedPrecondition},
	} {
		ts.runc.stateErr = c.runc
		_, err := ts.task.Create(ctx, containerRequest(t, "pause-container", "c"))
		native := errgrpc.ToNative(err)
		if !c.kind(native) || !strings.Contains(native.Error(), errgrpc.ToNative(c.runc).Error()) || !strings.Contains(native.Error(), "pause-container") {
			t.Errorf("runc's state %v: got %v, want its kind and words, naming the sandbox", c.runc, err)
		}
	}
}

// createHeld creates container id in sandbox, holding it in the fake runc
// call whose hook is *hook when that call is for holdID; it returns once
// the create is held there. Close release to let it go on; its result
// arrives on created.
func createHeld(t *testing.T, ctx context.Context, ts *testService, hook *func(string), holdID, sandbox, id string) (release chan struct{}, created chan error) {
	t.Helper()
	entered := make(chan struct{})
	release, created = make(chan struct{}), make(chan error, 1)
	*hook = func(got string) {
		if got == holdID {
			close(entered)
			<-release
		}
	}
	go func() {
		_, err := ts.task.Create(ctx, containerRequest(t, sandbox, id))
		created <- err
	}()
	<-entered
	return release, created
}
