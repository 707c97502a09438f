// Package pod runs a shim's pods, each a state machine from CreateSandbox
// to its removal.
package pod

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/log"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

// A pod's configuration (CRI's PodSandboxConfig, read by package
// cri, or the spec `ctr sandbox run` writes), its pause task (package pause),
// its cgroups (package cgroups), its files (package files), the containers
// that joined it and the state file `shim delete` cleans up from all follow
// its state.
//
// It stands at the top level, beside the ttrpc services (package task) and
// the bootstrap (package shim), because both need it and neither should need
// the other: the services drive pods through a Registry, `shim delete`
// removes what a dead shim's pod left (CleanupBundle). Of this module it
// imports its own subpackages, options and pool.
//
// A pod's states (state.go), one type each, as runc.v2's process/*_state.go
// are for a process:
//
//	created ──start──▶ starting ──ok──▶ ready ──pause dies──▶ pause exited
//	   ▲                  │                │                      │
//	   └─────failed───────┘                │                      │
//	   │                  │                │                      │
//	   └───────stop───────┴──────stop──────┴────────stop──────────┘
//	                           ▼
//	                       stopping ──stop done──▶ stopped ──stop──▶ stopping
//	                           │
//	                           └──shutdown done──▶ shut down
//
// A created pod that is not started within StartTimeout is abandoned
// (created → stopping → shut down). A stop that begins while a start is
// under way waits for it, and stops what it made. An operation a state does
// not allow answers a FailedPrecondition (or AlreadyExists) error naming the
// sandbox and its state.
//
// Each pod has its own lock, held only to read or change its state and its
// members: the work that waits (the pause task getting ready, stopping
// containers, the pause task's exit, removing cgroups and mounts) runs
// between two transitions without it, and the state tells the calls that
// come meanwhile where the pod stands.

// pauseStopGrace is how long the pause task gets to exit on SIGTERM.
const pauseStopGrace = 2 * time.Second

// stepHook, when set (by tests), runs after each step of a start that
// leaves something on the host, and as a pod's cleanup begins: a test
// stops the call there, as a shim killed at that point would stop, or
// holds it to let another call run meanwhile.
var stepHook func(name string)

// passStep marks a step of a start or a cleanup (see stepHook).
func passStep(name string) {
	if stepHook != nil {
		stepHook(name)
	}
}

// Tasks runs a pod's containers: containerd's runc task service.
type Tasks interface {
	Kill(context.Context, *taskAPI.KillRequest) (*ptypes.Empty, error)
	Wait(context.Context, *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error)
	Delete(context.Context, *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error)
}

// Deps are what a shim gives each of its pods: its options, where
// containerd keeps its data, and the services a pod calls on.
type Deps struct {
	// Options are the runtime's, as `shim start` checked them.
	Options options.Options
	// ContainerdRoot is containerd's root directory: a CRI pod's files go
	// under it.
	ContainerdRoot string
	// Tasks runs the pods' containers.
	Tasks Tasks
	// Abandoned runs once a pod created but not started within the
	// StartTimeout has been removed.
	Abandoned func(ctx context.Context, p *Pod)
	// StartPause starts a pause task: pause.Start when nil (tests slow it).
	StartPause func(pause.Config) (*pause.Process, error)
}

// runPause runs a pause task with StartPause, else pause.Start.
func (d *Deps) runPause(c pause.Config) (*pause.Process, error) {
	if d.StartPause != nil {
		return d.StartPause(c)
	}
	return pause.Start(c)
}

// Pod is one pod: what CreateSandbox asked for, and what it became.
type Pod struct {
	// Set at creation, read without the lock.
	id        string
	bundle    string
	namespace string
	cfg       *podConfig
	pauseCfg  pause.Config
	createdAt time.Time
	deps      *Deps
	// reg is the registry that holds the pod (nil for a pod made alone):
	// set before anyone else knows the pod.
	reg *Registry
	// gone is set once the pod is shut down, for good: the registry reads
	// it without the pod's lock.
	gone atomic.Bool

	mu    sync.Mutex
	state state
	// rec is what the state file keeps: its cgroups are set at creation
	// (read without the lock), the rest when the pod starts.
	rec record
	// pause is the pause task, once a start made it.
	pause *pause.Process
	// placed is closed once the pause task is in its cgroup.
	placed chan struct{}
	// members are the ids of the pod's containers; creating those whose
	// runc create is under way (outside the lock), each with a channel
	// closed when it ends: stopping the pod waits for them, or a container
	// created meanwhile would outlive it.
	members  map[string]struct{}
	creating map[string]chan struct{}
	// oom counts the pod's OOM kills (see MissedOOM).
	oom oomAccount
	// cleanedUp runs the pod's cleanup once (see cleanup).
	cleanedUp sync.Once
}

