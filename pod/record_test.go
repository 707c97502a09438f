package pod

import (
	"context"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/proc"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/reaptest"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
)

// realRecord is the state file of a CRI pod as a start wrote it, and one of
// a pod in a kubelet's systemd slice.
const (
	realRecord = `{"id":"7a1f0c9e3b2d4c5f8e6a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6","pause_pid":14941,"pause_start_time":714546,` +
		`"pod_cgroup":"/pause-unit-test-pod/7a1f0c9e3b2d4c5f8e6a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6",` +
		`"pause_cgroup":"/pause-unit-test-pod/7a1f0c9e3b2d4c5f8e6a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6/pause","owns_pod_cgroup":true,` +
		`"files":{"dir":"/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/7a1f0c9e3b2d4c5f8e6a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6",` +
		`"volatile_dir":"/run/containerd/io.containerd.grpc.v1.cri/sandboxes/7a1f0c9e3b2d4c5f8e6a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6"},` +
		`"sockets":["unix:///run/containerd/s/ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",` +
		`"unix:///run/containerd/s/3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"]}`
	realSystemdRecord = `{"id":"sb1","pause_pid":2201,"pause_start_time":99812,` +
		`"pod_cgroup":"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice",` +
		`"pod_slice":"kubepods-besteffort-pod1234.slice","pause_unit":"cri-containerd-sb1.scope","files":{}}`
)

func TestRealRecordsDecode(t *testing.T) {
	for _, data := range []string{realRecord, realSystemdRecord} {
		if _, err := decodeRecord([]byte(data)); err != nil {
			t.Errorf("%s: %v", data, err)
		}
	}
}

