package pod

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cri"
)

// processStatus names the pause task's state as containerd names a task's.
func (p *Pod) processStatus() string {
	switch {
	case p.pause == nil:
		return "created"
	case p.pause.Exited():
		return "stopped"
	default:
		return "running"
	}
}

// criInfo is the "info" entry of the pod's verbose status.
func (p *Pod) criInfo(runtimeOptions any) string {
	info := cri.SandboxInfo{
		Status:         p.processStatus(),
		RuntimeOptions: runtimeOptions,
	}
	if p.pause != nil && !p.pause.Exited() {
		info.Pid = uint32(p.pause.Pid)
	}
	if ns := p.cfg.NetNSPath; ns != "" {
		info.NetNSClosed = checkNetNS(ns) != nil
	}
	return cri.Info(info, p.id, p.cfg.NetNSPath, p.cfg.CRI)
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

// shutDown tells whether the pod is gone for good; it takes no lock.
func (p *Pod) shutDown() bool { return p.gone.Load() }

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
			"info":         p.criInfo(p.deps.Options),
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
