// Package testenv runs a private containerd for the tests, the benchmark
// too, then finds what a run left behind.
//
// The containerd has its own root, state, sockets, containerd namespace;
// CRI with the handlers runc (stock), pause (this shim, shim mode),
// pause-podsandbox; a CNI bridge whose addresses live only in the pods'
// namespaces; a busybox image built from the host's busybox-static.
package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RuntimeName is the runtime type of the shim under test.
const RuntimeName = "io.containerd.pause.v2"

// CRINamespace is where CRI keeps its images and containers.
const CRINamespace = "k8s.io"

// BusyboxImage is imported from the host's busybox-static: never pulled.
const BusyboxImage = "docker.io/library/busybox:latest"

// PodSubnet is where the CNI bridge gives pods their addresses (a node's
// pod CIDR, for a kubelet on this containerd).
const PodSubnet = "10.250.0.0/24"

// CNIBinDir holds the CNI plugins (Debian's containernetworking-plugins).
const CNIBinDir = "/usr/lib/cni"

// Option changes how Start configures containerd.
type Option func(*Env)

// Env is one private containerd.
type Env struct {
	Dir       string // private root of everything: state, sockets, rootfs
	Address   string
	Namespace string
	Rootfs    string // busybox rootfs for containers (ctr run --rootfs)
	Shim      string // absolute path of the shim under test
	Repo      string // the repository's root
	Client    *containerd.Client

	pid            int
	exited         chan struct{} // closed when the containerd process has exited
	config         string        // its configuration file
	netnsBefore    map[string]bool
	mirror         string
	dropIn         string
	logLevel       string
	runtimes       string // extra CRI runtime tables
	sharedHost     bool
	podSubnet      string
	defaultRuntime string
	extraEnv       []string
	node           bool // AsNodeService
}

// Prerequisites says what is missing to run a private containerd here (""
// when nothing): root, and the tools `make deps` installs. repo is the
// repository's root.
func Prerequisites(repo string) (shim string, missing string) {
	if os.Geteuid() != 0 {
		return "", "needs root (namespaces, cgroups, mounts)"
	}
	if d := os.Getenv("DEPS_DIR"); d != "" {
		os.Setenv("PATH", filepath.Join(d, "bin")+":"+os.Getenv("PATH"))
	}
	shim = os.Getenv("SHIM_BINARY")
	if shim == "" {
		shim = filepath.Join(repo, "bin", "containerd-shim-pause-v2")
	}
	if _, err := os.Stat(shim); err != nil {
		return "", "no shim binary (run `make build` or set SHIM_BINARY)"
	}
	os.Setenv("PATH", filepath.Dir(shim)+":"+os.Getenv("PATH"))
	for _, tool := range []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2", "busybox", filepath.Join(CNIBinDir, "bridge")} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Sprintf("%s is not installed (run `make deps`)", tool)
		}
	}
	return shim, ""
}

// Start runs a private containerd whose containerd namespace is namespace.
// Call Stop (and Leaks) when done, also after an error.
func Start(repo, shim, namespace string, opts ...Option) (*Env, error) {
	e := &Env{Shim: shim, Repo: repo, Namespace: namespace, netnsBefore: netnsEntries(), logLevel: "debug", podSubnet: PodSubnet, defaultRuntime: "runc"}
	for _, o := range opts {
		o(e)
	}
	return e, e.start()
}

func (env *Env) start() error {
	dir, err := os.MkdirTemp("", "pause-it-")
	if err != nil {
		return err
	}
	env.Dir = dir
	// Traversable by the mapped uids of pods with user namespaces, as
	// /run/containerd is.
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	env.Address = filepath.Join(dir, "c.sock")
	if err := makeRootfs(filepath.Join(dir, "rootfs")); err != nil {
		return err
	}
	env.Rootfs = filepath.Join(dir, "rootfs")
	dropIn := filepath.Join(env.Repo, "deploy", "containerd-pause.toml")
	if env.dropIn != "" {
		dropIn = env.dropIn
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
  level = %[9]q
  address = %[8]q
[plugins."io.containerd.shim.v1.manager"]
  socket_dir = %[5]q
[plugins."io.containerd.cri.v1.runtime"]
  # This host cannot lower oom_score_adj (no CAP_SYS_RESOURCE).
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%[10]q]
    conf_dir = %[6]q
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = %[11]q
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
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), env.Address, env.Address+".ttrpc", filepath.Join(dir, "s"), filepath.Join(dir, "cni"), dropIn, filepath.Join(dir, "debug.sock"), env.logLevel, CNIBinDir, env.defaultRuntime) + env.runtimes
	if SystemdDriver() {
		config += `[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  SystemdCgroup = true
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.pause-podsandbox.options]
  SystemdCgroup = true
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.pause-systemd]
  runtime_type = "io.containerd.pause.v2"
  sandboxer = "shim"
  disable_pause_image_pull = true
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.pause-systemd.options]
  SystemdCgroup = true
`
	}
	if env.sharedHost {
		config = strings.Replace(config, "  restrict_oom_score_adj = true\n", "  restrict_oom_score_adj = true\n  netns_mounts_under_state_dir = true\n", 1)
	}
	if err := env.writeCNIConfig(env.CNIConfDir()); err != nil {
		return err
	}
	if env.mirror != "" {
		hosts := filepath.Join(dir, "certs.d", "_default")
		if err := os.MkdirAll(hosts, 0o755); err != nil {
			return err
		}
		toml := fmt.Sprintf("[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+env.mirror)
		if err := os.WriteFile(filepath.Join(hosts, "hosts.toml"), []byte(toml), 0o644); err != nil {
			return err
		}
		config += fmt.Sprintf("[plugins.\"io.containerd.cri.v1.images\".registry]\n  config_path = %q\n", filepath.Join(dir, "certs.d"))
	}
	cfgPath := filepath.Join(dir, "config.toml")
	if env.node {
		if config, err = env.nodeConfig(); err != nil {
			return err
		}
		cfgPath, env.Address = NodeConfig, NodeAddress
	}
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return err
	}
	env.config = cfgPath
	if err := env.launch(); err != nil {
		return err
	}
	return env.importImages()
}

