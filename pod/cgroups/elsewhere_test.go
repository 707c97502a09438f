package cgroups

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestCgroupMounts(t *testing.T) {
	info := filepath.Join(t.TempDir(), "mountinfo")
	lines := "25 30 0:23 / /sys rw - sysfs sysfs rw\n" +
		"26 25 0:24 / /sys/fs/cgroup ro shared:4 - tmpfs tmpfs ro,mode=755\n" +
		"27 26 0:25 / /sys/fs/cgroup/unified rw shared:5 - cgroup2 cgroup2 rw\n" +
		"28 26 0:26 / /sys/fs/cgroup/systemd rw shared:6 - cgroup cgroup rw,xattr,name=systemd\n" +
		"36 26 0:34 / /sys/fs/cgroup/misc rw shared:14 - cgroup cgroup rw,misc\n" +
		"40 30 0:40 / /elsewhere/cgroup rw - cgroup cgroup rw,cpu\n"
	if err := os.WriteFile(info, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := cgroupMounts(info, "/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/misc"}
	if !slices.Equal(got, want) {
		t.Errorf("mounts %v, want %v", got, want)
	}
}

// A pod's cgroup that runc left as a container's parent goes from every
// hierarchy, children first; hierarchies without it are no error.
func TestRemoveFromHierarchies(t *testing.T) {
	root := t.TempDir()
	misc, cpu := filepath.Join(root, "misc"), filepath.Join(root, "cpu")
	for _, d := range []string{filepath.Join(misc, "k/pod/ctr"), cpu} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeFromHierarchies([]string{misc, cpu}, "/k/pod"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(misc, "k/pod")); !os.IsNotExist(err) {
		t.Errorf("the pod's cgroup is left in misc: %v", err)
	}
	if _, err := os.Stat(filepath.Join(misc, "k")); err != nil {
		t.Errorf("the pod's parent went too: %v", err)
	}
}
