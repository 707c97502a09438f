package cgroups

import (
	"fmt"
	"path"
	"strings"

	"github.com/containerd/errdefs"
)

// Layout is where a pod lives. PodCgroup is its cgroup path (for
// metrics and updates; a slice's expanded path under the systemd driver).
// The pause task goes in the cgroupfs leaf PauseCgroup, or in the systemd
// scope PauseUnit inside PodSlice. PodUnit is a pod slice the shim started
// itself, OwnsPodCgroup a pod cgroup it made itself: both go with the pod.
type Layout struct {
	PodCgroup     string `json:"pod_cgroup,omitempty"`
	PauseCgroup   string `json:"pause_cgroup,omitempty"`
	OwnsPodCgroup bool   `json:"owns_pod_cgroup,omitempty"`
	PodSlice      string `json:"pod_slice,omitempty"`
	PauseUnit     string `json:"pause_unit,omitempty"`
	PodUnit       string `json:"pod_unit,omitempty"`
}

// ScopePrefix is the prefix CRI gives its containers' scopes, and the
// pause container's: cri-containerd-<id>.scope.
const ScopePrefix = "cri-containerd"

// Place lays out the cgroups of pod id in namespace. A CRI cgroup parent is
// the pod's cgroup (the kubelet owns it) with the pause task in a leaf named
// after the sandbox, as CRI does for a pause container, or, when the parent
// is a systemd slice, in the scope cri-containerd-<id>.scope in it.
// Otherwise the shim makes the pod's cgroup (the spec's cgroupsPath, else
// /<namespace>/<id>) with a leaf "pause", or with systemdDriver
// (SystemdCgroup) a slice of its own. Leaves keep cgroup v2's
// no-internal-processes rule.
func Place(id, namespace, cgroupParent, cgroupsPath string, systemdDriver bool) (Layout, error) {
	sliced := func(field, slice string, owned bool) (Layout, error) {
		expanded, err := ExpandSlice(slice)
		if err != nil {
			return Layout{}, fmt.Errorf("%s: %w", field, err)
		}
		if expanded, err = CleanPath(field, expanded); err != nil {
			return Layout{}, err
		}
		l := Layout{PodCgroup: expanded, PodSlice: slice, PauseUnit: ScopePrefix + "-" + id + ".scope"}
		if owned {
			if ReservedSlice(slice) {
				return Layout{}, fmt.Errorf("%s %q is one of systemd's own slices, which a pod may not take (the shim stops its pod's slice with the pod): %w", field, slice, errdefs.ErrInvalidArgument)
			}
			l.PodUnit = slice
		}
		return l, nil
	}
	switch {
	case cgroupParent != "" && IsSlice(cgroupParent):
		// A slice's name, or the expanded path the kubelet sends
		// ("/kubepods.slice/…/x.slice"): its last element.
		if strings.Contains(cgroupParent, "/") {
			if _, err := CleanPath(fieldCgroupParent, cgroupParent); err != nil {
				return Layout{}, err
			}
		}
		return sliced(fieldCgroupParent, path.Base(cgroupParent), false)
	case cgroupParent != "":
		parent, err := CleanPath(fieldCgroupParent, cgroupParent)
		if err != nil {
			return Layout{}, err
		}
		return Layout{PodCgroup: parent, PauseCgroup: path.Join(parent, id)}, nil
	case cgroupsPath != "" && IsSlice(cgroupsPath) && !strings.Contains(cgroupsPath, "/"):
		return sliced(fieldCgroupsPath, cgroupsPath, true)
	case strings.Contains(cgroupsPath, ":"):
		return Layout{}, fmt.Errorf("%s %q: a pod's cgroup in systemd form is a slice (name.slice), its containers get the scopes: %w", fieldCgroupsPath, cgroupsPath, errdefs.ErrInvalidArgument)
	case cgroupsPath != "":
		// The shim makes this cgroup and removes it with the pod: it must
		// name one below the hierarchies' roots, not a relative path,
		// which each cgroup library resolves its own way.
		own, err := CleanPath(fieldCgroupsPath, cgroupsPath)
		if err != nil {
			return Layout{}, err
		}
		return Layout{PodCgroup: own, PauseCgroup: path.Join(own, "pause"), OwnsPodCgroup: true}, nil
	case systemdDriver:
		return sliced("the pod's slice", "pause-"+UnitNameEscape(namespace)+"_"+UnitNameEscape(id)+".slice", true)
	default:
		pod := path.Join("/", namespace, id)
		return Layout{PodCgroup: pod, PauseCgroup: path.Join(pod, "pause"), OwnsPodCgroup: true}, nil
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

// ReservedSlice tells whether slice is one of systemd's own (see reservedSlices).
func ReservedSlice(slice string) bool { return reservedSlices[slice] }

// Systemd tells whether the pod's cgroups are systemd units.
func (l Layout) Systemd() bool { return l.PodSlice != "" }

// ContainerCgroup is the cgroupsPath of a container the shim joins to the
// pod (CRI sets its own): a scope in the pod's slice, or a cgroup under the
// pod's; "" leaves the container's as it is.
func (l Layout) ContainerCgroup(id string) string {
	switch {
	case l.Systemd():
		return l.PodSlice + ":" + ScopePrefix + ":" + id
	case l.PodCgroup != "":
		return path.Join(l.PodCgroup, id)
	}
	return ""
}
