// Package pod is a pod of the shim: its configuration (CRI's
// PodSandboxConfig, or the spec `ctr sandbox run` writes), its pause task
// (package pause), its cgroups and files, the state file `shim delete`
// cleans up from, the containers that joined it, and its lifecycle as a
// state machine.
//
// It stands at the top level, beside the ttrpc services (package task) and
// the bootstrap (package shim), because both need it and neither should need
// the other: the services drive pods through a Registry, `shim delete`
// removes what a dead shim's pod left (CleanupBundle), `shim start` checks the
// systemd driver and moves the shim into its cgroup (RequireSystemd,
// JoinCgroup). Of this module it imports only options and pause.
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
package pod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
	procfs "github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/proc"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/files"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

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

// Host is what a shim gives each of its pods.
type Host struct {
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

func (h *Host) startPause(c pause.Config) (*pause.Process, error) {
	if h.StartPause != nil {
		return h.StartPause(c)
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
	host      *Host

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
func newPod(host *Host, sp Spec) (*Pod, error) {
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
	uid, gid := cfg.pauseIDs(host.Options.PauseUID, host.Options.PauseGID)
	p := &Pod{
		id:        sp.ID,
		bundle:    sp.Bundle,
		namespace: sp.Namespace,
		cfg:       cfg,
		createdAt: time.Now(),
		host:      host,
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
	layout, err := cgroupLayout(sp.ID, sp.Namespace, cfg, host.Options.SystemdCgroup)
	if err != nil {
		return nil, err
	}
	if layout.systemd() {
		if err := cgroups.RequireSystemd(fmt.Sprintf("sandbox %s (cgroup %s)", sp.ID, layout.PodSlice)); err != nil {
			return nil, err
		}
	}
	p.rec.podCgroups = layout
	return p, nil
}

// arm puts a new pod in its first state, created, with the timer that
// abandons it if no start comes.
func (p *Pod) arm(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	timer := time.AfterFunc(time.Duration(p.host.Options.StartTimeout), func() { p.abandon(context.WithoutCancel(ctx)) })
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

// Start makes the pod's files and cgroups and runs its pause task; it
// returns the pause task's pid. sockets are the shim's, which `shim delete`
// removes with the pod if the shim cannot.
func (p *Pod) Start(ctx context.Context, sockets []string) (int, error) {
	rec, err := p.beginStart(sockets)
	if err != nil {
		return 0, err
	}
	proc, rec, err := p.start(ctx, rec)
	if terr := p.endStart(ctx, proc, rec, err); terr != nil {
		if err == nil {
			// What the start made is published nowhere: it goes now.
			p.abortStart(ctx, proc, rec)
		}
		return 0, errors.Join(err, terr)
	}
	if err != nil {
		return 0, err
	}
	return proc.Pid, nil
}

// beginStart moves the pod to starting, so that a call coming while its
// pause task gets ready gets an answer instead of waiting. It returns the
// pod's record for the start to fill in.
func (p *Pod) beginStart(sockets []string) (record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.state.start(p); err != nil {
		return record{}, err
	}
	rec := p.rec
	rec.Sockets = sockets
	return rec, nil
}

// endStart ends the start: the transition first, then, if the start made
// its pause task, it publishes what the start made and wakes the calls
// waiting for it. A stop that began meanwhile waited for this, and stops
// the pause task now published. A transition the state machine does not
// make is an error (the pod's state is not what the start left it in):
// nothing is published then.
func (p *Pod) endStart(ctx context.Context, proc *pause.Process, rec record, err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if terr := p.state.started(p, err == nil); terr != nil {
		log.G(ctx).WithError(terr).Error("end of sandbox start")
		return terr
	}
	if err != nil {
		return nil
	}
	// Field by field: the pod's cgroups are read without the lock.
	p.rec.Files, p.rec.Sockets = rec.Files, rec.Sockets
	p.rec.PausePid, p.rec.PauseStartTime = rec.PausePid, rec.PauseStartTime
	p.pause = proc
	p.placed = make(chan struct{})
	go p.placePause(context.WithoutCancel(ctx), proc)
	go p.watchPause(ctx, proc)
	return nil
}

// start makes the pod's files and cgroups and runs its pause task in them,
// which may take up to the pause task's ready timeout. It runs without the
// pod's lock, so it fills in rec, a copy of the pod's record, and leaves
// the pod itself alone: endStart publishes what it made.
//
// It records before it acts: the state file names all the start will
// make (files, cgroups, units) before it makes any, then the pause task
// once it runs, so that `shim delete` finds whatever a shim killed at any
// step left. On failure it removes what it made, and leaves the shim's
// sockets, which the shim still serves (another start may come).
func (p *Pod) start(ctx context.Context, rec record) (_ *pause.Process, _ record, retErr error) {
	var proc *pause.Process
	defer func() {
		if retErr != nil {
			p.abortStart(ctx, proc, rec)
		}
	}()
	if p.cfg.FromCRI {
		dirs, err := files.Locate(p.host.ContainerdRoot, p.bundle, rec.ID)
		if err != nil {
			return nil, rec, err
		}
		rec.Files = dirs
	}
	if err := rec.save(p.bundle); err != nil {
		return nil, rec, fmt.Errorf("record sandbox %s: %w", p.id, err)
	}
	passStep("start recorded")
	if p.cfg.FromCRI {
		if err := rec.Files.Create(p.cfg.CRI, p.cfg.HostIPC); err != nil {
			return nil, rec, err
		}
		passStep("pod files made")
		failpoint.Inject(failpoint.PodStartAfterFiles)
	}
	if rec.OwnsPodCgroup {
		if _, err := cgroups.New(rec.PodCgroup); err != nil {
			return nil, rec, err
		}
		passStep("pod cgroup made")
		failpoint.Inject(failpoint.PodStartAfterCgroup)
	}
	proc, err := p.host.startPause(p.pauseCfg)
	if err != nil {
		return nil, rec, err
	}
	passStep("pause task started")
	failpoint.Inject(failpoint.PodStartAfterPause)
	start, err := procfs.StartTime(proc.Pid)
	if err == nil && start == 0 {
		err = errors.New("start time 0")
	}
	if err != nil {
		// Recorded without its start time, the pause task could never be
		// told from a process that took its pid later: `shim delete`
		// would not kill it.
		return nil, rec, fmt.Errorf("pause task %d exited as it started (its start time: %v): %w", proc.Pid, err, errdefs.ErrFailedPrecondition)
	}
	rec.PausePid, rec.PauseStartTime = proc.Pid, start
	if err := rec.save(p.bundle); err != nil {
		return nil, rec, fmt.Errorf("record pause task of sandbox %s: %w", p.id, err)
	}
	passStep("pause task recorded")
	failpoint.Inject(failpoint.PodStartAfterState)
	return proc, rec, nil
}

// abortStart removes what a failed start made, as rec records it: the
// pause task, if it runs, is killed and reaped first.
func (p *Pod) abortStart(ctx context.Context, proc *pause.Process, rec record) {
	if proc != nil {
		_ = proc.Signal(syscall.SIGKILL)
		<-proc.Done()
	}
	rec.cleanup(ctx)
}

// placePause moves the pause task into its cgroup, off the sandbox start
// path: on cgroup v1 a first migration waits out an RCU grace period in the
// kernel (~8 ms measured here), and nothing of the pod's readiness depends on
// where a process that only sleeps is accounted.
func (p *Pod) placePause(ctx context.Context, proc *pause.Process) {
	p.mu.Lock()
	placed := p.placed
	p.mu.Unlock()
	defer close(placed)
	if p.rec.PauseUnit != "" {
		// The job fails if the pause task has died meanwhile: no scope.
		if err := cgroups.StartScope(ctx, p.rec.PauseUnit, p.rec.PodSlice, proc.Pids); err != nil && !proc.Exited() {
			log.G(ctx).WithError(err).Warn("move pause task into its scope")
		}
		failpoint.Inject(failpoint.PodPauseAfterScope)
		return
	}
	if p.rec.PauseCgroup == "" {
		return
	}
	cg, err := cgroups.New(p.rec.PauseCgroup)
	for _, pid := range proc.Pids {
		if err == nil {
			err = cg.AddProc(uint64(pid))
		}
	}
	failpoint.Inject(failpoint.PodPauseAfterCgroup)
	// ESRCH: it died meanwhile (a stop), before its reaper said so.
	if err != nil && !proc.Exited() && !errors.Is(err, syscall.ESRCH) {
		log.G(ctx).WithError(err).Warn("move pause task into its cgroup")
	}
}

// watchPause ends the pod's containers when its pause task dies: without it
// they would run on in namespaces nobody holds.
func (p *Pod) watchPause(ctx context.Context, proc *pause.Process) {
	<-proc.Done()
	status, _ := proc.Exit()
	log.G(ctx).WithField("status", status).Info("pause task exited")
	p.mu.Lock()
	err := p.state.pauseExited(p)
	p.mu.Unlock()
	if err != nil {
		log.G(ctx).WithError(err).Error("pause task exit")
	}
	p.signalMembers(context.WithoutCancel(ctx), syscall.SIGKILL)
}

// Wait waits for the pod's pause task to exit, and returns its status.
func (p *Pod) Wait(ctx context.Context) (int, time.Time, error) {
	proc, err := p.startedPause(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	if proc == nil {
		return 0, time.Time{}, fmt.Errorf("sandbox %q is not started: %w", p.id, errdefs.ErrFailedPrecondition)
	}
	select {
	case <-proc.Done():
	case <-ctx.Done():
		return 0, time.Time{}, ctx.Err()
	}
	status, at := proc.Exit()
	return status, at, nil
}

// startedPause is the pod's pause task once the start under way, if any,
// has ended: nil if the pod has not started.
func (p *Pod) startedPause(ctx context.Context) (*pause.Process, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		starting := p.state.starting()
		if starting == nil {
			return p.pause, nil
		}
		p.mu.Unlock()
		select {
		case <-starting:
		case <-ctx.Done():
			p.mu.Lock()
			return nil, ctx.Err()
		}
		p.mu.Lock()
	}
}

// Stop stops the pod: SIGTERM to every container at once, SIGKILL to those
// still running at the timeout (the runtime's DefaultStopTimeout when 0),
// then the pause task last.
func (p *Pod) Stop(ctx context.Context, timeout time.Duration) error {
	if err := p.quiesce(ctx); err != nil {
		if errors.Is(err, errNothingToStop) {
			return nil
		}
		return err
	}
	if timeout == 0 {
		timeout = time.Duration(p.host.Options.DefaultStopTimeout)
	}
	p.stopMembers(ctx, timeout)
	failpoint.Inject(failpoint.PodStopAfterMembers)
	p.mu.Lock()
	proc := p.pause
	p.mu.Unlock()
	stopPause(ctx, proc)
	return p.transition(ctx, state.stopped)
}

// Shutdown ends the pod for good: whatever still runs is killed and
// deleted, the pod's cgroups, files and mounts are removed. A pod already
// shut down has nothing left to do.
func (p *Pod) Shutdown(ctx context.Context) error {
	if err := p.quiesce(ctx); err != nil {
		if errors.Is(err, errNothingToStop) {
			return nil
		}
		return err
	}
	p.stopMembers(ctx, 0)
	for _, id := range p.memberIDs() {
		if _, err := p.host.Tasks.Delete(ctx, &taskAPI.DeleteRequest{ID: id}); err != nil {
			log.G(ctx).WithError(err).WithField("container", id).Warn("delete container left in sandbox")
		}
		p.Forget(id)
	}
	failpoint.Inject(failpoint.PodShutdownAfterMembers)
	p.cleanup(ctx) // quiesced: nothing else changes the pod now
	return p.transition(ctx, state.shutDown)
}

// transition runs one of the pod's transitions under its lock.
func (p *Pod) transition(ctx context.Context, t func(state, *Pod) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return t(p.state, p)
}

// quiesce moves the pod to stopping, where it refuses new containers and
// starts, then waits for the start and the creates already under way,
// without the lock: stopping the pod after that misses none of them, and
// nothing else changes it.
func (p *Pod) quiesce(ctx context.Context) error {
	p.mu.Lock()
	if err := p.state.stop(p); err != nil {
		p.mu.Unlock()
		return err
	}
	pending := make([]<-chan struct{}, 0, len(p.creating)+1)
	for _, done := range p.creating {
		pending = append(pending, done)
	}
	if starting := p.state.starting(); starting != nil {
		pending = append(pending, starting)
	}
	p.mu.Unlock()
	for _, done := range pending {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("sandbox %s: waiting for its start and the containers being created: %w", p.id, ctx.Err())
		}
	}
	return nil
}

// abandon removes a pod that was created but not started within the
// StartTimeout, and tells the host: containerd's CRI shuts a sandbox down
// only if it fails after StartSandbox, so a pod whose pause image pull or
// start failed would otherwise keep its shim, and its cgroup, for ever.
func (p *Pod) abandon(ctx context.Context) {
	p.mu.Lock()
	for starting := p.state.starting(); starting != nil; starting = p.state.starting() {
		// A start under way decides: wait for it, without the lock.
		p.mu.Unlock()
		<-starting
		p.mu.Lock()
	}
	err := p.state.abandon(p)
	p.mu.Unlock()
	if err != nil {
		return // started, stopping or gone: not abandoned
	}
	p.cleanup(ctx)
	if err := p.transition(ctx, state.shutDown); err != nil {
		log.G(ctx).WithError(err).Error("abandon sandbox")
	}
	log.G(ctx).WithField("start_timeout", time.Duration(p.host.Options.StartTimeout)).Warn("sandbox created but never started: removed, shim exits")
	if p.host.Abandoned != nil {
		p.host.Abandoned(ctx, p)
	}
}

// stopPause ends a pause task (if any): SIGTERM, then SIGKILL after a grace.
func stopPause(ctx context.Context, proc *pause.Process) {
	if proc == nil {
		return
	}
	_ = proc.Signal(syscall.SIGTERM)
	select {
	case <-proc.Done():
		return
	case <-time.After(pauseStopGrace):
	case <-ctx.Done():
	}
	log.G(ctx).Warn("pause task ignored SIGTERM, killing it")
	_ = proc.Signal(syscall.SIGKILL)
	<-proc.Done()
}

// cleanup removes what the pod made; the pause task must be gone (or is
// killed). It waits for the pause task's exit and its cgroup, and removes
// cgroups, files and mounts: call it without the pod's lock, once no start
// is under way and none can begin (the pod is stopping). It runs once: a
// shutdown beside another one waits for the first's cleanup, and none
// runs after it, when the pod's paths may be another pod's (same id).
func (p *Pod) cleanup(ctx context.Context) {
	p.cleanedUp.Do(func() {
		p.mu.Lock()
		proc, placed, rec := p.pause, p.placed, p.rec
		p.mu.Unlock()
		if proc != nil {
			_ = proc.Signal(syscall.SIGKILL)
			<-proc.Done()
		}
		failpoint.Inject(failpoint.PodCleanupAfterPause)
		if placed != nil {
			<-placed // its cgroup is made before it is removed
		}
		passStep("cleanup begun")
		rec.cleanup(ctx)
	})
}

// Admit joins the container id, whose spec is at configPath, to the pod:
// its spec is rewritten to live in the pod (see joinPod). Created must
// follow once runc's create has ended.
func (p *Pod) Admit(ctx context.Context, id, configPath string) (cgroupsPath string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.state.admit(p); err != nil {
		return "", err
	}
	if _, ok := p.members[id]; ok {
		return "", fmt.Errorf("container %s already exists in sandbox %s: %w", id, p.id, errdefs.ErrAlreadyExists)
	}
	if cgroupsPath, err = joinPod(configPath, id, p); err != nil {
		return "", err
	}
	failpoint.Inject(failpoint.PodAdmitAfterSpec)
	p.countOOMBaseline()
	p.members[id] = struct{}{}
	p.creating[id] = make(chan struct{})
	log.G(ctx).WithField("container", id).Debug("container joins pod")
	return cgroupsPath, nil
}

// Created ends the create of an admitted container: a member if runc
// created it, forgotten if not.
func (p *Pod) Created(id string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if done, found := p.creating[id]; found {
		close(done)
		delete(p.creating, id)
	}
	if !ok {
		delete(p.members, id)
	}
}

// Forget drops a container that has been deleted.
func (p *Pod) Forget(id string) {
	p.mu.Lock()
	delete(p.members, id)
	delete(p.oom.noted, id)
	delete(p.oom.killed, id)
	p.mu.Unlock()
}

// IsMember tells whether container id belongs to the pod.
func (p *Pod) IsMember(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.members[id]
	return ok
}

// PausePid is the pause task's pid while the pod is ready, else 0.
func (p *Pod) PausePid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.state.running(p) {
		return 0
	}
	return p.pause.Pid
}

// shutDown tells whether the pod is gone for good.
func (p *Pod) shutDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.state.(*shutdownState)
	return ok
}

// Status is what SandboxStatus says of the pod.
type Status struct {
	Ready     bool
	Pid       int
	CreatedAt time.Time
	// ExitedAt is when the pause task exited, if it has.
	ExitedAt time.Time
	// Info is the verbose status: CRI's SandboxInfo as "info", and the
	// shim's own keys.
	Info map[string]string
}

// Status returns the pod's status, with its details when verbose.
func (p *Pod) Status(verbose bool) Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{CreatedAt: p.createdAt, Ready: p.state.running(p)}
	if p.pause != nil {
		st.Pid = p.pause.Pid
		if !st.Ready && p.pause.Exited() {
			_, st.ExitedAt = p.pause.Exit()
		}
	}
	if verbose {
		cfg, _ := json.Marshal(p.cfg)
		st.Info = map[string]string{
			"info":         p.criInfo(p.host.Options),
			"pause_pid":    strconv.Itoa(p.rec.PausePid),
			"pause_args":   fmt.Sprint(p.pauseCfg.Args()),
			"pod_cgroup":   p.rec.PodCgroup,
			"pause_cgroup": p.rec.PauseCgroup,
			"pause_unit":   p.rec.PauseUnit,
			"config":       string(cfg),
			"containers":   strconv.Itoa(len(p.members)),
		}
	}
	return st
}

// Ping fails once the pod's pause task has exited.
func (p *Pod) Ping() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pause != nil && !p.state.running(p) {
		return fmt.Errorf("sandbox %q: pause task has exited: %w", p.id, errdefs.ErrUnavailable)
	}
	return nil
}

// Metrics returns the pod cgroup's stats: *v1.Metrics or *v2.Metrics.
func (p *Pod) Metrics() (any, error) {
	cg, err := p.cgroup()
	if err != nil {
		return nil, err
	}
	return cg.Stat()
}

// Update applies the pod's resources to its cgroup.
func (p *Pod) Update(res *specs.LinuxResources) error {
	cg, err := p.cgroup()
	if err != nil {
		return err
	}
	return cg.Update(res, p.rec.OwnsPodCgroup)
}
