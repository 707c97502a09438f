// Package testenv runs a private containerd for the tests, the benchmark
// too, then finds what a run left behind.
//
// The containerd has its own root, state, sockets, containerd namespace;
// CRI with the handlers runc (stock), pause (this shim, shim mode),
// pause-podsandbox; a CNI bridge whose addresses live only in the pods'
// namespaces; a busybox image built from the host's busybox-static.
package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/pelletier/go-toml/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
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

// WithRegistryMirror sends every image pull to the registry at host:port
// (plain HTTP, on loopback): images keep their upstream names.
func WithRegistryMirror(hostport string) Option {
	return func(e *Env) { e.mirror = hostport }
}

// WithDropIn makes containerd import the given drop-in (a glob, as in
// containerd's imports) instead of the repository's deploy/ one.
func WithDropIn(pattern string) Option {
	return func(e *Env) { e.dropIn = pattern }
}

// WithPodSubnet gives the CNI bridge a subnet other than PodSubnet (a
// run with more live pods than a /24 holds).
func WithPodSubnet(cidr string) Option {
	return func(e *Env) { e.podSubnet = cidr }
}

// WithLogLevel sets containerd's log level (debug by default), which is
// also the level containerd asks of the shims it starts.
func WithLogLevel(level string) Option {
	return func(e *Env) { e.logLevel = level }
}

// WithSharedHost is for a suite that may run beside others on this host
// (make e2e): CRI's network namespaces go under containerd's state
// directory, where the mount check finds any left, and Leaks skips the
// host-wide scan of /var/run/netns, which would count the other suites'
// pods. Pause tasks are counted by their shim (see ownsOrOrphaned) either way.
func WithSharedHost() Option {
	return func(e *Env) { e.sharedHost = true }
}

// WithDefaultRuntime makes handler CRI's default runtime
// (default_runtime_name), the one pods without a RuntimeClass get; runc
// unless set.
func WithDefaultRuntime(handler string) Option {
	return func(e *Env) { e.defaultRuntime = handler }
}

// WithEnv adds variables (KEY=value) to containerd's environment, which
// every shim process it starts inherits; a later PATH wins over the test's.
func WithEnv(kv ...string) Option {
	return func(e *Env) { e.extraEnv = append(e.extraEnv, kv...) }
}

// Runtime is a CRI runtime handler on this shim.
type Runtime struct {
	Name string
	// Options is the body of its options table: key = value lines.
	Options string
	// PullPauseImage leaves CRI's pause image pull on, as a handler that
	// forgot disable_pause_image_pull would.
	PullPauseImage bool
	// Binary, when set, is the shim's absolute path (runtime_type), as
	// the node installer's drop-in names it, or another runtime type.
	Binary string
	// Sandboxer is CRI's sandboxer for it: "shim" unless set.
	Sandboxer string
}

// WithRuntime adds a CRI runtime handler on this shim.
func WithRuntime(r Runtime) Option {
	return func(e *Env) {
		table := `plugins."io.containerd.cri.v1.runtime".containerd.runtimes.` + r.Name
		runtimeType := RuntimeName
		if r.Binary != "" {
			runtimeType = r.Binary
		}
		sandboxer := r.Sandboxer
		if sandboxer == "" {
			sandboxer = "shim"
		}
		e.runtimes += fmt.Sprintf("[%s]\n  runtime_type = %q\n  sandboxer = %q\n  disable_pause_image_pull = %t\n[%s.options]\n%s\n",
			table, runtimeType, sandboxer, !r.PullPauseImage, table, r.Options)
	}
}

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

// LogPath is containerd's log (the shims' logs are relayed into it).
func (env *Env) LogPath() string { return filepath.Join(env.Dir, "containerd.log") }

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

