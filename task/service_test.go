package task

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sandboxAPI "github.com/containerd/containerd/api/runtime/sandbox/v1"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/reaptest"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pool"
)

// testNamespace is the containerd namespace of the pods these tests run:
// their cgroups are /<testNamespace>/<sandbox id>.
const testNamespace = "pause-unit-test"

// fakeRunc stands for containerd's runc task service: containers are
// records, which a signal ends. Calls the tests do not expect panic (nil
// embedded service).
type fakeRunc struct {
	taskAPI.TTRPCTaskService

	// createHook, when set, runs inside Create before the container exists,
	// as runc's create does its work outside the shim's lock.
	createHook func(id string)
	// stateHook, when set, runs at the start of State.
	stateHook func(id string)
	// stateErr, when set, is State's answer.
	stateErr error

	mu         sync.Mutex
	containers map[string]chan struct{} // created, not deleted; closed on exit
	// shutdowns counts Shutdown calls: the shim's exit.
	shutdowns atomic.Int32
}

func (f *fakeRunc) container(id string) (chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %s not created", id)
	}
	return c, nil
}

// alive lists the containers created and not deleted.
func (f *fakeRunc) alive() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.containers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (f *fakeRunc) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	if f.createHook != nil {
		f.createHook(r.ID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.containers[r.ID]; ok {
		return nil, errgrpc.ToGRPCf(errdefs.ErrAlreadyExists, "container %s", r.ID)
	}
	f.containers[r.ID] = make(chan struct{})
	return &taskAPI.CreateTaskResponse{Pid: 1}, nil
}

func (f *fakeRunc) Kill(ctx context.Context, r *taskAPI.KillRequest) (*ptypes.Empty, error) {
	c, err := f.container(r.ID)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-c:
	default:
		close(c)
	}
	return &ptypes.Empty{}, nil
}

func (f *fakeRunc) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	c, err := f.container(r.ID)
	if err != nil {
		return nil, err
	}
	select {
	case <-c:
		return &taskAPI.WaitResponse{ExitStatus: 137}, nil
	case <-ctx.Done():
		return nil, errgrpc.ToGRPC(ctx.Err())
	}
}

func (f *fakeRunc) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	c, err := f.container(r.ID)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-c:
	default:
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s is running", r.ID)
	}
	delete(f.containers, r.ID)
	return &taskAPI.DeleteResponse{ExitStatus: 137}, nil
}

func (f *fakeRunc) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	if f.stateHook != nil {
		f.stateHook(r.ID)
	}
	if f.stateErr != nil {
		return nil, f.stateErr
	}
	c, err := f.container(r.ID)
	if err != nil {
		return nil, err
	}
	select {
	case <-c:
		return &taskAPI.StateResponse{ID: r.ID, Status: task.Status_STOPPED, ExitStatus: 137}, nil
	default:
		return &taskAPI.StateResponse{ID: r.ID, Status: task.Status_RUNNING}, nil
	}
}

func (f *fakeRunc) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	if _, err := f.container(r.ID); err != nil {
		return nil, err
	}
	return &taskAPI.PidsResponse{}, nil
}

func (f *fakeRunc) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	return &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid())}, nil
}

func (f *fakeRunc) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*ptypes.Empty, error) {
	f.shutdowns.Add(1)
	return &ptypes.Empty{}, nil
}

// testService is a Service over fakeRunc, with its two ttrpc faces. Its
// pods run real pause tasks, so it needs root.
type testService struct {
	s    *Service
	runc *fakeRunc
	task *taskService
	sb   *sandboxService
}

func newTestService(t *testing.T) *testService {
	t.Helper()
	return newTestServiceWith(t, options.Default())
}

func newTestServiceWith(t *testing.T, opts options.Options) *testService {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the pods run pause tasks in namespaces and cgroups of their own")
	}
	reaptest.Children(t)
	f := &fakeRunc{containers: map[string]chan struct{}{}}
	s := newService(f, opts, "")
	t.Cleanup(func() { _ = cgroups.Delete("/" + testNamespace) })
	return &testService{s: s, runc: f, task: &taskService{TTRPCTaskService: f, svc: s}, sb: &sandboxService{svc: s}}
}

func testCtx() context.Context {
	return namespaces.WithNamespace(context.Background(), testNamespace)
}

