package pod

import (
	"fmt"

	"github.com/containerd/errdefs"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
)

// cgroupLayout places the pod's cgroups as its configuration asks (see
// cgroups.Place).
func cgroupLayout(id, namespace string, cfg *podConfig, systemdDriver bool) (cgroups.Layout, error) {
	return cgroups.Place(id, namespace, cfg.CgroupParent, cfg.CgroupsPath, systemdDriver)
}

// cgroup opens the pod's cgroup, for metrics and updates.
func (p *Pod) cgroup() (cgroups.Cgroup, error) {
	if p.rec.PodCgroup == "" {
		return nil, fmt.Errorf("sandbox %q has no cgroup of its own: %w", p.id, errdefs.ErrNotFound)
	}
	cg, err := cgroups.Load(p.rec.PodCgroup)
	if err != nil {
		return nil, fmt.Errorf("cgroup of sandbox %q: %v: %w", p.id, err, errdefs.ErrNotFound)
	}
	return cg, nil
}