// importImages builds the test images from host files and imports them
// into CRI's namespace.
func (env *Env) importImages() error {
	img, err := testimage.Busybox(BusyboxImage, "sh", "sleep", "nc", "ps", "hostname", "cat", "echo",
		"readlink", "ls", "id", "tty", "head", "dd", "true", "rm", "grep", "date")
	if err != nil {
		return err
	}
	archive := filepath.Join(env.Dir, "busybox.tar")
	if err := testimage.WriteArchive(img, archive); err != nil {
		return err
	}
	return testimage.Import(env.CtrArgs(CRINamespace), archive)
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

// findLeaks lists what containerd still knows of the suite's pods and tasks,
// and what is left in its state: bundles and shim sockets.
func (env *Env) findLeaks() []string {
	var leaks []string
	ctx := namespaces.WithNamespace(context.Background(), env.Namespace)
	if sbs, err := env.Client.SandboxStore().List(ctx); err == nil {
		for _, sb := range sbs {
			leaks = append(leaks, "sandbox "+sb.ID)
		}
	}
	if resp, err := env.Client.TaskService().List(ctx, nil); err == nil {
		for _, t := range resp.Tasks {
			leaks = append(leaks, "task "+t.ID)
		}
	}
	leaks = append(leaks, dirEntries(filepath.Join(env.Dir, "state", "io.containerd.runtime.v2.task", env.Namespace), "bundle")...)
	leaks = append(leaks, dirEntries(filepath.Join(env.Dir, "s"), "shim socket")...)
	return leaks
}

// recordCopyDir holds the shims' copies of their pods' records (package
// pod's orphanDir): each names its bundle.
const recordCopyDir = "/run/containerd-shim-pause-v2/pods"

// recordCopies names, as leaks, the pod record copies of this containerd's
// bundles: `shim delete` (or the sweep of a later one) removes each.
func (env *Env) recordCopies() []string {
	var leaks []string
	files, _ := filepath.Glob(filepath.Join(recordCopyDir, "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var copy struct{ Bundle string }
		if json.Unmarshal(data, &copy) == nil && strings.HasPrefix(copy.Bundle, env.Dir+"/") {
			leaks = append(leaks, "pod record copy "+f+" of "+copy.Bundle)
		}
	}
	return leaks
}

// awaitShimExits gives the shims a moment to exit: a shim exits a moment
// after answering ShutdownSandbox, and removes the last of its sockets
// (pkg/shim's) as it does. A shim that stays is a leak of its own.
func (env *Env) awaitShimExits() {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && env.ShimProcesses() > 0; {
		time.Sleep(50 * time.Millisecond)
	}
}

// findHostLeaks looks on the host, once containerd is gone, for the shim's
// processes, pause tasks, runc containers, mounts and cgroups.
func (env *Env) findHostLeaks() []string {
	var leaks []string
	env.awaitShimExits()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if exe, err := os.Readlink(p + "/exe"); err == nil && exe == env.Shim {
			leaks = append(leaks, fmt.Sprintf("shim process %d", pid))
		}
		if isPauseTask(pid) && env.ownsOrOrphaned(pid) {
			leaks = append(leaks, fmt.Sprintf("pause task %d", pid))
		}
	}
	leaks = append(leaks, dirEntries(filepath.Join("/run/containerd/runc", env.Namespace), "runc container")...)
	leaks = append(leaks, env.recordCopies()...)
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if strings.Contains(s.Text(), env.Dir) {
				leaks = append(leaks, "mount "+s.Text())
			}
		}
		f.Close()
	}
	// Every pod cgroup of the suite lives under /<namespace>; containerd
	// made that parent, the suite removes it once it is empty.
	for _, root := range CgroupRoots() {
		nsDir := filepath.Join(root, env.Namespace)
		leaks = append(leaks, subdirs(nsDir, "cgroup")...)
		_ = os.Remove(nsDir)
	}
	return leaks
}

// ownsOrOrphaned tells whether a pause task is this suite's: its parent is
// the shim under test, or it has lost its shim (a leak whoever made it).
// Another shim binary's pause tasks (another checkout's tests running on the
// same host) are not this suite's to count.
func (env *Env) ownsOrOrphaned(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 2 {
		return false
	}
	parent, err := os.Readlink("/proc/" + f[1] + "/exe")
	return err != nil || parent == env.Shim || f[1] == "1"
}

// isPauseTask tells a pause task by its name and the uid it drops to.
func isPauseTask(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "pause" {
		return false
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.Contains(string(cmdline), "-u\x0065535")
}

// CgroupRoots are the hierarchies a pod cgroup appears in: the unified one,
// or every v1 hierarchy (and, on hybrid hosts, the unified one beside them).
func CgroupRoots() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"}
	}
	var roots []string
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range entries {
		if e.IsDir() {
			roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	return roots
}

func dirEntries(dir, what string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		out = append(out, what+" "+filepath.Join(dir, e.Name()))
	}
	return out
}

func subdirs(dir, what string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, what+" "+filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// Leaks stops containerd and lists everything the run left: pods and tasks
// containerd still knows, bundles, sockets, shim and pause processes, runc
// containers, mounts, cgroups, network namespaces and the CNI bridge.
func (env *Env) Leaks() []string {
	var leaks []string
	env.awaitShimExits() // before their sockets are listed
	if env.Client != nil {
		leaks = env.findLeaks()
	}
	env.Stop()
	if !env.sharedHost {
		leaks = append(leaks, newEntries(env.netnsBefore, netnsEntries(), "netns")...)
	}
	leaks = append(leaks, env.removeBridge()...)
	leaks = append(leaks, env.findHostLeaks()...)
	return append(leaks, systemdLeaks()...)
}

// Residue lists what Leaks would, but leaves containerd running: for a
// test that checks after each of its cases on one containerd.
func (env *Env) Residue() []string {
	env.awaitShimExits() // before their sockets are listed
	leaks := env.findLeaks()
	if !env.sharedHost {
		leaks = append(leaks, newEntries(env.netnsBefore, netnsEntries(), "netns")...)
	}
	leaks = append(leaks, env.findHostLeaks()...)
	if SystemdDriver() {
		leaks = append(leaks, LoadedUnits("cri-containerd-*", "pause-*.slice", "pauseit-*-pod*")...)
	}
	return leaks
}

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

// SlowEnv, when set, says the suite runs on an emulated node (make
// test-node's VM runs containers about 40 times slower): tests scale their
// pod counts down and their deadlines up.
const SlowEnv = "PAUSE_IT_SLOW"

// Slow tells whether the suite runs on an emulated node.
func Slow() bool { return os.Getenv(SlowEnv) != "" }
