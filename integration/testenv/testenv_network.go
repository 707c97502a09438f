package testenv

import (
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// bridgeName is the suite's CNI bridge. It has no address on the host
// (isGateway false): pod addresses live only in the pods' namespaces.
func (env *Env) bridgeName() string {
	return fmt.Sprintf("pz%08x", crc32.ChecksumIEEE([]byte(env.Dir)))
}

// CNIConfDir is where CRI reads its CNI network configuration.
func (env *Env) CNIConfDir() string { return filepath.Join(env.Dir, "cni") }

// NetNSDir is where CRI mounts the pods' network namespaces: under its
// state directory with WithSharedHost, else in /var/run/netns.
func (env *Env) NetNSDir() string {
	if env.sharedHost {
		return filepath.Join(env.Dir, "state", "io.containerd.grpc.v1.cri", "netns")
	}
	return "/var/run/netns"
}

func (env *Env) writeCNIConfig(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"pause-it","plugins":[
  {"type":"bridge","bridge":%q,"isGateway":false,"ipMasq":false,"hairpinMode":true,
   "ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]]}},
  {"type":"loopback"}]}`, env.bridgeName(), filepath.Join(env.Dir, "cni-ipam"), env.podSubnet)
	return os.WriteFile(filepath.Join(dir, "10-pause-it.conflist"), []byte(conf), 0o644)
}

func netnsEntries() map[string]bool {
	entries, _ := os.ReadDir("/var/run/netns")
	m := map[string]bool{}
	for _, e := range entries {
		m[e.Name()] = true
	}
	return m
}

func newEntries(before, after map[string]bool, what string) []string {
	var out []string
	for name := range after {
		if !before[name] {
			out = append(out, what+" "+name)
		}
	}
	return out
}

// removeBridge deletes the suite's CNI bridge; a leak is only what else remains.
func (env *Env) removeBridge() []string {
	if _, err := os.Stat("/sys/class/net/" + env.bridgeName()); err != nil {
		return nil
	}
	if out, err := exec.Command("ip", "link", "del", env.bridgeName()).CombinedOutput(); err != nil {
		return []string{"bridge " + env.bridgeName() + ": " + strings.TrimSpace(string(out))}
	}
	return nil
}
