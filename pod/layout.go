package pod

import (
	"fmt"
	"path"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
)

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
	sliced := func(field, slice string, owned bool) (podCgroups, error) {
		expanded, err := cgroups.ExpandSlice(slice)
		if err != nil {
			return podCgroups{}, fmt.Errorf("%s: %w", field, err)
		}
		if expanded, err = cgroups.CleanPath(field, expanded); err != nil {
			return podCgroups{}, err
		}
		l := podCgroups{PodCgroup: expanded, PodSlice: slice, PauseUnit: criScopePrefix + "-" + id + ".scope"}
		if owned {
			if reservedSlices[slice] {
				return podCgroups{}, fmt.Errorf("%s %q is one of systemd's own slices, which a pod may not take (the shim stops its pod's slice with the pod): %w", field, slice, errdefs.ErrInvalidArgument)
			}
			l.PodUnit = slice
		}
		return l, nil
	}
	switch {
	case cfg.CgroupParent != "" && cgroups.IsSlice(cfg.CgroupParent):
		// A slice's name, or the expanded path the kubelet sends
		// ("/kubepods.slice/…/x.slice"): its last element.
		if strings.Contains(cfg.CgroupParent, "/") {
			if _, err := cgroups.CleanPath(fieldCgroupParent, cfg.CgroupParent); err != nil {
				return podCgroups{}, err
			}
		}
		return sliced(fieldCgroupParent, path.Base(cfg.CgroupParent), false)
	case cfg.CgroupParent != "":
		parent, err := cgroups.CleanPath(fieldCgroupParent, cfg.CgroupParent)
		if err != nil {
			return podCgroups{}, err
		}
		return podCgroups{PodCgroup: parent, PauseCgroup: path.Join(parent, id)}, nil
	case cfg.CgroupsPath != "" && cgroups.IsSlice(cfg.CgroupsPath) && !strings.Contains(cfg.CgroupsPath, "/"):
		return sliced(fieldCgroupsPath, cfg.CgroupsPath, true)
	case strings.Contains(cfg.CgroupsPath, ":"):
		return podCgroups{}, fmt.Errorf("%s %q: a pod's cgroup in systemd form is a slice (name.slice), its containers get the scopes: %w", fieldCgroupsPath, cfg.CgroupsPath, errdefs.ErrInvalidArgument)
	case cfg.CgroupsPath != "":
		// The shim makes this cgroup and removes it with the pod: it must
		// name one below the hierarchies' roots, not a relative path,
		// which each cgroup library resolves its own way.
		own, err := cgroups.CleanPath(fieldCgroupsPath, cfg.CgroupsPath)
		if err != nil {
			return podCgroups{}, err
		}
		return podCgroups{PodCgroup: own, PauseCgroup: path.Join(own, "pause"), OwnsPodCgroup: true}, nil
	case systemdDriver:
		return sliced("the pod's slice", "pause-"+cgroups.UnitNameEscape(namespace)+"_"+cgroups.UnitNameEscape(id)+".slice", true)
	default:
		pod := path.Join("/", namespace, id)
		return podCgroups{PodCgroup: pod, PauseCgroup: path.Join(pod, "pause"), OwnsPodCgroup: true}, nil
	}
}

// The fields a pod's cgroup comes from, as errors name them: CRI's
// LinuxPodSandboxConfig.cgroup_parent, the sandbox spec's linux.cgroupsPath.
const (
	fieldCgroupParent = "cgroup_parent"
	fieldCgroupsPath  = "linux.cgroupsPath"
)

// reservedSlices are systemd's own slices: a pod's spec may not name one
// as the pod's own slice, which the shim stops when the pod ends.
var reservedSlices = map[string]bool{"-.slice": true, "system.slice": true, "user.slice": true, "machine.slice": true}

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
