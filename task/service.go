// Package task is the shim's ttrpc face: thin adapters of the sandbox API
// v1 (sandbox.go) and the task API v3 over the shim's pods (package pod,
// through its Registry). Containers run through containerd's own runc task
// service, so they behave exactly as under io.containerd.runc.v2: this
// package routes a container to its pod (which joins it, stops it with the
// pod), hands runc its options, keeps the shim alive while a pod lives. A
// shared shim's place in its pool is package pool's. A shim started for a
// task outside any sandbox is a drop-in runc.v2 shim.
package task

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	sandboxAPI "github.com/containerd/containerd/api/runtime/sandbox/v1"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/api/types/task"
	runctask "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/task"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	runcC "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/runcmonitor"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pool"
)

// Service holds the shim's pods (one, or up to PodsPerShim on a shared
// shim) and their containers.
type Service struct {
	runc taskAPI.TTRPCTaskService
	// grpcAddress is containerd's, for the shim's sockets.
	grpcAddress string
	// opts are the runtime's options, as `start` checked them.
	opts options.Options
	// socketDir is containerd's shim socket directory.
	socketDir string
	// pods are the shim's pods, by sandbox id.
	pods *pod.Registry
	// shared is the shim's place in its pool when pods share shims; nil
	// for a shim of one pod.
	shared *pool.SharedShim
}

// NewService wraps containerd's runc task service with the shim's pods.
func NewService(ctx context.Context, publisher shim.Publisher, sd shutdown.Service, grpcAddress string) (*Service, error) {
	opts, err := options.FromEnv()
	if err != nil {
		return nil, err
	}
	if opts.LogLevel != "" {
		if err := log.SetLevel(opts.LogLevel); err != nil {
			return nil, err
		}
	}
	events := &oomEvents{Publisher: publisher}
	r, err := runctask.NewTaskService(ctx, events, sd)
	if err != nil {
		return nil, err
	}
	// After NewTaskService, which sets the stock monitor: runc's own exits
	// must not wait behind the exits its exit handler has yet to take.
	runcC.Monitor = runcmonitor.New(reaper.Default)
	s := newService(r, opts, os.Getenv(options.ContainerdRootEnv))
	events.pods.Store(s.pods)
	s.grpcAddress = grpcAddress
	s.socketDir = os.Getenv(options.SocketDirEnv)
	s.shared = pool.SharedFromEnv()
	if s.shared != nil {
		log.G(ctx).WithFields(log.Fields{"shim": s.shared.Name, "pods_per_shim": opts.PodsPerShim}).Info("shared shim")
		go s.shared.ExpireUnclaimed(context.WithoutCancel(ctx), poolServer{s}, time.Duration(opts.StartTimeout))
	}
	return s, nil
}

func newService(r taskAPI.TTRPCTaskService, opts options.Options, containerdRoot string) *Service {
	s := &Service{runc: r, opts: opts}
	s.pods = pod.NewRegistry(&pod.Deps{
		Options:        opts,
		ContainerdRoot: containerdRoot,
		Tasks:          r,
		Abandoned:      func(ctx context.Context, p *pod.Pod) { s.podGone(ctx, p.ID(), p.Bundle()) },
	}, int(opts.PodsPerShim))
	return s
}

// UnaryServerInterceptor puts the pod's fields on the logger of every call
// of a shim that holds one pod, so each line of its log says which pod it
// is about; a shared shim's sandbox calls name their pod themselves.
func (s *Service) UnaryServerInterceptor() ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, unmarshal ttrpc.Unmarshaler, _ *ttrpc.UnaryServerInfo, method ttrpc.Method) (any, error) {
		if p := s.pods.Only(); p != nil {
			ctx = podContext(ctx, p)
		}
		return method(ctx, unmarshal)
	}
}

// RegisterTTRPC serves task v3 and sandbox v1 on the shim's one socket.
func (s *Service) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTTRPCTaskService(server, &taskService{TTRPCTaskService: s.runc, svc: s})
	sandboxAPI.RegisterTTRPCSandboxService(server, &sandboxService{svc: s})
	return nil
}

