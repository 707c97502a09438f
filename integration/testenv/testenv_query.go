package testenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/pelletier/go-toml/v2"
)

// ShimProcesses counts the running processes of the shim under test.
func (env *Env) ShimProcesses() int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if exe, err := os.Readlink(p + "/exe"); err == nil && exe == env.Shim {
			n++
		}
	}
	return n
}

// HeapInuse is containerd's live heap in bytes, after a garbage collection
// (from its pprof endpoint on the debug socket).
func (env *Env) HeapInuse() (int64, error) {
	client := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(env.Dir, "debug.sock"))
	}}}
	resp, err := client.Get("http://containerd/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapInuse = "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no HeapInuse in containerd's heap profile")
}

// Pid is the running containerd's.
func (env *Env) Pid() int { return env.pid }

// SandboxImage is the pause image CRI runs podsandbox pods on (and pulls
// for handlers without disable_pause_image_pull), as containerd's effective
// configuration names it: pinned_images.sandbox of `containerd config dump`.
func (env *Env) SandboxImage() (string, error) {
	out, err := exec.Command("containerd", "--config", env.config, "config", "dump").Output()
	if err != nil {
		return "", fmt.Errorf("containerd config dump: %w", err)
	}
	var cfg struct {
		Plugins struct {
			Images struct {
				Pinned map[string]string `toml:"pinned_images"`
			} `toml:"io.containerd.cri.v1.images"`
		} `toml:"plugins"`
	}
	if err := toml.Unmarshal(out, &cfg); err != nil {
		return "", fmt.Errorf("containerd config dump: %w", err)
	}
	image := cfg.Plugins.Images.Pinned["sandbox"]
	if image == "" {
		return "", fmt.Errorf("containerd config dump names no sandbox image (pinned_images.sandbox)")
	}
	return image, nil
}

// CtrArgs are ctr's flags for this containerd and a containerd namespace.
func (env *Env) CtrArgs(namespace string) []string {
	return []string{"--address", env.Address, "--namespace", namespace}
}

// CRIContext is a context in the namespace CRI uses.
func CRIContext() context.Context {
	return namespaces.WithNamespace(context.Background(), CRINamespace)
}
