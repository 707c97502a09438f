// Package cgroups puts a pod's processes in cgroups, through cgroupfs or
// systemd's D-Bus API, and reads the counters the pod's OOM account needs.
package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	cgv3 "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Cgroup is the little the pod needs of a cgroup on either hierarchy: v1
// (legacy and hybrid hosts) or v2 (unified).
type Cgroup interface {
	AddProc(pid uint64) error
	Delete() error
	// Stat returns *v1.Metrics or *v2.Metrics, the types containerd's CRI
	// decodes from sandbox and task metrics.
	Stat() (any, error)
	// Update sets limits; enable first turns on, in the cgroup's parents,
	// the v2 controllers they need (only in cgroups the shim made: the
	// kubelet's are the kubelet's to set up).
	Update(r *specs.LinuxResources, enable bool) error
}

func Unified() bool { return cgv3.Mode() == cgv3.Unified }

// New creates (or opens, if it exists) the cgroup at path. On v2 it
// enables no controller: runc enables, on the way down, those a container's
// limits need, and the pause leaf needs none.
func New(path string) (Cgroup, error) {
	if Unified() {
		m, err := cgroup2.NewManager("/sys/fs/cgroup", path, &cgroup2.Resources{})
		if err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", path, err)
		}
		return v2Cgroup{m}, nil
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(path), &specs.LinuxResources{})
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", path, err)
	}
	return v1Cgroup{cg}, nil
}

// Load opens an existing cgroup; os.ErrNotExist when it is gone.
func Load(path string) (Cgroup, error) {
	if Unified() {
		if _, err := os.Stat("/sys/fs/cgroup" + path); err != nil {
			return nil, err
		}
		m, err := cgroup2.Load(path)
		if err != nil {
			return nil, err
		}
		return v2Cgroup{m}, nil
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path))
	if err != nil {
		if errors.Is(err, cgroup1.ErrCgroupDeleted) {
			return nil, os.ErrNotExist
		}
		return nil, err
	}
	return v1Cgroup{cg}, nil
}

// CleanPath checks a cgroup path the shim will make, join or remove,
// which field gave, and returns it cleaned: it must be absolute, below a
// hierarchy's root and not the root itself. A relative path or one that
// climbs with ".." would name, once joined to a hierarchy's mount point, a
// directory outside /sys/fs/cgroup.
func CleanPath(field, p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%s %q is not an absolute cgroup path: %w", field, p, errdefs.ErrInvalidArgument)
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return "", fmt.Errorf("%s %q climbs with \"..\": a cgroup path names a cgroup below the root: %w", field, p, errdefs.ErrInvalidArgument)
	}
	clean := path.Clean(p)
	if clean == "/" {
		return "", fmt.Errorf("%s %q is the root cgroup, which no pod may take: %w", field, p, errdefs.ErrInvalidArgument)
	}
	return clean, nil
}

// Delete removes the cgroup at path if it still exists. Off a unified
// host it also goes from the hierarchies containerd's cgroups package does
// not manage, where runc made it as a container's parent (see
// removeFromHierarchies). A path outside the hierarchies (see CleanPath) is
// refused: it may come from a record on disk.
func Delete(path string) error {
	path, err := CleanPath("cgroup", path)
	if err != nil {
		return err
	}
	cg, err := Load(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err == nil {
		if err := cg.Delete(); err != nil {
			return err
		}
	}
	if Unified() {
		return nil
	}
	mounts, err := cgroupMounts("/proc/self/mountinfo", "/sys/fs/cgroup")
	if err != nil {
		return err
	}
	return removeFromHierarchies(mounts, path)
}

type v1Cgroup struct{ cg cgroup1.Cgroup }

func (c v1Cgroup) AddProc(pid uint64) error { return c.cg.AddProc(pid) }
func (c v1Cgroup) Delete() error            { return c.cg.Delete() }
func (c v1Cgroup) Stat() (any, error)       { return c.cg.Stat(cgroup1.IgnoreNotExist) }
func (c v1Cgroup) Update(r *specs.LinuxResources, _ bool) error {
	return c.cg.Update(r)
}

type v2Cgroup struct{ m *cgroup2.Manager }

func (c v2Cgroup) AddProc(pid uint64) error { return c.m.AddProc(pid) }
func (c v2Cgroup) Delete() error            { return c.m.Delete() }
func (c v2Cgroup) Stat() (any, error)       { return c.m.Stat() }
func (c v2Cgroup) Update(r *specs.LinuxResources, enable bool) error {
	res := cgroup2.ToResources(r)
	if enable {
		if err := c.m.ToggleControllers(res.EnabledControllers(), cgroup2.Enable); err != nil {
			return err
		}
	}
	return c.m.Update(res)
}

// Join moves process pid into the existing cgroup at path (the
// ShimCgroup an operator gives the shims, as runc.v2 does with its own).
func Join(path string, pid int) error {
	cg, err := Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cgroup %s does not exist: %w", path, errdefs.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", path, err)
	}
	return cg.AddProc(uint64(pid))
}
