package pod

import (
	"fmt"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
)

// OOM kills runc.v2's watcher can miss. It reads a container's
// memory.events when the container's init exits; under systemd's cgroup
// driver the container's cgroup is a scope, which systemd removes as soon as
// it is empty, so a container the OOM killer ends at once can be gone, with
// its counters, before the watcher reads them: no TaskOOM, and CRI reports
// the exit as "Error" instead of "OOMKilled" (containerd skips critest's
// OOMKilled spec on systemd nodes for this race). The pod's cgroup outlives
// its containers, and on cgroup v2 its memory.events counts every kill
// below it: a member whose init was SIGKILLed while the pod counts more
// kills than TaskOOM events reported was the OOM killer's victim.

// unifiedMountpoint is the cgroup v2 hierarchy's mount point, "" on cgroup
// v1 (cgroups.UnifiedMountpoint); tests point it at a directory of their own.
var unifiedMountpoint = cgroups.UnifiedMountpoint

// oomAccount is what a pod knows of its OOM kills.
type oomAccount struct {
	// counted tells that reported holds a baseline: the kills the pod's
	// cgroup counted before its first container (a pod's cgroup can be
	// an earlier sandbox's of the same pod).
	counted bool
	// reported is the kills accounted for: the baseline, plus one per
	// TaskOOM reported (one at least each) and per kill MissedOOM found.
	reported uint64
	// noted are the members with a TaskOOM reported since their creation,
	// killed those SIGKILLed on request (their exit is not the OOM
	// killer's to claim); Forget drops a member from both.
	noted, killed map[string]bool
}

// oomKills is the oom_kill count of the pod's cgroup (cgroup v2 only).
func (p *Pod) oomKills() (uint64, error) {
	root := unifiedMountpoint()
	if root == "" || p.rec.PodCgroup == "" {
		return 0, fmt.Errorf("sandbox %s: no cgroup v2 of its own", p.id)
	}
	return cgroups.OOMKills(root, p.rec.PodCgroup)
}

// countOOMBaseline sets the baseline once, before the first container
// runs. It reads the pod's cgroup without the lock (an admission's I/O):
// of two first admissions at once, the first to finish sets it.
func (p *Pod) countOOMBaseline() {
	p.mu.Lock()
	counted := p.oom.counted
	p.mu.Unlock()
	if counted {
		return
	}
	kills, _ := p.oomKills()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.oom.counted {
		p.oom.counted = true
		p.oom.reported = kills
	}
}

// OOMReported records a TaskOOM event reported for member id.
func (p *Pod) OOMReported(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.oom.noted = mark(p.oom.noted, id)
	p.oom.reported++
}

// KillRequested records that member id's init was sent SIGKILL.
func (p *Pod) KillRequested(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.oom.killed = mark(p.oom.killed, id)
}

// mark adds id to set, made on first use.
func mark(set map[string]bool, id string) map[string]bool {
	if set == nil {
		set = map[string]bool{}
	}
	set[id] = true
	return set
}

// MissedOOM tells whether member id, whose init has just exited by
// SIGKILL, was killed by the OOM killer with no TaskOOM reported: no kill
// was asked for, none was reported for it, and the pod's cgroup counts a
// kill no report accounts for, which it then accounts for.
func (p *Pod) MissedOOM(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.oom.noted[id] || p.oom.killed[id] || !p.oom.counted {
		return false
	}
	kills, err := p.oomKills()
	if err != nil || kills <= p.oom.reported {
		return false
	}
	p.oom.reported++
	return true
}
