package task

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	sandboxAPI "github.com/containerd/containerd/api/runtime/sandbox/v1"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

// Sandbox states as containerd's CRI reads them.
const (
	stateReady    = "SANDBOX_READY"
	stateNotReady = "SANDBOX_NOTREADY"
)

// sandboxService is sandbox API v1 over the shim's pod.
type sandboxService struct{ s *Service }

// lookupPod is getPod under the lock.
func (s *Service) lookupPod(id string) (*pod, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getPod(id)
}

// pauseOf is the pod's pause task (nil until started), read under the lock:
// StartSandbox sets it.
func (s *Service) pauseOf(p *pod) *pause.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return p.pause
}

// startedPause is the pod's pause task once the start under way, if any,
// has ended: nil if the pod has not started.
func (s *Service) startedPause(ctx context.Context, p *pod) (*pause.Process, error) {
	s.mu.Lock()
	proc, starting := p.pause, p.starting
	s.mu.Unlock()
	if starting == nil {
		return proc, nil
	}
	select {
	case <-starting:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.pauseOf(p), nil
}

// podCgroup opens the pod's cgroup, for metrics and updates.
func podCgroup(p *pod) (cgroup, error) {
	if p.state.PodCgroup == "" {
		return nil, fmt.Errorf("sandbox %q has no cgroup of its own: %w", p.state.ID, errdefs.ErrNotFound)
	}
	cg, err := loadCgroup(p.state.PodCgroup)
	if err != nil {
		return nil, fmt.Errorf("cgroup of sandbox %q: %v: %w", p.state.ID, err, errdefs.ErrNotFound)
	}
	return cg, nil
}

// getPod returns the pod named id, or NotFound; s.mu must be held.
func (s *Service) getPod(id string) (*pod, error) {
	if s.pod == nil || s.pod.state.ID != id {
		return nil, fmt.Errorf("sandbox %q: %w", id, errdefs.ErrNotFound)
	}
	return s.pod, nil
}

func (x *sandboxService) CreateSandbox(ctx context.Context, r *sandboxAPI.CreateSandboxRequest) (*sandboxAPI.CreateSandboxResponse, error) {
	if err := identifiers.Validate(r.SandboxID); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if !filepath.IsAbs(r.BundlePath) {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "bundle path %q is not absolute", r.BundlePath)
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	s := x.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pod != nil {
		if s.pod.state.ID == r.SandboxID {
			return nil, errgrpc.ToGRPCf(errdefs.ErrAlreadyExists, "sandbox %q", r.SandboxID)
		}
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "this shim holds sandbox %q, not %q", s.pod.state.ID, r.SandboxID)
	}
	cfg, err := parsePodConfig(r.Options, r.BundlePath, r.NetnsPath)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	p, err := newPod(r.SandboxID, ns, r.BundlePath, cfg, s.opts.PauseUID, s.opts.PauseGID, s.opts.SystemdCgroup)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	s.pod = p
	fields := podLogFields(r.SandboxID, cfg)
	s.logFields.Store(&fields)
	p.startTimer = time.AfterFunc(time.Duration(s.opts.StartTimeout), func() { s.abandon(context.WithoutCancel(ctx), p) })
	log.G(ctx).WithFields(fields).WithFields(log.Fields{"netns": cfg.NetNSPath, "cri": cfg.FromCRI}).Info("sandbox created")
	return &sandboxAPI.CreateSandboxResponse{}, nil
}

