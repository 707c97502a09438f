package testenv

import (
	"os"
	"os/exec"
	"strings"
)

// SystemdDriverEnv, set to "systemd", runs the suite as on a node whose
// kubelet uses the systemd cgroup driver: pod cgroup parents are slices,
// handler runc has SystemdCgroup, and handler pause-systemd is added with
// the shim's SystemdCgroup (make test-node sets it inside the VM).
const SystemdDriverEnv = "PAUSE_IT_CGROUP_DRIVER"

// SystemdDriver tells whether the suite runs with the systemd driver.
func SystemdDriver() bool { return os.Getenv(SystemdDriverEnv) == "systemd" }

// StopUnit stops a systemd unit the suite made (a pod's slice, as the
// kubelet removes it) and forgets it.
func StopUnit(t interface{ Errorf(string, ...any) }, unit string) {
	if out, err := exec.Command("systemctl", "stop", unit).CombinedOutput(); err != nil {
		t.Errorf("systemctl stop %s: %v: %s", unit, err, out)
	}
}

// systemdLeaks lists the pods' systemd units still loaded: the pause and
// container scopes (cri-containerd-*), the shim's own pod slices (pause-*)
// and the suite's pod slices (pauseit-*), whose parents it then stops.
func systemdLeaks() []string {
	if !SystemdDriver() {
		return nil
	}
	leaks := LoadedUnits("cri-containerd-*", "pause-*.slice", "pauseit-*-pod*")
	_ = exec.Command("systemctl", "stop", "pauseit.slice", "pause.slice").Run()
	return leaks
}

// LoadedUnits names, as leaks, the systemd units loaded (active or not)
// that match patterns.
func LoadedUnits(patterns ...string) []string {
	out, err := exec.Command("systemctl", append([]string{"list-units", "--all", "--plain", "--no-legend"}, patterns...)...).CombinedOutput()
	if err != nil {
		return []string{"systemctl list-units: " + strings.TrimSpace(string(out))}
	}
	var leaks []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			leaks = append(leaks, "systemd unit "+f[0])
		}
	}
	return leaks
}
