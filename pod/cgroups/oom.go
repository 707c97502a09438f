package cgroups

import (
	"fmt"

	"github.com/containerd/cgroups/v3/cgroup2"
)

// unifiedRoot is where the unified hierarchy is mounted.
const unifiedRoot = "/sys/fs/cgroup"

// UnifiedMountpoint is the mount point of the cgroup v2 hierarchy, whose
// counters add up a cgroup's descendants; "" on cgroup v1, whose do not.
func UnifiedMountpoint() string {
	if !Unified() {
		return ""
	}
	return unifiedRoot
}

// OOMKills is the oom_kill count of memory.events of the cgroup v2 at
// cgroupPath below mountpoint, read by containerd's cgroups library (the
// one runc.v2's OOM watcher reads it with).
func OOMKills(mountpoint, cgroupPath string) (uint64, error) {
	m, err := cgroup2.Load(cgroupPath, cgroup2.WithMountpoint(mountpoint))
	if err != nil {
		return 0, err
	}
	st, err := m.StatFiltered(cgroup2.StatMemoryEvents)
	if err != nil {
		return 0, err
	}
	if st.MemoryEvents == nil {
		return 0, fmt.Errorf("cgroup %s: no memory.events", cgroupPath)
	}
	return st.MemoryEvents.OomKill, nil
}
