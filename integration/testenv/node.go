package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Where a node's packaged containerd lives, which the node installer's
// defaults (deploy/installer.yaml) name.
const (
	NodeUnit    = "containerd.service"
	NodeConfig  = "/etc/containerd/config.toml"
	NodeAddress = "/run/containerd/containerd.sock"
	// nodeUnitFile is a runtime unit: it goes with the node's next boot
	// even if the suite is killed before it removes it.
	nodeUnitFile = "/run/systemd/system/" + NodeUnit
)

// AsNodeService runs containerd as a node's package does, for the node
// installer to find: the systemd unit containerd.service, its config at
// /etc/containerd/config.toml with the stock handler runc only and no
// imports, its socket at /run/containerd/containerd.sock. Root, state and
// the rest stay private. Only for a throwaway node with systemd as PID 1
// (make test-node's VM): Start refuses a host where any of those exist.
func AsNodeService() Option {
	return func(e *Env) { e.node = true }
}

// NodeServiceMissing says why AsNodeService cannot run here ("" when it
// can): systemd must be PID 1, and containerd's unit, config directory and
// socket must be the suite's to make.
func NodeServiceMissing() string {
	if comm, _ := os.ReadFile("/proc/1/comm"); strings.TrimSpace(string(comm)) != "systemd" {
		return "systemd is not PID 1"
	}
	for _, p := range []string{filepath.Dir(NodeConfig), nodeUnitFile, "/etc/systemd/system/" + NodeUnit, "/lib/systemd/system/" + NodeUnit, NodeAddress} {
		if _, err := os.Stat(p); err == nil {
			return p + " exists: this node has a containerd of its own"
		}
	}
	return ""
}

// nodeConfig is the stock configuration a node's containerd starts from:
// no imports, handler runc only (with the kubelet's cgroup driver), and the
// suite's private root, state, CNI and sockets besides the API's.
func (env *Env) nodeConfig() (string, error) {
	if why := NodeServiceMissing(); why != "" {
		return "", errors.New("node containerd: " + why)
	}
	if err := os.MkdirAll(filepath.Dir(NodeConfig), 0o755); err != nil {
		return "", err
	}
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[debug]
  level = "info"
  address = %[5]q

[plugins."io.containerd.shim.v1.manager"]
  socket_dir = %[6]q

[plugins."io.containerd.cri.v1.runtime"]
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%[7]q]
    conf_dir = %[8]q
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      SystemdCgroup = %[9]t

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, filepath.Join(env.Dir, "root"), filepath.Join(env.Dir, "state"), NodeAddress, NodeAddress+".ttrpc",
		filepath.Join(env.Dir, "debug.sock"), filepath.Join(env.Dir, "s"), CNIBinDir, env.CNIConfDir(), SystemdDriver()), nil
}

// startUnit writes containerd's unit, shaped as containerd's own
// (containerd.service: notify, delegated cgroup, only the main process
// killed on stop so the shims and their pods outlive a restart), and
// starts it.
func (env *Env) startUnit() error {
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return err
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	unit := fmt.Sprintf(`[Unit]
Description=containerd of the test suite (%s)

[Service]
Type=notify
ExecStart=%s --config %s
Environment=PATH=%s
Delegate=yes
KillMode=process
OOMScoreAdjust=-999
TimeoutStartSec=10min
StandardOutput=append:%s
StandardError=append:%s
`, env.Dir, bin, NodeConfig, os.Getenv("PATH"), env.LogPath(), env.LogPath())
	if err := os.WriteFile(nodeUnitFile, []byte(unit), 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{{"daemon-reload"}, {"start", NodeUnit}} {
		if out, err := exec.Command("systemctl", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	env.pid = NodeServicePid()
	return nil
}

// NodeServicePid is the running containerd unit's main pid (0: none).
func NodeServicePid() int {
	out, _ := exec.Command("systemctl", "show", "-P", "MainPID", NodeUnit).Output()
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return pid
}

// stopUnit stops containerd's unit and removes what startUnit and
// nodeConfig made: the unit, the config directory and the API's sockets.
func (env *Env) stopUnit() {
	_ = exec.Command("systemctl", "stop", NodeUnit).Run()
	_ = os.Remove(nodeUnitFile)
	_ = exec.Command("systemctl", "daemon-reload").Run()
	_ = exec.Command("systemctl", "reset-failed", NodeUnit).Run()
	_ = os.RemoveAll(filepath.Dir(NodeConfig))
	_ = os.Remove(NodeAddress)
	_ = os.Remove(NodeAddress + ".ttrpc")
}
