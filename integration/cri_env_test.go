package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

// criNamespace is where CRI keeps its images and containers.
const criNamespace = "k8s.io"

// busyboxImage is imported from the host's busybox-static: never pulled.
const busyboxImage = "docker.io/library/busybox:latest"

// bridgeName is the suite's CNI bridge. It has no address on the host
// (isGateway false): pod addresses live only in the pods' namespaces.
func bridgeName() string { return fmt.Sprintf("pzt%d", os.Getpid()%100000) }

func writeCNIConfig(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"pause-it","plugins":[
  {"type":"bridge","bridge":%q,"isGateway":false,"ipMasq":false,"hairpinMode":true,
   "ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.250.0.0/24"}]]}},
  {"type":"loopback"}]}`, bridgeName(), filepath.Join(env.dir, "cni-ipam"))
	return os.WriteFile(filepath.Join(dir, "10-pause-it.conflist"), []byte(conf), 0o644)
}

// importImages builds the test images from host files and imports them
// into CRI's namespace.
func importImages() error {
	img, err := testimage.Busybox(busyboxImage, "sh", "sleep", "nc", "ps", "hostname", "cat", "echo",
		"readlink", "ls", "id", "tty", "head", "dd", "true")
	if err != nil {
		return err
	}
	archive := filepath.Join(env.dir, "busybox.tar")
	if err := testimage.WriteArchive(img, archive); err != nil {
		return err
	}
	return testimage.Import([]string{"--address", env.address, "--namespace", criNamespace}, archive)
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
func removeBridge() []string {
	if _, err := os.Stat("/sys/class/net/" + bridgeName()); err != nil {
		return nil
	}
	if out, err := exec.Command("ip", "link", "del", bridgeName()).CombinedOutput(); err != nil {
		return []string{"bridge " + bridgeName() + ": " + strings.TrimSpace(string(out))}
	}
	return nil
}