// TestCleanupBundleRefusesMalformedRecords: a state file that names what
// no pod's start records (pid 1, a path outside the cgroup hierarchies or
// the pod's directories, a system slice, a file that is no shim socket) is
// refused with ErrDataLoss, and nothing of it is acted on.
func TestCleanupBundleRefusesMalformedRecords(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.Mkdir(victim, 0o700); err != nil {
		t.Fatal(err)
	}
	climb := "/../../../.." + victim
	for name, change := range map[string]func(map[string]any){
		"id with a slash":        func(r map[string]any) { r["id"] = "../p" },
		"negative pid":           func(r map[string]any) { r["pause_pid"] = -1 },
		"pid 1":                  func(r map[string]any) { r["pause_pid"] = 1 },
		"start time without pid": func(r map[string]any) { r["pause_pid"] = 0 },
		"pod cgroup climbs":      func(r map[string]any) { r["pod_cgroup"], r["owns_pod_cgroup"] = climb, true },
		"relative pod cgroup":    func(r map[string]any) { r["pod_cgroup"], r["owns_pod_cgroup"] = "../../../.."+victim, true },
		"pause cgroup climbs":    func(r map[string]any) { r["pod_cgroup"], r["pause_cgroup"] = "/a", "/a/../../../../.."+victim },
		"root cgroup":            func(r map[string]any) { r["pod_cgroup"], r["owns_pod_cgroup"] = "/", true },
		"system slice": func(r map[string]any) {
			r["pod_cgroup"], r["pod_slice"], r["pod_unit"] = "/system.slice", "system.slice", "system.slice"
		},
		"another scope":   func(r map[string]any) { r["pause_unit"] = "ssh.service" },
		"files elsewhere": func(r map[string]any) { r["files"] = map[string]string{"dir": victim} },
		"files of another pod": func(r map[string]any) {
			r["files"] = map[string]string{"dir": "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/q"}
		},
		"socket elsewhere": func(r map[string]any) { r["sockets"] = []string{"unix://" + victim} },
		"wrong types":      func(r map[string]any) { r["pause_pid"] = "1" },
	} {
		t.Run(name, func(t *testing.T) {
			// Each record names a live process, with one part out of shape.
			cmd, done := reaptest.Sleeper(t)
			start, err := proc.StartTime(cmd.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			rec := map[string]any{"id": "p", "pause_pid": cmd.Process.Pid, "pause_start_time": start}
			change(rec)
			data, _ := json.Marshal(rec)
			bundle := t.TempDir()
			if err := os.WriteFile(filepath.Join(bundle, stateFile), data, 0o600); err != nil {
				t.Fatal(err)
			}
			isPod, err := CleanupBundle(context.Background(), bundle)
			if !isPod || !errdefs.IsDataLoss(err) {
				t.Errorf("%s: pod %v, %v; want ErrDataLoss", data, isPod, err)
			}
			select {
			case <-done:
				t.Errorf("%s: the process it names was killed", data)
			default:
			}
			if _, err := os.Stat(victim); err != nil {
				t.Fatalf("%s: %s was removed", data, victim)
			}
		})
	}
}

// cgroupRoots are where cgroup paths are joined: v1 hierarchies, the
// unified one of a hybrid host, v2's.
var cgroupRoots = []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"}

// belowRoots tells whether cgroup path p, joined to each hierarchy, names
// a cgroup strictly below its root.
func belowRoots(p string) bool {
	for _, root := range cgroupRoots {
		if !strings.HasPrefix(filepath.Join(root, p), root+"/") {
			return false
		}
	}
	return true
}

// FuzzDecodeRecord: whatever the state file holds, decoding never panics,
// and a record it accepts kills no process but one it could have started
// (pid above 1, with its start time) and reaches no path outside the
// cgroup hierarchies, the pod's own directories or the shim sockets.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(realRecord))
	f.Add([]byte(realSystemdRecord))
	f.Add([]byte(`{"id":"p"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := decodeRecord(data)
		if err != nil {
			if !errdefs.IsDataLoss(err) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		if s.PausePid < 0 || s.PausePid == 1 || s.PausePid == 0 && s.PauseStartTime != 0 {
			t.Fatalf("accepted pause_pid %d, start time %d", s.PausePid, s.PauseStartTime)
		}
		for _, cg := range []string{s.PodCgroup, s.PauseCgroup} {
			if cg != "" && !belowRoots(cg) {
				t.Fatalf("accepted cgroup %q outside the hierarchies", cg)
			}
		}
		for _, unit := range []string{s.PauseUnit, s.PodUnit} {
			if strings.Contains(unit, "/") || unit != "" && !strings.HasSuffix(unit, ".scope") && !strings.HasSuffix(unit, ".slice") || cgroups.ReservedSlice(unit) {
				t.Fatalf("accepted unit %q", unit)
			}
		}
		for _, dir := range []string{s.Files.Dir, s.Files.VolatileDir} {
			if dir != "" && (filepath.Clean(dir) != dir || !strings.HasSuffix(dir, "/io.containerd.grpc.v1.cri/sandboxes/"+s.ID)) {
				t.Fatalf("accepted files %q", dir)
			}
		}
		for _, a := range s.Sockets {
			p := strings.TrimPrefix(a, "unix://")
			if p == a || filepath.Clean(p) != p || !filepath.IsAbs(p) || len(path.Base(p)) != 64 {
				t.Fatalf("accepted socket %q", a)
			}
		}
	})
}

// FuzzCgroupLayout: whatever cgroup parent or path a pod's configuration
// gives, the layout either refuses it as InvalidArgument or places the pod
// strictly below the cgroup roots, with a record `shim delete` accepts.
func FuzzCgroupLayout(f *testing.F) {
	for _, seed := range []struct {
		parent, own string
		systemd     bool
	}{
		{"/kubepods/burstable/pod1", "", false}, {"kubepods-besteffort-pod1.slice", "", false},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice", "", false},
		{"", "/pods/p", false}, {"", "pods-p.slice", false}, {"", "", true}, {"", "", false},
		{"../x", "", false}, {"", "/a/../../b", false}, {"-.slice", "", false}, {"", "system.slice", false},
	} {
		f.Add(seed.parent, seed.own, seed.systemd)
	}
	f.Fuzz(func(t *testing.T, parent, own string, systemd bool) {
		l, err := cgroupLayout("sb", "k8s.io", &podConfig{CgroupParent: parent, CgroupsPath: own}, systemd)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		for _, cg := range []string{l.PodCgroup, l.PauseCgroup} {
			if cg != "" && !belowRoots(cg) {
				t.Fatalf("parent %q, path %q: cgroup %q outside the hierarchies", parent, own, cg)
			}
		}
		if err := (record{ID: "sb", PausePid: 2, PauseStartTime: 1, Layout: l}).check(); err != nil {
			t.Fatalf("parent %q, path %q: shim delete would refuse the pod's record: %v", parent, own, err)
		}
		if clean, err := cgroups.CleanPath("cgroup", l.PodCgroup); err != nil || clean != l.PodCgroup {
			t.Fatalf("DeleteCgroup would refuse the pod cgroup %q: %v", l.PodCgroup, err)
		}
	})
}