// launch starts containerd on the written configuration and waits until it
// answers.
func (env *Env) launch() error {
	if env.node {
		if err := env.startUnit(); err != nil {
			return err
		}
		return env.waitUp()
	}
	logf, err := os.OpenFile(env.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command("containerd", "--config", env.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	if len(env.extraEnv) > 0 {
		cmd.Env = append(os.Environ(), env.extraEnv...)
	}
	// Its own process group, so a signal to the test binary's group does not
	// reach it; it is stopped by pid.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	env.pid = cmd.Process.Pid
	exited := make(chan struct{})
	env.exited = exited
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	return env.waitUp()
}

// waitUp waits until containerd answers, CRI included.
func (env *Env) waitUp() error {
	wait := 30 * time.Second
	if Slow() {
		// CRI recovers every pod before it serves: minutes under emulation.
		wait = 5 * time.Minute
	}
	deadline := time.Now().Add(wait)
	for {
		c, err := containerd.New(env.Address, containerd.WithDefaultNamespace(env.Namespace), containerd.WithTimeout(time.Second))
		if err == nil {
			if _, err = c.Version(context.Background()); err == nil {
				if err = criReady(env.Address); err == nil {
					env.Client = c
					return nil
				}
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not come up: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// criReady tells whether CRI answers and reports its runtime ready: after a
// restart it recovers its pods before it serves.
func criReady(address string) error {
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := cri.NewRuntimeServiceClient(conn).Status(ctx, &cri.StatusRequest{})
	if err != nil {
		return err
	}
	for _, c := range st.GetStatus().GetConditions() {
		if c.Type == cri.RuntimeReady && !c.Status {
			return fmt.Errorf("CRI runtime not ready: %s", c.Message)
		}
	}
	return nil
}

// Restart stops containerd with sig (SIGTERM: an upgrade; SIGKILL: a crash),
// leaving the shims running, and starts it again on the same state.
// whileDown runs while containerd is down.
func (env *Env) Restart(sig syscall.Signal, whileDown func()) error {
	if env.node {
		return fmt.Errorf("containerd is the unit %s: restart it through systemd", NodeUnit)
	}
	env.Client.Close()
	env.Client = nil
	_ = syscall.Kill(env.pid, sig)
	select {
	case <-env.exited:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("containerd did not exit on %v", sig)
	}
	if whileDown != nil {
		whileDown()
	}
	return env.launch()
}

func (env *Env) Stop() {
	if env.Client != nil {
		env.Client.Close()
	}
	if env.node {
		env.stopUnit()
		return
	}
	if env.pid == 0 || env.exited == nil {
		return
	}
	TermThenKill(env.pid, env.exited, 10*time.Second)
}

// TermThenKill stops a process the tests started, by pid: SIGTERM, then
// SIGKILL after grace; done is closed once it has been waited for.
func TermThenKill(pid int, done <-chan struct{}, grace time.Duration) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-done
	}
}

// LogPath is containerd's log (the shims' logs are relayed into it).
func (env *Env) LogPath() string { return filepath.Join(env.Dir, "containerd.log") }

// SlowEnv, when set, says the suite runs on an emulated node (make
// test-node's VM runs containers about 40 times slower): tests scale their
// pod counts down and their deadlines up.
const SlowEnv = "PAUSE_IT_SLOW"

// Slow tells whether the suite runs on an emulated node.
func Slow() bool { return os.Getenv(SlowEnv) != "" }
