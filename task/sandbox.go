package task

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"time"

	sandboxAPI "github.com/containerd/containerd/api/runtime/sandbox/v1"
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

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod"
)

// Sandbox states as containerd's CRI reads them.
const (
	stateReady    = "SANDBOX_READY"
	stateNotReady = "SANDBOX_NOTREADY"
)

// sandboxService is sandbox API v1 over the shim's pods.
type sandboxService struct {
	svc *Service

	mu sync.Mutex
	// shuttingDown are the pods a ShutdownSandbox is under way for.
	shuttingDown map[string]bool
}

func (sb *sandboxService) CreateSandbox(ctx context.Context, r *sandboxAPI.CreateSandboxRequest) (*sandboxAPI.CreateSandboxResponse, error) {
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
	failpoint.Inject(failpoint.SandboxCreateBegin)
	p, err := sb.svc.pods.Create(ctx, pod.Spec{ID: r.SandboxID, Namespace: ns, Bundle: r.BundlePath, Options: r.Options, NetNSPath: r.NetnsPath})
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	failpoint.Inject(failpoint.SandboxCreateEnd)
	log.G(podContext(ctx, p)).WithFields(p.Describe()).Info("sandbox created")
	return &sandboxAPI.CreateSandboxResponse{}, nil
}

func (sb *sandboxService) StartSandbox(ctx context.Context, r *sandboxAPI.StartSandboxRequest) (*sandboxAPI.StartSandboxResponse, error) {
	p, err := sb.svc.pods.Get(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	ctx = podContext(ctx, p)
	failpoint.Inject(failpoint.SandboxStartBegin)
	pid, err := p.Start(ctx, shimSockets(ctx, sb.svc.socketDir, sb.svc.grpcAddress, r.SandboxID))
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	failpoint.Inject(failpoint.SandboxStartEnd)
	log.G(ctx).WithField("pid", pid).Info("sandbox started")
	return &sandboxAPI.StartSandboxResponse{
		Pid:       uint32(pid),
		CreatedAt: protobuf.ToTimestamp(p.CreatedAt()),
	}, nil
}

func (sb *sandboxService) Platform(ctx context.Context, r *sandboxAPI.PlatformRequest) (*sandboxAPI.PlatformResponse, error) {
	if _, err := sb.svc.pods.Get(r.SandboxID); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &sandboxAPI.PlatformResponse{Platform: &types.Platform{OS: "linux", Architecture: goruntime.GOARCH}}, nil
}

// StopSandbox stops the pod: SIGTERM to every container at once, SIGKILL to
// those still running at the timeout, then the pause task last.
func (sb *sandboxService) StopSandbox(ctx context.Context, r *sandboxAPI.StopSandboxRequest) (*sandboxAPI.StopSandboxResponse, error) {
	start := time.Now()
	p, err := sb.svc.pods.Get(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	ctx = podContext(ctx, p)
	failpoint.Inject(failpoint.SandboxStopBegin)
	if err := p.Stop(ctx, time.Duration(r.TimeoutSecs)*time.Second); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	failpoint.Inject(failpoint.SandboxStopEnd)
	log.G(ctx).WithField("took", time.Since(start)).Info("sandbox stopped")
	return &sandboxAPI.StopSandboxResponse{}, nil
}

func (sb *sandboxService) WaitSandbox(ctx context.Context, r *sandboxAPI.WaitSandboxRequest) (*sandboxAPI.WaitSandboxResponse, error) {
	p, err := sb.svc.pods.Get(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	status, at, err := p.Wait(ctx)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &sandboxAPI.WaitSandboxResponse{ExitStatus: uint32(status), ExitedAt: protobuf.ToTimestamp(at)}, nil
}

func (sb *sandboxService) SandboxStatus(ctx context.Context, r *sandboxAPI.SandboxStatusRequest) (*sandboxAPI.SandboxStatusResponse, error) {
	p, err := sb.svc.pods.Get(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	st := p.Status(r.Verbose)
	if r.Verbose && st.Info != nil {
		st.Info["shim"] = sb.svc.usage()
	}
	resp := &sandboxAPI.SandboxStatusResponse{
		SandboxID: r.SandboxID,
		State:     stateNotReady,
		Pid:       uint32(st.Pid),
		CreatedAt: protobuf.ToTimestamp(st.CreatedAt),
		Info:      st.Info,
	}
	if st.Ready {
		resp.State = stateReady
	}
	if !st.ExitedAt.IsZero() {
		resp.ExitedAt = protobuf.ToTimestamp(st.ExitedAt)
	}
	return resp, nil
}

func (sb *sandboxService) PingSandbox(ctx context.Context, r *sandboxAPI.PingRequest) (*sandboxAPI.PingResponse, error) {
	p, err := sb.svc.pods.Get(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if err := p.Ping(); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &sandboxAPI.PingResponse{}, nil
}

// ShutdownSandbox ends the pod for good: whatever still runs is killed, the
// pod's cgroups and files are removed (containerd deletes the bundle next).
// A shim of one pod then exits; a shared shim takes the pod out of its pool,
// and exits only once it serves no pod (see podGone).
//
// Two come at once when the kubelet's garbage collection removes a pod
// beside its sync loop. containerd deletes its connection to the shim as
// soon as one has succeeded, failing the other if still under way ("ttrpc:
// closed"), whichever answers first. So the later one answers at once that
// the pod is not found, which containerd's CRI takes for removed, and
// containerd keeps the connection for the call under way.
func (sb *sandboxService) ShutdownSandbox(ctx context.Context, r *sandboxAPI.ShutdownSandboxRequest) (*sandboxAPI.ShutdownSandboxResponse, error) {
	if !sb.beginShutdown(r.SandboxID) {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "sandbox %s: another ShutdownSandbox is removing it", r.SandboxID)
	}
	defer sb.endShutdown(r.SandboxID)
	start := time.Now()
	p, err := sb.svc.pods.Get(r.SandboxID)
	if errdefs.IsNotFound(err) {
		// CreateSandbox failed, or the pod is gone already: containerd shuts
		// the shim down, which has nothing of the pod to clean.
		sb.svc.podGone(ctx, r.SandboxID, "")
		return &sandboxAPI.ShutdownSandboxResponse{}, nil
	}
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	ctx = podContext(ctx, p)
	failpoint.Inject(failpoint.SandboxShutdownBegin)
	if err := p.Shutdown(ctx); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	failpoint.Inject(failpoint.SandboxShutdownEnd)
	log.G(ctx).WithField("took", time.Since(start)).Info("sandbox shut down")
	sb.svc.podGone(ctx, r.SandboxID, p.Bundle())
	return &sandboxAPI.ShutdownSandboxResponse{}, nil
}

// beginShutdown marks pod id's ShutdownSandbox under way, unless one is.
func (sb *sandboxService) beginShutdown(id string) bool {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.shuttingDown[id] {
		return false
	}
	if sb.shuttingDown == nil {
		sb.shuttingDown = map[string]bool{}
	}
	sb.shuttingDown[id] = true
	return true
}

func (sb *sandboxService) endShutdown(id string) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	delete(sb.shuttingDown, id)
}

// shimSockets are the addresses of this pod's shim sockets (the debug one
// too), as the bootstrap made them in containerd's socket directory dir
// (for a shim started before the bootstrap said, the one the bundle's link
// "s" names: the working directory of a shim of one pod is its bundle).
// A pod of a shared shim has its own address: a link to the shim's socket.
func shimSockets(ctx context.Context, dir, grpcAddress, id string) []string {
	if dir == "" {
		var err error
		if dir, err = os.Readlink("s"); err != nil {
			dir = filepath.Join(defaults.DefaultStateDir, "s")
		}
	}
	var addrs []string
	for _, debug := range []bool{false, true} {
		if address, err := shim.CreateSocketAddress(ctx, dir, grpcAddress, id, debug); err == nil {
			addrs = append(addrs, address)
		}
	}
	return addrs
}

func (sb *sandboxService) SandboxMetrics(ctx context.Context, r *sandboxAPI.SandboxMetricsRequest) (*sandboxAPI.SandboxMetricsResponse, error) {
	p, err := sb.svc.pods.Get(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	stats, err := p.Metrics()
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
func (sb *sandboxService) UpdateSandbox(ctx context.Context, r *sandboxAPI.UpdateSandboxRequest) (*sandboxAPI.UpdateSandboxResponse, error) {
	p, err := sb.svc.pods.Get(r.SandboxID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	ctx = podContext(ctx, p)
	res, err := requestedResources(r)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if res == nil {
		return &sandboxAPI.UpdateSandboxResponse{}, nil
	}
	if err := p.Update(res); err != nil {
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

// podContext names the pod on the call's log lines.
func podContext(ctx context.Context, p *pod.Pod) context.Context {
	return log.WithLogger(ctx, log.G(ctx).WithFields(p.LogFields()))
}
