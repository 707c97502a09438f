// Package integration drives the shim through a real containerd, runc and
// ctr, started here in a private directory with its own sockets, and checks
// afterwards that nothing the tests made is left on the host.
package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

const runtimeName = "io.containerd.pause.v2"

// env is the private containerd the tests share.
var env struct {
	dir       string // private root of everything: state, sockets, rootfs
	address   string
	namespace string
	rootfs    string // busybox rootfs for containers (ctr run --rootfs)
	shim      string // absolute path of the shim under test
	pid       int
	client    *containerd.Client
	skip      string // why integration tests cannot run here
}

func TestMain(m *testing.M) {
	code := func() int {
		if why := prerequisites(); why != "" {
			env.skip = why
			return m.Run()
		}
		if err := startContainerd(); err != nil {
			fmt.Fprintln(os.Stderr, "integration:", err)
			stopContainerd()
			return 1
		}
		netnsBefore := netnsEntries()
		code := m.Run()
		leaks := findLeaks()
		stopContainerd()
		leaks = append(leaks, newEntries(netnsBefore, netnsEntries(), "netns")...)
		leaks = append(leaks, removeBridge()...)
		leaks = append(leaks, findHostLeaks()...)
		if len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "integration: the suite left behind:\n  %s\n", strings.Join(leaks, "\n  "))
			code = 1
		}
		if code == 0 {
			os.RemoveAll(env.dir)
		} else {
			fmt.Fprintln(os.Stderr, "integration: containerd log kept in", filepath.Join(env.dir, "containerd.log"))
		}
		return code
	}()
	os.Exit(code)
}

// prerequisites says what is missing to run the suite ("" when nothing):
// root, and the tools `make deps` installs.
func prerequisites() string {
	if os.Geteuid() != 0 {
		return "integration tests need root (namespaces, cgroups, mounts)"
	}
	if d := os.Getenv("DEPS_DIR"); d != "" {
		os.Setenv("PATH", filepath.Join(d, "bin")+":"+os.Getenv("PATH"))
	}
	shim := os.Getenv("SHIM_BINARY")
	if shim == "" {
		if abs, err := filepath.Abs("../bin/containerd-shim-pause-v2"); err == nil {
			shim = abs
		}
	}
	if _, err := os.Stat(shim); err != nil {
		return "no shim binary (run `make build` or set SHIM_BINARY)"
	}
	env.shim = shim
	os.Setenv("PATH", filepath.Dir(shim)+":"+os.Getenv("PATH"))
	for _, tool := range []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2", "busybox", "/usr/lib/cni/bridge"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("%s is not installed (run `make deps`)", tool)
		}
	}
	return ""
}

func startContainerd() error {
	dir, err := os.MkdirTemp("", "pause-it-")
	if err != nil {
		return err
	}
	env.dir = dir
	env.namespace = fmt.Sprintf("pause-it-%d", os.Getpid())
	env.address = filepath.Join(dir, "c.sock")
	if err := makeRootfs(filepath.Join(dir, "rootfs")); err != nil {
		return err
	}
	env.rootfs = filepath.Join(dir, "rootfs")
	dropIn, err := filepath.Abs("../deploy/containerd-pause.toml")
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.nri.v1.nri"]
# The "pause" handler comes from the drop-in operators install.
imports = [%[7]q]
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[debug]
  level = "debug"
[plugins."io.containerd.shim.v1.manager"]
  socket_dir = %[5]q
[plugins."io.containerd.cri.v1.runtime"]
  # This host cannot lower oom_score_adj (no CAP_SYS_RESOURCE).
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = %[6]q
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    # CRI's default sandbox mode on this runtime: a pause container from
    # the pause image, run by the shim like any task.
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.pause-podsandbox]
      runtime_type = "io.containerd.pause.v2"
      sandboxer = "podsandbox"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), env.address, env.address+".ttrpc", filepath.Join(dir, "s"), filepath.Join(dir, "cni"), dropIn)
	if err := writeCNIConfig(filepath.Join(dir, "cni")); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command("containerd", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a signal to the test binary's group does not
	// reach it; it is stopped by pid.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	env.pid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); logf.Close() }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := containerd.New(env.address, containerd.WithDefaultNamespace(env.namespace), containerd.WithTimeout(time.Second))
		if err == nil {
			if _, err = c.Version(context.Background()); err == nil {
				env.client = c
				return importImages()
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not come up: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopContainerd ends the private containerd (by pid) and waits for it.
func stopContainerd() {
	if env.client != nil {
		env.client.Close()
	}
	if env.pid == 0 {
		return
	}
	_ = syscall.Kill(env.pid, syscall.SIGTERM)
	for i := 0; i < 100 && syscall.Kill(env.pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(env.pid, syscall.SIGKILL)
}

// makeRootfs lays out a busybox root with the applets the tests use.
func makeRootfs(root string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return err
	}
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "shared"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		return err
	}
	for _, applet := range []string{"sh", "sleep", "ps", "nc", "hostname", "readlink", "cat", "echo", "tty", "true", "kill", "touch", "ls"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/:/bin/sh\n"), 0o644)
}

// requireEnv skips a test only when its prerequisites are truly missing.
func requireEnv(t *testing.T) context.Context {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), env.namespace), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// ctr runs the real ctr against the private containerd.
func ctr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("ctr", append([]string{"--address", env.address, "--namespace", env.namespace}, args...)...)
	out, err := cmd.CombinedOutput()
	return dropDeprecation(string(out)), err
}

// dropDeprecation removes ctr's cgroup v1 warning from its output.
func dropDeprecation(out string) string {
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "DEPRECATION") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}