func (x *sandboxService) StartSandbox(ctx context.Context, r *sandboxAPI.StartSandboxRequest) (*sandboxAPI.StartSandboxResponse, error) {
	s := x.s
	p, st, err := s.beginStart(ctx, r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	proc, st, err := p.start(ctx, s.containerdRoot, st)
	s.endStart(ctx, p, proc, st, err)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	log.G(ctx).WithField("pid", proc.Pid).Info("sandbox started")
	return &sandboxAPI.StartSandboxResponse{
		Pid:       uint32(proc.Pid),
		CreatedAt: protobuf.ToTimestamp(p.createdAt),
	}, nil
}

// beginStart marks the pod as starting, so that a call coming while its
// pause task gets ready gets an answer instead of waiting for the lock. It
// returns the pod's state for the start to fill in.
func (s *Service) beginStart(ctx context.Context, id string) (*pod, podState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.getPod(id)
	switch {
	case err != nil:
		return nil, podState{}, err
	case p.shutdown:
		return nil, podState{}, fmt.Errorf("sandbox %q is shut down: %w", id, errdefs.ErrFailedPrecondition)
	case p.stopping:
		return nil, podState{}, fmt.Errorf("sandbox %q is stopped: %w", id, errdefs.ErrFailedPrecondition)
	case p.starting != nil:
		return nil, podState{}, fmt.Errorf("sandbox %q is already starting: %w", id, errdefs.ErrAlreadyExists)
	case p.pause != nil:
		return nil, podState{}, fmt.Errorf("sandbox %q already started: %w", id, errdefs.ErrAlreadyExists)
	}
	p.starting = make(chan struct{})
	st := p.state
	st.Sockets = shimSockets(ctx, s.grpcAddress, id)
	return p, st, nil
}

// endStart publishes what a start made (nothing if it failed) and wakes
// the calls waiting for it. A stop that began meanwhile waited for this,
// and stops the pause task now published.
func (s *Service) endStart(ctx context.Context, p *pod, proc *pause.Process, st podState, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(p.starting)
	p.starting = nil
	if err != nil {
		return // the abandon timer still runs
	}
	// Field by field: the pod's cgroup fields are read without the lock.
	p.state.Files, p.state.Sockets = st.Files, st.Sockets
	p.state.PausePid, p.state.PauseStartTime = st.PausePid, st.PauseStartTime
	p.pause = proc
	p.started = true
	p.startTimer.Stop()
	p.placed = make(chan struct{})
	go p.placePause(context.WithoutCancel(ctx))
	go s.onPauseExit(ctx, proc)
}

// abandon removes a pod that was created but not started within the
// StartTimeout, and ends the shim: containerd's CRI shuts a sandbox down only
// if it fails after StartSandbox, so a pod whose pause image pull or start
// failed would otherwise keep its shim, and its cgroup, for ever.
func (s *Service) abandon(ctx context.Context, p *pod) {
	s.mu.Lock()
	for p.starting != nil {
		// A start under way decides: wait for it, without the lock.
		starting := p.starting
		s.mu.Unlock()
		<-starting
		s.mu.Lock()
	}
	if s.pod != p || p.started || p.stopping || p.shutdown {
		s.mu.Unlock()
		return
	}
	p.stopping = true
	s.mu.Unlock()
	p.cleanup(ctx)
	s.mu.Lock()
	p.shutdown = true
	s.mu.Unlock()
	log.G(ctx).WithField("start_timeout", time.Duration(s.opts.StartTimeout)).Warn("sandbox created but never started: removed, shim exits")
	s.exitAfterReply(ctx, p.state.ID)
}

// podLogFields name a pod in the shim's log: its sandbox id, and for a
// Kubernetes pod its namespace/name as kubectl shows it.
func podLogFields(id string, cfg *podConfig) log.Fields {
	f := log.Fields{"sandbox": id}
	if c := cfg.CRI; c != nil && c.Name != "" {
		f["pod"] = c.Namespace + "/" + c.Name
	}
	return f
}

// onPauseExit ends the pod's containers when its pause task dies: without it
// they would run on in namespaces nobody holds.
func (s *Service) onPauseExit(ctx context.Context, proc *pause.Process) {
	<-proc.Done()
	status, _ := proc.Exit()
	log.G(ctx).WithField("status", status).Info("pause task exited")
	s.signalMembers(context.WithoutCancel(ctx), syscall.SIGKILL)
}

func (x *sandboxService) Platform(ctx context.Context, r *sandboxAPI.PlatformRequest) (*sandboxAPI.PlatformResponse, error) {
	_, err := x.s.lookupPod(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &sandboxAPI.PlatformResponse{Platform: &types.Platform{OS: "linux", Architecture: goruntime.GOARCH}}, nil
}

// StopSandbox stops the pod: SIGTERM to every container at once, SIGKILL to
// those still running at the timeout, then the pause task last.
func (x *sandboxService) StopSandbox(ctx context.Context, r *sandboxAPI.StopSandboxRequest) (*sandboxAPI.StopSandboxResponse, error) {
	start := time.Now()
	s := x.s
	p, err := s.lookupPod(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if err := s.quiesce(ctx, p); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	timeout := time.Duration(r.TimeoutSecs) * time.Second
	if timeout == 0 {
		timeout = time.Duration(s.opts.DefaultStopTimeout)
	}
	s.stopMembers(ctx, timeout)
	stopPause(ctx, s.pauseOf(p))
	log.G(ctx).WithField("took", time.Since(start)).Info("sandbox stopped")
	return &sandboxAPI.StopSandboxResponse{}, nil
}

// stopMembers gives the pod's containers timeout to exit on SIGTERM (none
// when it is zero), then kills what is left.
func (s *Service) stopMembers(ctx context.Context, timeout time.Duration) {
	if timeout > 0 {
		s.signalMembers(ctx, syscall.SIGTERM)
		wctx, cancel := context.WithTimeout(ctx, timeout)
		s.waitMembers(wctx)
		cancel()
	}
	s.signalMembers(ctx, syscall.SIGKILL)
	s.waitMembers(ctx)
}

func (s *Service) memberIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.members))
	for id := range s.members {
		ids = append(ids, id)
	}
	return ids
}

