package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

const (
	// stateFile in the sandbox bundle lets `shim delete` clean up a pod whose
	// shim is gone.
	stateFile = "pod.json"
	// pauseStopGrace is how long the pause task gets to exit on SIGTERM.
	pauseStopGrace = 2 * time.Second
)

// startPause is pause.Start; tests slow it down.
var startPause = pause.Start

// podState is what survives the shim: enough to kill the pause task and
// remove the pod's cgroups from the bundle alone.
type podState struct {
	ID             string `json:"id"`
	PausePid       int    `json:"pause_pid,omitempty"`
	PauseStartTime uint64 `json:"pause_start_time,omitempty"`
	podCgroups
	// Files are the CRI pod's hostname, hosts, resolv.conf and shm.
	Files podFiles `json:"files"`
	// Sockets are the shim's: a shim killed outright cannot remove them.
	Sockets []string `json:"sockets,omitempty"`
}

// pod is the one pod a shim holds: its configuration, its pause task and its
// cgroups. The Service guards it with its lock, which no call holds across
// a wait: work that takes time (starting the pause task, stopping the pod,
// removing it) runs without the lock, and the pod's state (starting,
// stopping, shutdown) tells the calls that come meanwhile where it stands.
type pod struct {
	state     podState
	bundle    string
	namespace string
	cfg       *podConfig
	pauseCfg  pause.Config
	createdAt time.Time
	pause     *pause.Process // nil until StartSandbox
	placed    chan struct{}  // closed once the pause task is in its cgroup
	// starting is closed when the StartSandbox under way ends; nil when
	// none is.
	starting chan struct{}
	// stopping: StopSandbox or ShutdownSandbox has begun (or abandon): the
	// pod takes no new container and does not start.
	stopping bool
	shutdown bool
	// started: StartSandbox succeeded; until then startTimer may abandon it.
	started    bool
	startTimer *time.Timer
}

// newPod checks the pod's configuration and prepares (without starting) its
// pause task.
func newPod(id, namespace, bundle string, cfg *podConfig, uid, gid uint32, systemdDriver bool) (*pod, error) {
	p := &pod{
		state:     podState{ID: id},
		bundle:    bundle,
		namespace: namespace,
		cfg:       cfg,
		createdAt: time.Now(),
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
	}
	if u := cfg.Userns; u != nil {
		// Inside the pod's user namespace the pause task takes the highest
		// mapped IDs up to 65535, never the pod's root.
		p.pauseCfg.UIDMappings = []syscall.SysProcIDMap{{ContainerID: int(u.UIDs[0].ContainerID), HostID: int(u.UIDs[0].HostID), Size: int(u.UIDs[0].Length)}}
		p.pauseCfg.GIDMappings = []syscall.SysProcIDMap{{ContainerID: int(u.GIDs[0].ContainerID), HostID: int(u.GIDs[0].HostID), Size: int(u.GIDs[0].Length)}}
		p.pauseCfg.UID = uint32(min(u.UIDs[0].Length-1, uint64(uid)))
		p.pauseCfg.GID = uint32(min(u.GIDs[0].Length-1, uint64(gid)))
	}
	if err := p.pauseCfg.Validate(); err != nil {
		return nil, err
	}
	layout, err := cgroupLayout(id, namespace, cfg, systemdDriver)
	if err != nil {
		return nil, err
	}
	if layout.systemd() {
		if err := RequireSystemd(fmt.Sprintf("sandbox %s (cgroup %s)", id, layout.PodSlice)); err != nil {
			return nil, err
		}
	}
	p.state.podCgroups = layout
	return p, nil
}

// podCgroups is where the pod lives. PodCgroup is its cgroup path (for
// metrics and updates; a slice's expanded path under the systemd driver).
// The pause task goes in the cgroupfs leaf PauseCgroup, or in the systemd
// scope PauseUnit inside PodSlice. PodUnit is a pod slice the shim started
// itself, OwnsPodCgroup a pod cgroup it made itself: both go with the pod.
type podCgroups struct {
	PodCgroup     string `json:"pod_cgroup,omitempty"`
	PauseCgroup   string `json:"pause_cgroup,omitempty"`
	OwnsPodCgroup bool   `json:"owns_pod_cgroup,omitempty"`
	PodSlice      string `json:"pod_slice,omitempty"`
	PauseUnit     string `json:"pause_unit,omitempty"`
	PodUnit       string `json:"pod_unit,omitempty"`
}

// criScopePrefix is the prefix CRI gives its containers' scopes, and the
// pause container's: cri-containerd-<id>.scope.
const criScopePrefix = "cri-containerd"