// taskService is runc.v2's task service but for the calls the pod changes.
type taskService struct {
	taskAPI.TTRPCTaskService
	svc *Service
}

// sandboxOf names the sandbox containerd routed a task to (the bundle's
// "sandbox" file), or "" for a task outside any sandbox.
func sandboxOf(bundle string) string {
	data, err := os.ReadFile(filepath.Join(bundle, "sandbox"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

func (t *taskService) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	if err := identifiers.Validate(r.ID); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if !filepath.IsAbs(r.Bundle) {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "bundle path %q is not absolute", r.Bundle)
	}
	sandboxID := sandboxOf(r.Bundle)
	p, cgroupsPath, err := t.svc.admit(ctx, r, sandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	failpoint.Inject(failpoint.TaskCreateAfterAdmit)
	ctx = log.WithLogger(ctx, log.G(ctx).WithField("container", r.ID))
	resp, err := t.create(ctx, r, cgroupsPath)
	failpoint.Inject(failpoint.TaskCreateAfterRunc)
	if p != nil {
		p.Created(r.ID, err == nil)
	}
	if err != nil {
		return nil, err
	}
	log.G(ctx).WithField("pid", resp.Pid).Info("container created")
	return resp, nil
}

// create has runc create an admitted container, whose spec's cgroup path
// (after admit's rewrite) is cgroupsPath.
func (t *taskService) create(ctx context.Context, r *taskAPI.CreateTaskRequest, cgroupsPath string) (*taskAPI.CreateTaskResponse, error) {
	if err := t.svc.runcOptions(r, cgroupsPath); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	resp, err := t.TTRPCTaskService.Create(ctx, r)
	return resp, explainSpecVersion(ctx, err, r.Options, r.Bundle)
}

// runcOptions gives runc.v2's task service the runc options it reads: the
// runtime's options table reaches a task as containerd's generic
// runtimeoptions, which runc.v2 cannot read. Runc's own options pass as
// sent. runc's cgroup driver follows the container's cgroup path (see
// pod.RuncSystemdCgroup).
func (s *Service) runcOptions(r *taskAPI.CreateTaskRequest, cgroupsPath string) error {
	opts := s.opts.Runc()
	switch {
	case r.Options.GetTypeUrl() == "" || r.Options.MessageIs(&runtimeoptions.Options{}):
	case r.Options.MessageIs(&runcoptions.Options{}):
		opts = &runcoptions.Options{}
		if err := r.Options.UnmarshalTo(opts); err != nil {
			return fmt.Errorf("runc options: %v: %w", err, errdefs.ErrInvalidArgument)
		}
	default:
		return fmt.Errorf("task options of type %q: want runtime or runc options: %w", r.Options.GetTypeUrl(), errdefs.ErrInvalidArgument)
	}
	systemd, decided, err := pod.RuncSystemdCgroup(r.ID, cgroupsPath)
	if err != nil {
		return err
	}
	if decided {
		opts.SystemdCgroup = systemd
	}
	if r.Options.GetTypeUrl() == "" && proto.Equal(opts, &runcoptions.Options{}) {
		return nil // runc.v2's defaults, as sent
	}
	a, err := anypb.New(opts)
	if err != nil {
		return err
	}
	r.Options = a
	return nil
}

// admit joins a container to the pod it was routed to. It returns that pod
// when the container became one of its members, nil for a container
// outside any pod of this shim, and the container's cgroup path: its spec
// is read once, by the pod's rewrite or here.
func (s *Service) admit(ctx context.Context, r *taskAPI.CreateTaskRequest, sandboxID string) (*pod.Pod, string, error) {
	spec := filepath.Join(r.Bundle, "config.json")
	if sandboxID == "" {
		cgroupsPath, err := pod.SpecCgroupsPath(spec)
		return nil, cgroupsPath, err
	}
	p, err := s.pods.Get(sandboxID)
	if err != nil {
		// CRI's podsandbox mode: the sandbox is a pause container this shim
		// runs as a task, and CRI already joined its namespaces. runc's
		// state runs `runc state`: under no lock.
		if _, err := s.runc.State(ctx, &taskAPI.StateRequest{ID: sandboxID}); err != nil {
			err = errgrpc.ToNative(err)
			if errdefs.IsNotFound(err) {
				return nil, "", fmt.Errorf("sandbox %s of container %s is gone: %v: %w", sandboxID, r.ID, err, errdefs.ErrFailedPrecondition)
			}
			return nil, "", fmt.Errorf("state of sandbox %s of container %s: %w", sandboxID, r.ID, err)
		}
		cgroupsPath, err := pod.SpecCgroupsPath(spec)
		return nil, cgroupsPath, err
	}
	cgroupsPath, err := p.Admit(ctx, r.ID, spec)
	if err != nil {
		return nil, "", err
	}
	return p, cgroupsPath, nil
}

func (t *taskService) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	resp, err := t.TTRPCTaskService.Delete(ctx, r)
	if err == nil && r.ExecID == "" {
		if p := t.svc.pods.MemberOf(r.ID); p != nil {
			p.Forget(r.ID)
		}
		log.G(ctx).WithFields(log.Fields{"container": r.ID, "exit_status": resp.ExitStatus}).Info("container deleted")
	}
	return resp, err
}

func (t *taskService) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	resp, err := t.TTRPCTaskService.Start(ctx, r)
	if err == nil {
		log.G(ctx).WithFields(log.Fields{"container": r.ID, "exec": r.ExecID, "pid": resp.Pid}).Debug("process started")
	}
	return resp, err
}

