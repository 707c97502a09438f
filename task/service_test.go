package task

import (
	"context"
	"os"
	"path/filepath"
	"slices"
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