// cgroupLayout places the pod. A CRI cgroup parent is the pod's cgroup (the
// kubelet owns it) with the pause task in a leaf named after the sandbox, as
// CRI does for a pause container, or, when the parent is a systemd slice, in
// the scope cri-containerd-<id>.scope in it. Otherwise the shim makes the
// pod's cgroup (the spec's cgroupsPath, else /<namespace>/<id>) with a leaf
// "pause", or with systemdDriver (SystemdCgroup) a slice of its own. Leaves
// keep cgroup v2's no-internal-processes rule.
func cgroupLayout(id, namespace string, cfg *podConfig, systemdDriver bool) (podCgroups, error) {
	sliced := func(slice string, owned bool) (podCgroups, error) {
		path, err := expandSlice(slice)
		if err != nil {
			return podCgroups{}, err
		}
		l := podCgroups{PodCgroup: path, PodSlice: slice, PauseUnit: criScopePrefix + "-" + id + ".scope"}
		if owned {
			l.PodUnit = slice
		}
		return l, nil
	}
	switch {
	case cfg.CgroupParent != "" && isSlice(cfg.CgroupParent):
		return sliced(sliceName(cfg.CgroupParent), false)
	case cfg.CgroupParent != "":
		return podCgroups{PodCgroup: cfg.CgroupParent, PauseCgroup: path.Join(cfg.CgroupParent, id)}, nil
	case cfg.CgroupsPath != "" && isSlice(cfg.CgroupsPath) && !strings.Contains(cfg.CgroupsPath, "/"):
		return sliced(cfg.CgroupsPath, true)
	case strings.Contains(cfg.CgroupsPath, ":"):
		return podCgroups{}, fmt.Errorf("cgroupsPath %q: a pod's cgroup in systemd form is a slice (name.slice), its containers get the scopes: %w", cfg.CgroupsPath, errdefs.ErrInvalidArgument)
	case cfg.CgroupsPath != "":
		return podCgroups{PodCgroup: cfg.CgroupsPath, PauseCgroup: path.Join(cfg.CgroupsPath, "pause"), OwnsPodCgroup: true}, nil
	case systemdDriver:
		return sliced("pause-"+unitNameEscape(namespace)+"_"+unitNameEscape(id)+".slice", true)
	default:
		pod := path.Join("/", namespace, id)
		return podCgroups{PodCgroup: pod, PauseCgroup: path.Join(pod, "pause"), OwnsPodCgroup: true}, nil
	}
}

// systemd tells whether the pod's cgroups are systemd units.
func (l podCgroups) systemd() bool { return l.PodSlice != "" }

// containerCgroup is the cgroupsPath of a container the shim joins to the
// pod (CRI sets its own): a scope in the pod's slice, or a cgroup under the
// pod's; "" leaves the container's as it is.
func (l podCgroups) containerCgroup(id string) string {
	switch {
	case l.systemd():
		return l.PodSlice + ":" + criScopePrefix + ":" + id
	case l.PodCgroup != "":
		return path.Join(l.PodCgroup, id)
	}
	return ""
}

// start makes the pod's files and cgroups and runs its pause task in them,
// which may take up to the pause task's ready timeout. It runs without the
// service's lock, so it fills in st, a copy of the pod's state, and leaves
// the pod itself alone: the caller publishes what it made (see endStart).
// On failure it removes what it made.
func (p *pod) start(ctx context.Context, containerdRoot string, st podState) (_ *pause.Process, _ podState, retErr error) {
	var proc *pause.Process
	defer func() {
		if retErr == nil {
			return
		}
		if proc != nil {
			_ = proc.Signal(syscall.SIGKILL)
			<-proc.Done()
		}
		st.cleanup(ctx, p.bundle)
	}()
	if p.cfg.FromCRI {
		files, err := criDirs(containerdRoot, p.bundle, st.ID)
		if err != nil {
			return nil, st, err
		}
		st.Files = files
		if err := files.create(p.cfg.CRI, p.cfg.HostIPC); err != nil {
			return nil, st, err
		}
	}
	if st.OwnsPodCgroup {
		if _, err := newCgroup(st.PodCgroup); err != nil {
			return nil, st, err
		}
	}
	proc, err := startPause(p.pauseCfg)
	if err != nil {
		return nil, st, err
	}
	st.PausePid = proc.Pid
	st.PauseStartTime, _ = procStartTime(proc.Pid)
	if err := st.save(p.bundle); err != nil {
		return nil, st, err
	}
	return proc, st, nil
}

