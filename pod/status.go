package pod

import "github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cri"

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
