//go:build e2e

// Package e2e runs pods on both handlers (runc, pause) through a one-node
// Kubernetes cluster on this host: etcd, kube-apiserver, a kubelet on
// 127.0.0.1, over the private containerd of package testenv (make e2e). No
// scheduler: pods name their node.
package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

const (
	// nodeName is also the address the API server reaches the kubelet at
	// (it takes the node's Hostname address): the kubelet refuses a
	// loopback node IP, and listens on 127.0.0.1 only.
	nodeName = "localhost"
	// serviceRange holds the API server's service IPs: nothing routes it.
	serviceRange = "10.251.0.0/24"
)

// cluster is the running cluster the tests share.
type cluster struct {
	dir          string // everything of the run: certificates, data, logs, kubelet root
	opts         options
	repo         string
	env          *testenv.Env
	sandboxImage string // the pause image CRI runs handler runc's pods on
	pki          *pki
	server       string // the API server's URL, on 127.0.0.1
	kubeconfig   string // the test's own (system:masters)
	client       *kubernetes.Clientset
	cgroupRoot   string // the kubelet's cgroup root, under every hierarchy (cgroupfs driver)
	kubelet      *proc
	kubeletArgs  []string // to start it again the same way
	procs        []*proc  // running, in start order
}

// proc is a process the cluster started: stopped by pid, SIGTERM then SIGKILL.
type proc struct {
	name string
	pid  int
	done chan struct{}
}

// start runs name with its output in dir/name.log, in a process group of
// its own, killed if the test binary dies first.
func (c *cluster) start(name string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(filepath.Join(c.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &proc{name: name, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	c.procs = append(c.procs, p)
	return p, nil
}

func (p *proc) stop() { testenv.TermThenKill(p.pid, p.done, 20*time.Second) }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// forget drops a stopped process from those stop stops: its pid may be
// another process's by then.
func (c *cluster) forget(p *proc) {
	for i, q := range c.procs {
		if q == p {
			c.procs = append(c.procs[:i], c.procs[i+1:]...)
			return
		}
	}
}

// prerequisites says what is missing to run the cluster here ("" when
// nothing): testenv's own, and the binaries make deps-k8s builds.
func prerequisites(repo string) (shim, missing string) {
	shim, missing = testenv.Prerequisites(repo)
	if missing != "" {
		return "", missing
	}
	for _, tool := range []string{"etcd", "kube-apiserver", "kubelet", "kubectl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", tool + " is not installed (run `make deps-k8s`)"
		}
	}
	if _, err := os.Stat(filepath.Join(repo, "pod", "pause", "pause_"+runtime.GOARCH+".elf")); err != nil {
		return "", "no pause binary for the runc handler's pause image on " + runtime.GOARCH
	}
	return shim, ""
}

// options are what make e2e-conformance's clusters add to make e2e's (the
// zero value).
type options struct {
	// defaultRuntime is CRI's default handler, the one pods without a
	// RuntimeClass run on (runc when empty).
	defaultRuntime string
	// registry (host:port on 127.0.0.1) gets every image pull.
	registry string
	// controlPlane adds kube-scheduler and kube-controller-manager, for
	// clients that make pods without a node and namespaces without their
	// service account (Kubernetes' e2e framework), and lets pods be
	// privileged.
	controlPlane bool
	// nodeService runs containerd as the node's containerd.service, from a
	// stock config without this shim's handlers (testenv.AsNodeService),
	// and the kubelet registers without the ready label: the node
	// installer is to add both.
	nodeService bool
}

// startCluster brings the cluster up, each part waited for before the next.
// On an error the caller still calls stop.
func startCluster(c *cluster, repo, shim string, opts options) error {
	c.opts = opts
	envOpts := []testenv.Option{testenv.WithLogLevel("info"), testenv.WithSharedHost()}
	if opts.defaultRuntime != "" {
		envOpts = append(envOpts, testenv.WithDefaultRuntime(opts.defaultRuntime))
	}
	if opts.registry != "" {
		envOpts = append(envOpts, testenv.WithRegistryMirror(opts.registry))
	}
	if opts.nodeService {
		envOpts = append(envOpts, testenv.AsNodeService())
	}
	var err error
	c.env, err = testenv.Start(repo, shim, fmt.Sprintf("pause-e2e-%d", os.Getpid()), envOpts...)
	if err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	c.repo = repo
	// Handler runc's pause image is imported only before its first pod
	// (ensurePauseImage): until then the image store holds none.
	if c.sandboxImage, err = c.env.SandboxImage(); err != nil {
		return err
	}
	if c.pki, err = newPKI(filepath.Join(c.dir, "pki")); err != nil {
		return err
	}
	etcdURL, err := c.startEtcd()
	if err != nil {
		return err
	}
	server, err := c.startAPIServer(etcdURL)
	if err != nil {
		return err
	}
	c.server = server
	if err := c.setUpAPI(server, repo); err != nil {
		return err
	}
	if opts.controlPlane {
		if err := c.startControlPlane(server); err != nil {
			return err
		}
	}
	return c.startKubelet(server)
}

// stop stops what startCluster started, last first. It returns what the run
// left behind: what the kubelet did not clean (then removed through CRI, so
// the host is clean either way) and testenv's leak check.
func (c *cluster) stop() []string {
	var leaks []string
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop()
	}
	// The kubelet makes its root a shared mount of itself, and leaves it.
	_ = syscall.Unmount(filepath.Join(c.dir, "kubelet"), syscall.MNT_DETACH)
	if c.env == nil {
		return nil
	}
	leaks = append(leaks, removeCRILeftovers(c.env.Address)...)
	leaks = append(leaks, c.env.Leaks()...)
	leaks = append(leaks, runcLeftovers()...)
	leaks = append(leaks, c.cgroupLeftovers()...)
	leaks = append(leaks, mountsUnder(c.dir)...)
	return leaks
}

// cgroupLeftovers lists pod cgroups left under the kubelet's root, then
// removes the kubelet's own (kubepods and its QoS classes), deepest first.
func (c *cluster) cgroupLeftovers() []string {
	if testenv.SystemdDriver() {
		return podSliceLeftovers()
	}
	if c.cgroupRoot == "" {
		return nil
	}
	var leaks []string
	for _, h := range testenv.CgroupRoots() {
		root := filepath.Join(h, c.cgroupRoot)
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
				if strings.HasPrefix(d.Name(), "pod") {
					leaks = append(leaks, "cgroup "+path)
				}
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				leaks = append(leaks, fmt.Sprintf("cgroup %s: %v", dirs[i], err))
			}
		}
	}
	return leaks
}