// signalMembers signals the init process of every container of the pod; a
// container that has already exited answers NotFound, which is fine.
func (s *Service) signalMembers(ctx context.Context, sig syscall.Signal) {
	for _, id := range s.memberIDs() {
		_, err := s.runc.Kill(ctx, &taskAPI.KillRequest{ID: id, Signal: uint32(sig), All: sig == syscall.SIGKILL})
		if err != nil && !errdefs.IsNotFound(errgrpc.ToNative(err)) {
			log.G(ctx).WithError(err).WithFields(log.Fields{"container": id, "signal": sig}).Debug("signal container")
		}
	}
}

// waitMembers waits, in parallel, until every container has exited or ctx ends.
func (s *Service) waitMembers(ctx context.Context) {
	var wg sync.WaitGroup
	for _, id := range s.memberIDs() {
		wg.Go(func() {
			_, _ = s.runc.Wait(ctx, &taskAPI.WaitRequest{ID: id})
		})
	}
	wg.Wait()
}

func (x *sandboxService) WaitSandbox(ctx context.Context, r *sandboxAPI.WaitSandboxRequest) (*sandboxAPI.WaitSandboxResponse, error) {
	p, err := x.s.lookupPod(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	proc, err := x.s.startedPause(ctx, p)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if proc == nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "sandbox %q is not started", r.SandboxID)
	}
	select {
	case <-proc.Done():
	case <-ctx.Done():
		return nil, errgrpc.ToGRPC(ctx.Err())
	}
	status, at := proc.Exit()
	return &sandboxAPI.WaitSandboxResponse{ExitStatus: uint32(status), ExitedAt: protobuf.ToTimestamp(at)}, nil
}

