package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// cgroupMounts lists the cgroup hierarchies mounted below root (each v1
// hierarchy, and on a hybrid host the unified one), from mountinfo.
func cgroupMounts(mountinfo, root string) ([]string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "36 25 0:30 / /sys/fs/cgroup/misc rw,... shared:12 - cgroup cgroup rw,misc"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, after := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(after) < 1 {
			continue
		}
		if fstype := after[0]; fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		if mp := fields[4]; strings.HasPrefix(mp, root+"/") {
			mounts = append(mounts, mp)
		}
	}
	return mounts, sc.Err()
}

// removeFromHierarchies removes the cgroup at path, and the cgroups below
// it, from each hierarchy of mounts that still has it. runc makes a
// container's parents in every hierarchy it knows, and its delete removes
// only the container's own cgroup: on a hybrid host the unified hierarchy,
// on a v1 node a controller containerd's cgroups package does not manage
// (misc), would keep the pod's cgroup after the pod.
func removeFromHierarchies(mounts []string, path string) error {
	var errs []error
	for _, mp := range mounts {
		dir := filepath.Join(mp, path)
		var dirs []string
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// The deepest first: a cgroup with children cannot go.
		slices.Reverse(dirs)
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