// placePause moves the pause task into its cgroup, off the sandbox start
// path: on cgroup v1 a first migration waits out an RCU grace period in the
// kernel (~8 ms measured here), and nothing of the pod's readiness depends on
// where a process that only sleeps is accounted.
func (p *pod) placePause(ctx context.Context) {
	defer close(p.placed)
	if p.state.PauseUnit != "" {
		// The job fails if the pause task has died meanwhile: no scope.
		if err := startScope(ctx, p.state.PauseUnit, p.state.PodSlice, p.pause.Pids); err != nil && !p.pause.Exited() {
			log.G(ctx).WithError(err).Warn("move pause task into its scope")
		}
		return
	}
	if p.state.PauseCgroup == "" {
		return
	}
	cg, err := newCgroup(p.state.PauseCgroup)
	for _, pid := range p.pause.Pids {
		if err == nil {
			err = cg.AddProc(uint64(pid))
		}
	}
	if err != nil && !p.pause.Exited() {
		log.G(ctx).WithError(err).Warn("move pause task into its cgroup")
	}
}

// ready tells whether the pause task runs.
func (p *pod) ready() bool { return p.pause != nil && !p.pause.Exited() && !p.shutdown }

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
// cgroups, files and mounts: call it without the service's lock, once no
// start is under way and none can begin (the pod is stopping).
func (p *pod) cleanup(ctx context.Context) {
	if p.pause != nil {
		_ = p.pause.Signal(syscall.SIGKILL)
		<-p.pause.Done()
	}
	if p.placed != nil {
		<-p.placed // its cgroup is made before it is removed
	}
	p.state.cleanup(ctx, p.bundle)
}

func (s podState) save(bundle string) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := filepath.Join(bundle, stateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(bundle, stateFile))
}

// cleanup kills the pause task if it is still the process recorded and
// removes the pod's cgroups. It is idempotent: `shim delete` may run it after
// the shim did.
func (s podState) cleanup(ctx context.Context, bundle string) {
	logger := log.G(ctx).WithField("sandbox", s.ID)
	if s.PausePid > 0 && s.PauseStartTime != 0 {
		if st, err := procStartTime(s.PausePid); err == nil && st == s.PauseStartTime {
			_ = syscall.Kill(s.PausePid, syscall.SIGKILL)
			waitGone(s.PausePid, s.PauseStartTime, 2*time.Second)
		}
	}
	for _, unit := range []string{s.PauseUnit, s.PodUnit} {
		if unit == "" {
			continue
		}
		if err := stopUnit(ctx, unit); err != nil {
			logger.WithError(err).WithField("unit", unit).Warn("stop systemd unit")
		}
	}
	if s.PauseCgroup != "" {
		if err := deleteCgroup(s.PauseCgroup); err != nil {
			logger.WithError(err).Warn("remove pause cgroup")
		}
	}
	if s.OwnsPodCgroup && s.PodCgroup != "" {
		if err := deleteCgroup(s.PodCgroup); err != nil {
			logger.WithError(err).Warn("remove pod cgroup")
		}
	}
	if err := s.Files.remove(); err != nil {
		logger.WithError(err).Warn("remove pod files")
	}
	removeSockets(s.Sockets)
}

// CleanupBundle is `shim delete` for a sandbox bundle: it reports whether the
// bundle held a pod (false: it is a container's bundle) and cleans the pod up.
func CleanupBundle(ctx context.Context, bundle string) (bool, error) {
	data, err := os.ReadFile(filepath.Join(bundle, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		_, cerr := os.Stat(filepath.Join(bundle, "config.json"))
		// A sandbox bundle from CRI has no config.json; its shim died before
		// the pause task started: nothing to clean.
		return errors.Is(cerr, os.ErrNotExist), nil
	}
	if err != nil {
		return true, err
	}
	var s podState
	if err := json.Unmarshal(data, &s); err != nil {
		return true, fmt.Errorf("malformed pod state %s: %v: %w", stateFile, err, errdefs.ErrDataLoss)
	}
	s.cleanup(ctx, bundle)
	return true, nil
}

// procStartTime is the start time of pid in clock ticks since boot (field 22
// of /proc/PID/stat): with the pid it names one process for good.
func procStartTime(pid int) (uint64, error) {
	start, _, err := procStat(pid)
	return start, err
}

// procStat reads a process's start time and state letter ('Z' for a zombie).
func procStat(pid int) (start uint64, state byte, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces; the fields after it are plain.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	return start, fields[0][0], err
}

// waitGone waits until pid no longer names the process that started at
// start; a zombie is gone for this purpose (its parent reaps it).
func waitGone(pid int, start uint64, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		st, state, err := procStat(pid)
		if err != nil || st != start || state == 'Z' {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