// createPod creates an isolated pod (a bundle without spec), shut down at
// the end of the test.
func (ts *testService) createPod(t *testing.T, id string) {
	t.Helper()
	ctx := testCtx()
	if _, err := ts.sb.CreateSandbox(ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: id, BundlePath: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := ts.sb.ShutdownSandbox(ctx, &sandboxAPI.ShutdownSandboxRequest{SandboxID: id}); err != nil {
			t.Errorf("shut down sandbox %s: %v", id, err)
		}
	})
}

// runPod creates and starts a pod.
func (ts *testService) runPod(t *testing.T, id string) {
	t.Helper()
	ts.createPod(t, id)
	if _, err := ts.sb.StartSandbox(testCtx(), &sandboxAPI.StartSandboxRequest{SandboxID: id}); err != nil {
		t.Fatal(err)
	}
}

// containerRequest is a Create for container id routed to pod.
func containerRequest(t *testing.T, pod, id string) *taskAPI.CreateTaskRequest {
	t.Helper()
	bundle := t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle, "sandbox"), []byte(pod), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.2.0","linux":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return &taskAPI.CreateTaskRequest{ID: id, Bundle: bundle}
}

// waitStopping waits until the stop or shutdown of pod id has begun.
func (ts *testService) waitStopping(t *testing.T, id string) {
	t.Helper()
	p, err := ts.s.pods.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if st := p.State(); st == "stopping" || st == "stopped" || st == "shut down" {
			return
		}
	}
	t.Fatal("the pod's shutdown did not begin")
}

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

// exited tells whether the shim has ended itself (runc's Shutdown) a
// moment after its last reply.
func (ts *testService) exited() bool {
	time.Sleep(2 * replyGrace)
	return ts.runc.shutdowns.Load() > 0
}

// A ShutdownSandbox naming a pod this shim does not hold (bad input, or a
// pod long gone) must not end the shim of a live pod.
func TestShutdownOfAnotherPodKeepsTheShim(t *testing.T) {
	ts := newTestService(t)
	ts.runPod(t, "kept")
	if _, err := ts.sb.ShutdownSandbox(testCtx(), &sandboxAPI.ShutdownSandboxRequest{SandboxID: "stranger"}); err != nil {
		t.Fatal(err)
	}
	if ts.exited() {
		t.Fatal("the shim of a live pod exited on the shutdown of another")
	}
	if p, err := ts.s.pods.Get("kept"); err != nil || p.PausePid() == 0 {
		t.Fatalf("the live pod after another's shutdown: %v", err)
	}
}

// A shared shim stays while any pod it was given remains (even one whose
// CreateSandbox has not come yet), takes each shut-down pod out of its
// pool and forgets it, and leaves the pool, then exits, with its last.
func TestSharedShimLeavesItsPoolWithItsLastPod(t *testing.T) {
	opts := options.Default()
	opts.PodsPerShim = 0
	ts := newTestServiceWith(t, opts)
	dir := pool.Dir(t.TempDir(), "k")
	pl, err := pool.Lock(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{pl.AddShim("me", "unix:///me"), pl.Assign("me", "a"), pl.Assign("me", "b"), pl.Assign("me", "coming")} {
		if step != nil {
			t.Fatal(step)
		}
	}
	pl.Unlock()
	ts.s.shared = &pool.SharedShim{Dir: dir, Name: "me"}
	ctx := testCtx()
	// containerd makes a pod's bundle, beside the others, before its start.
	bundles := t.TempDir()
	for _, id := range []string{"a", "b", "coming"} {
		if err := os.Mkdir(filepath.Join(bundles, id), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a", "b"} {
		if _, err := ts.sb.CreateSandbox(ctx, &sandboxAPI.CreateSandboxRequest{SandboxID: id, BundlePath: filepath.Join(bundles, id)}); err != nil {
			t.Fatal(err)
		}
		if _, err := ts.sb.StartSandbox(ctx, &sandboxAPI.StartSandboxRequest{SandboxID: id}); err != nil {
			t.Fatal(err)
		}
	}
	shutdown := func(id string) {
		t.Helper()
		if _, err := ts.sb.ShutdownSandbox(ctx, &sandboxAPI.ShutdownSandboxRequest{SandboxID: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := ts.s.pods.Get(id); !errdefs.IsNotFound(err) {
			t.Errorf("pod %s still held after its shutdown: %v", id, err)
		}
	}
	shutdown("a")
	shutdown("b")
	if ts.exited() {
		t.Fatal("the shared shim exited while a pod given to it was still to come")
	}
	// The pod that was to come fails its CreateSandbox: containerd shuts it down.
	shutdown("coming")
	if !ts.exited() {
		t.Fatal("the shared shim did not exit after its last pod")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the shim's pool is left: %v", err)
	}
}