// podSliceLeftovers lists the pod slices the systemd driver's kubelet left
// (kubepods-<qos>-pod<uid>.slice), then stops kubepods.slice, the
// kubelet's own, with what it holds.
func podSliceLeftovers() []string {
	leaks := testenv.LoadedUnits("kubepods*-pod*.slice")
	if out, err := exec.Command("systemctl", "stop", "kubepods.slice").CombinedOutput(); err != nil {
		leaks = append(leaks, fmt.Sprintf("systemctl stop kubepods.slice: %v: %s", err, out))
	}
	return leaks
}

// podCgroup is the cgroup of a Guaranteed pod, relative to a hierarchy's
// root: <root>/kubepods/pod<uid> under the cgroupfs driver,
// kubepods.slice/kubepods-pod<uid, dashes as underscores>.slice under
// systemd's.
func (c *cluster) podCgroup(uid string) string {
	if testenv.SystemdDriver() {
		return filepath.Join("kubepods.slice", "kubepods-pod"+strings.ReplaceAll(uid, "-", "_")+".slice")
	}
	return filepath.Join(c.cgroupRoot, "kubepods", "pod"+uid)
}

// patience scales a deadline for an emulated node (testenv.Slow: the VM of
// make test-node runs everything many times slower).
func patience(d time.Duration) time.Duration {
	if testenv.Slow() {
		return 5 * d
	}
	return d
}

func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	var leaks []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.Contains(s.Text(), dir) {
			leaks = append(leaks, "mount "+s.Text())
		}
	}
	return leaks
}

// kubectl runs kubectl on the cluster as its admin.
func (c *cluster) kubectl(ctx context.Context, stdin *strings.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// freePort is a TCP port on 127.0.0.1 free a moment ago.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitHTTP(what, url string, hc *http.Client) error {
	var last error
	for deadline := time.Now().Add(patience(90 * time.Second)); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		last = err
	}
	return fmt.Errorf("%s not ready at %s: %v", what, url, last)
}

// tail is the last n lines of a log, for an error message.
func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n  " + strings.Join(lines, "\n  ")
}