// Spec is what CreateSandbox asks for.
type Spec struct {
	ID, Namespace, Bundle string
	// Options are the sandbox's options: CRI's PodSandboxConfig, or none
	// (the bundle's config.json, if any, then says).
	Options   *anypb.Any
	NetNSPath string
}

// newPod checks the pod's configuration and prepares (without starting) its
// pause task.
func newPod(deps *Deps, sp Spec) (*Pod, error) {
	// Both name paths (the pod's cgroup, its files): neither may hold a
	// separator or climb with "..".
	if err := identifiers.Validate(sp.ID); err != nil {
		return nil, fmt.Errorf("sandbox id: %w", err)
	}
	if err := identifiers.Validate(sp.Namespace); err != nil {
		return nil, fmt.Errorf("namespace: %w", err)
	}
	cfg, err := parsePodConfig(sp.Options, sp.Bundle, sp.NetNSPath)
	if err != nil {
		return nil, err
	}
	uid, gid := cfg.pauseIDs(deps.Options.PauseUID, deps.Options.PauseGID)
	p := &Pod{
		id:        sp.ID,
		bundle:    sp.Bundle,
		namespace: sp.Namespace,
		cfg:       cfg,
		createdAt: time.Now(),
		deps:      deps,
		rec:       record{ID: sp.ID, bundle: sp.Bundle},
		pauseCfg: pause.Config{
			NetNSPath:  cfg.NetNSPath,
			NewNetwork: !cfg.HostNetwork && cfg.NetNSPath == "",
			NewIPC:     !cfg.HostIPC,
			NewUTS:     !cfg.HostUTS,
			NewPID:     !cfg.HostPID,
			Hostname:   cfg.Hostname,
			Sysctls:    cfg.Sysctls,
			UID:        uid,
			GID:        gid,
		},
		members:  map[string]struct{}{},
		creating: map[string]chan struct{}{},
	}
	if u := cfg.Userns; u != nil {
		// Inside the pod's user namespace the pause task takes the pod's
		// run-as IDs (mapped: parsePodConfig checked), else the highest
		// mapped IDs up to PauseUID and PauseGID, never the pod's root.
		p.pauseCfg.UIDMappings = []syscall.SysProcIDMap{{ContainerID: int(u.UIDs[0].ContainerID), HostID: int(u.UIDs[0].HostID), Size: int(u.UIDs[0].Length)}}
		p.pauseCfg.GIDMappings = []syscall.SysProcIDMap{{ContainerID: int(u.GIDs[0].ContainerID), HostID: int(u.GIDs[0].HostID), Size: int(u.GIDs[0].Length)}}
		p.pauseCfg.UID = uint32(min(u.UIDs[0].Length-1, uint64(uid)))
		p.pauseCfg.GID = uint32(min(u.GIDs[0].Length-1, uint64(gid)))
	}
	if err := p.pauseCfg.Validate(); err != nil {
		return nil, err
	}
	layout, err := cgroupLayout(sp.ID, sp.Namespace, cfg, deps.Options.SystemdCgroup)
	if err != nil {
		return nil, err
	}
	if layout.Systemd() {
		if err := cgroups.RequireSystemd(fmt.Sprintf("sandbox %s (cgroup %s)", sp.ID, layout.PodSlice)); err != nil {
			return nil, err
		}
	}
	p.rec.Layout = layout
	return p, nil
}

// arm puts a new pod in its first state, created, with the timer that
// abandons it if no start comes.
func (p *Pod) arm(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	timer := time.AfterFunc(time.Duration(p.deps.Options.StartTimeout), func() { p.abandon(context.WithoutCancel(ctx)) })
	p.state = &createdState{timer: timer}
}

// ID is the pod's sandbox id.
func (p *Pod) ID() string { return p.id }

// Bundle is the pod's bundle directory.
func (p *Pod) Bundle() string { return p.bundle }

// CreatedAt is when CreateSandbox made the pod.
func (p *Pod) CreatedAt() time.Time { return p.createdAt }

// LogFields name the pod in the shim's log: its sandbox id, and for a
// Kubernetes pod its namespace/name as kubectl shows it.
func (p *Pod) LogFields() log.Fields {
	f := log.Fields{"sandbox": p.id}
	if c := p.cfg.CRI; c != nil && c.Name != "" {
		f["pod"] = c.Namespace + "/" + c.Name
	}
	return f
}

// Describe is what the log says of a new pod.
func (p *Pod) Describe() log.Fields {
	return log.Fields{"netns": p.cfg.NetNSPath, "cri": p.cfg.FromCRI}
}

// State names the pod's state.
func (p *Pod) State() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state.String()
}