func (x *sandboxService) SandboxStatus(ctx context.Context, r *sandboxAPI.SandboxStatusRequest) (*sandboxAPI.SandboxStatusResponse, error) {
	s := x.s
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.getPod(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	resp := &sandboxAPI.SandboxStatusResponse{
		SandboxID: r.SandboxID,
		State:     stateNotReady,
		CreatedAt: protobuf.ToTimestamp(p.createdAt),
	}
	if p.pause != nil {
		resp.Pid = uint32(p.pause.Pid)
		if p.ready() {
			resp.State = stateReady
		} else if p.pause.Exited() {
			_, at := p.pause.Exit()
			resp.ExitedAt = protobuf.ToTimestamp(at)
		}
	}
	if r.Verbose {
		cfg, _ := json.Marshal(p.cfg)
		resp.Info = map[string]string{
			"info":         p.criInfo(s.opts),
			"pause_pid":    strconv.Itoa(p.state.PausePid),
			"pause_args":   fmt.Sprint(p.pauseCfg.Args()),
			"pod_cgroup":   p.state.PodCgroup,
			"pause_cgroup": p.state.PauseCgroup,
			"pause_unit":   p.state.PauseUnit,
			"config":       string(cfg),
			"containers":   strconv.Itoa(len(s.members)),
		}
	}
	return resp, nil
}

func (x *sandboxService) PingSandbox(ctx context.Context, r *sandboxAPI.PingRequest) (*sandboxAPI.PingResponse, error) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	p, err := x.s.getPod(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if p.pause != nil && !p.ready() {
		return nil, errgrpc.ToGRPCf(errdefs.ErrUnavailable, "sandbox %q: pause task has exited", r.SandboxID)
	}
	return &sandboxAPI.PingResponse{}, nil
}

// ShutdownSandbox ends the pod for good: whatever still runs is killed, the
// pod's cgroups and files are removed, and the shim exits once no container
// is left (containerd deletes the bundle next).
func (x *sandboxService) ShutdownSandbox(ctx context.Context, r *sandboxAPI.ShutdownSandboxRequest) (*sandboxAPI.ShutdownSandboxResponse, error) {
	start := time.Now()
	s := x.s
	s.mu.Lock()
	p, err := s.getPod(r.SandboxID)
	never := s.pod == nil
	s.mu.Unlock()
	if never {
		// CreateSandbox failed: containerd shuts the shim down, which has
		// nothing of the pod to clean.
		s.exitAfterReply(ctx, r.SandboxID)
		return &sandboxAPI.ShutdownSandboxResponse{}, nil
	}
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if err := s.quiesce(ctx, p); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	s.stopMembers(ctx, 0)
	for _, id := range s.memberIDs() {
		if _, err := s.runc.Delete(ctx, &taskAPI.DeleteRequest{ID: id}); err != nil {
			log.G(ctx).WithError(err).WithField("container", id).Warn("delete container left in sandbox")
		}
		s.forget(id)
	}
	p.cleanup(ctx) // quiesced: nothing else changes the pod now
	s.mu.Lock()
	p.shutdown = true
	s.mu.Unlock()
	log.G(ctx).WithField("took", time.Since(start)).Info("sandbox shut down")
	s.exitAfterReply(ctx, r.SandboxID)
	return &sandboxAPI.ShutdownSandboxResponse{}, nil
}

// replyGrace is how long the shim outlives its answer to ShutdownSandbox.
const replyGrace = 200 * time.Millisecond

// exitAfterReply ends the shim (once no container is left) shortly after
// the current call has answered (abandon has no call: the delay is
// harmless). pkg/shim exits as soon as shutdown begins, without draining the
// ttrpc server, and containerd's sandbox controller, unlike its task manager,
// takes a connection closed before the reply for a failure.
//
// containerd deletes the bundle as soon as the reply arrives, and pkg/shim
// finds its socket at exit through a link in the bundle: the socket is
// removed now (the open connection stays usable).
func (s *Service) exitAfterReply(ctx context.Context, id string) {
	removeSockets(shimSockets(ctx, s.grpcAddress, id))
	time.AfterFunc(replyGrace, func() {
		_, _ = s.runc.Shutdown(context.Background(), &taskAPI.ShutdownRequest{})
	})
}

// shimSockets are the addresses of this pod's shim sockets (the debug one
// too), as the bootstrap made them: in the socket directory the bundle's
// link "s" names (the shim's working directory is the bundle).
func shimSockets(ctx context.Context, grpcAddress, id string) []string {
	dir, err := os.Readlink("s")
	if err != nil {
		dir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	var addrs []string
	for _, debug := range []bool{false, true} {
		if address, err := shim.CreateSocketAddress(ctx, dir, grpcAddress, id, debug); err == nil {
			addrs = append(addrs, address)
		}
	}
	return addrs
}

func removeSockets(addrs []string) {
	for _, a := range addrs {
		_ = shim.RemoveSocket(a)
	}
}

func (x *sandboxService) SandboxMetrics(ctx context.Context, r *sandboxAPI.SandboxMetricsRequest) (*sandboxAPI.SandboxMetricsResponse, error) {
	p, err := x.s.lookupPod(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	cg, err := podCgroup(p)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	stats, err := cg.Stat()
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	data, err := typeurl.MarshalAnyToProto(stats)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &sandboxAPI.SandboxMetricsResponse{Metrics: &types.Metric{
		Timestamp: protobuf.ToTimestamp(time.Now()),
		ID:        r.SandboxID,
		Data:      data,
	}}, nil
}

// UpdateSandbox applies the pod's resources to its cgroup. containerd's CRI
// sends them (UpdatePodSandboxResources) as the sandbox's extension
// "updated-resources": the pod's resources and the runtime's overhead,
// whose sum is the pod's limit. The deprecated Resources field (an OCI
// LinuxResources, which containerd never sets) is read for other clients.
func (x *sandboxService) UpdateSandbox(ctx context.Context, r *sandboxAPI.UpdateSandboxRequest) (*sandboxAPI.UpdateSandboxResponse, error) {
	p, err := x.s.lookupPod(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	res, err := requestedResources(r)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if res == nil {
		return &sandboxAPI.UpdateSandboxResponse{}, nil
	}
	cg, err := podCgroup(p)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if err := cg.Update(res, p.state.OwnsPodCgroup); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	log.G(ctx).WithField("resources", res).Info("sandbox resources updated")
	return &sandboxAPI.UpdateSandboxResponse{}, nil
}

// updatedResourcesKey and updatedResourcesType name CRI's extension.
const (
	updatedResourcesKey  = "updated-resources"
	updatedResourcesType = "io.containerd.cri.v1/UpdatedResources"
)

// criResources is what the shim applies of CRI's LinuxContainerResources,
// in the JSON form containerd stores the extension in.
type criResources struct {
	CPUPeriod          int64  `json:"cpu_period,omitempty"`
	CPUQuota           int64  `json:"cpu_quota,omitempty"`
	CPUShares          int64  `json:"cpu_shares,omitempty"`
	MemoryLimitInBytes int64  `json:"memory_limit_in_bytes,omitempty"`
	CpusetCpus         string `json:"cpuset_cpus,omitempty"`
	CpusetMems         string `json:"cpuset_mems,omitempty"`
}

// requestedResources returns the pod's limits an update asks for, nil when
// it asks for none.
func requestedResources(r *sandboxAPI.UpdateSandboxRequest) (*specs.LinuxResources, error) {
	if ext := r.GetSandbox().GetExtensions()[updatedResourcesKey]; ext != nil {
		if ext.GetTypeUrl() != updatedResourcesType {
			return nil, fmt.Errorf("sandbox extension %s of type %q: want %s: %w", updatedResourcesKey, ext.GetTypeUrl(), updatedResourcesType, errdefs.ErrInvalidArgument)
		}
		var u struct{ Overhead, Resources *criResources }
		if err := json.Unmarshal(ext.GetValue(), &u); err != nil {
			return nil, fmt.Errorf("sandbox extension %s: %v: %w", updatedResourcesKey, err, errdefs.ErrInvalidArgument)
		}
		return podLimits(u.Resources, u.Overhead), nil
	}
	if r.Resources == nil { //nolint:staticcheck // read for clients other than containerd
		return nil, nil
	}
	var res specs.LinuxResources
	if err := typeurl.UnmarshalTo(r.Resources, &res); err != nil { //nolint:staticcheck
		return nil, fmt.Errorf("sandbox resources: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return &res, nil
}

// podLimits is the pod's cgroup limits: its containers' resources plus the
// runtime's overhead, as the kubelet sizes a pod cgroup. An unlimited
// resource stays unlimited.
func podLimits(res, overhead *criResources) *specs.LinuxResources {
	if res == nil {
		return nil
	}
	if overhead == nil {
		overhead = &criResources{}
	}
	out := &specs.LinuxResources{}
	if res.MemoryLimitInBytes > 0 {
		limit := res.MemoryLimitInBytes + overhead.MemoryLimitInBytes
		out.Memory = &specs.LinuxMemory{Limit: &limit}
	}
	cpu := &specs.LinuxCPU{Cpus: res.CpusetCpus, Mems: res.CpusetMems}
	if res.CPUShares > 0 {
		shares := uint64(res.CPUShares + overhead.CPUShares)
		cpu.Shares = &shares
	}
	if res.CPUQuota > 0 {
		period := uint64(res.CPUPeriod)
		if period == 0 {
			period = 100000 // the kernel's default, the kubelet's too
		}
		quota := res.CPUQuota
		if overhead.CPUQuota > 0 {
			oPeriod := overhead.CPUPeriod
			if oPeriod == 0 {
				oPeriod = 100000
			}
			quota += overhead.CPUQuota * int64(period) / oPeriod
		}
		cpu.Quota, cpu.Period = &quota, &period
	}
	if cpu.Shares != nil || cpu.Quota != nil || cpu.Cpus != "" || cpu.Mems != "" {
		out.CPU = cpu
	}
	if out.Memory == nil && out.CPU == nil {
		return nil
	}
	return out
}