// Pids answers for the sandbox id too: containerd probes it when it reloads
// shims after a restart, and keeps the shim while it has pids.
func (t *taskService) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	if pid := t.svc.pausePid(r.ID); pid > 0 {
		return &taskAPI.PidsResponse{Processes: []*task.ProcessInfo{{Pid: uint32(pid)}}}, nil
	}
	// An exited, not yet deleted container has no pids; answering so would
	// make a restarting containerd take it for a leaked shim, clean it up
	// and lose its exit status. An error keeps it, and its status, known.
	if st, err := t.TTRPCTaskService.State(ctx, &taskAPI.StateRequest{ID: r.ID}); err == nil && st.Status == task.Status_STOPPED {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s has exited (status %d)", r.ID, st.ExitStatus)
	}
	return t.TTRPCTaskService.Pids(ctx, r)
}

func (t *taskService) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	resp, err := t.TTRPCTaskService.Connect(ctx, r)
	if err == nil && resp.TaskPid == 0 {
		resp.TaskPid = uint32(t.svc.pausePid(r.ID))
	}
	return resp, err
}

func (t *taskService) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*ptypes.Empty, error) {
	if t.svc.isMember(r.ID) {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotImplemented, "checkpoint of container %s: containers of a pause pod cannot be checkpointed apart from their pod", r.ID)
	}
	return t.TTRPCTaskService.Checkpoint(ctx, r)
}

// Shutdown is called after every task delete. The shim stays while its pod
// does; ShutdownSandbox ends it. A shared shim leaves its pool first, and
// stays while a start has given it a pod still to come.
func (t *taskService) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*ptypes.Empty, error) {
	if t.svc.pods.Live() {
		return &ptypes.Empty{}, nil
	}
	if t.svc.shared != nil {
		t.svc.shared.Retire(ctx, poolServer{t.svc}, "", "")
		return &ptypes.Empty{}, nil
	}
	return t.TTRPCTaskService.Shutdown(ctx, r)
}

func (s *Service) isMember(id string) bool { return s.pods.MemberOf(id) != nil }

// pausePid is the pause task's pid when id names a ready pod, else 0.
func (s *Service) pausePid(id string) int {
	p, err := s.pods.Get(id)
	if err != nil {
		return 0
	}
	return p.PausePid()
}
