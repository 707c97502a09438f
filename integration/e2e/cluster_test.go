//go:build e2e

// Package e2e runs pods on both handlers (runc, pause) through a one-node
// Kubernetes cluster on this host: etcd, kube-apiserver, a kubelet on
// 127.0.0.1, over the private containerd of package testenv (make e2e). No
// scheduler: pods name their node.
package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

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

func (c *cluster) startEtcd() (string, error) {
	client, peer := freePort(), freePort()
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	if _, err := c.start("etcd", "--name", "e2e", "--data-dir", filepath.Join(c.dir, "etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "e2e="+peerURL, "--log-level", "warn",
		// Throwaway data: no fsync, as Kubernetes' own integration tests run it.
		"--unsafe-no-fsync"); err != nil {
		return "", err
	}
	return clientURL, waitHTTP("etcd", clientURL+"/health", http.DefaultClient)
}

func (c *cluster) startAPIServer(etcdURL string) (string, error) {
	lo := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.251.0.1")}
	names := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	for _, cert := range []struct {
		name, cn string
		orgs     []string
		ips      []net.IP
		names    []string
	}{
		{"apiserver", "kube-apiserver", nil, lo, names},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil},
		{"admin", "e2e-admin", []string{"system:masters"}, nil, nil},
		{"kubelet", "system:node:" + nodeName, []string{"system:nodes"}, nil, nil},
	} {
		if err := c.pki.issue(cert.name, cert.cn, cert.orgs, cert.ips, cert.names); err != nil {
			return "", err
		}
	}
	saKey, err := c.pki.serviceAccountKey()
	if err != nil {
		return "", err
	}
	var extra []string
	if c.opts.controlPlane {
		extra = append(extra, "--allow-privileged=true")
	}
	port := freePort()
	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	p := c.pki.path
	if _, err := c.start("kube-apiserver", append(extra,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", fmt.Sprint(port),
		"--cert-dir", filepath.Join(c.dir, "apiserver"),
		"--tls-cert-file", p("apiserver.crt"), "--tls-private-key-file", p("apiserver.key"),
		"--client-ca-file", p("ca.crt"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", serviceRange,
		"--authorization-mode", "Node,RBAC",
		"--kubelet-client-certificate", p("apiserver-kubelet-client.crt"), "--kubelet-client-key", p("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types", "Hostname",
		// The kubernetes Service's endpoint would be 127.0.0.1, which
		// Endpoints refuse; no pod here talks to the API server.
		"--endpoint-reconciler-type", "none",
		"--profiling=false")...); err != nil {
		return "", err
	}
	c.kubeconfig = filepath.Join(c.dir, "admin.kubeconfig")
	if err := c.pki.kubeconfig(c.kubeconfig, server, "admin"); err != nil {
		return "", err
	}
	cert, err := tls.LoadX509KeyPair(p("admin.crt"), p("admin.key"))
	if err != nil {
		return "", err
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.pki.ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots}}}
	return server, waitHTTP("kube-apiserver", server+"/readyz", hc)
}

// setUpAPI makes the client and what a controller manager would have made:
// the default service account, which pods must name. Then the RuntimeClass
// operators apply, unchanged.
func (c *cluster) setUpAPI(server, repo string) error {
	var err error
	p := c.pki.path
	cfg := &rest.Config{Host: server, TLSClientConfig: rest.TLSClientConfig{
		CertFile: p("admin.crt"), KeyFile: p("admin.key"), CAFile: p("ca.crt")}}
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := c.client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("default service account: %w", err)
	}
	if c.opts.nodeService {
		return nil // the RuntimeClasses come with the installer's objects
	}
	if out, err := c.kubectl(ctx, nil, "apply", "-f", filepath.Join(repo, "deploy", "runtimeclass.yaml")); err != nil {
		return fmt.Errorf("kubectl apply runtimeclass: %v: %s", err, out)
	}
	return nil
}

// startControlPlane starts kube-controller-manager (service accounts and
// the root CA in every namespace, namespace deletion, garbage collection)
// and kube-scheduler, each as its own user, and waits for their health.
func (c *cluster) startControlPlane(server string) error {
	p := c.pki.path
	for _, comp := range []struct {
		name string
		args []string
	}{
		{"kube-controller-manager", []string{
			// Each controller as its own service account, as kubeadm runs it.
			"--use-service-account-credentials",
			"--service-account-private-key-file", p("sa.key"),
			"--root-ca-file", p("ca.crt"),
		}},
		{"kube-scheduler", nil},
	} {
		if err := c.pki.issue(comp.name, "system:"+comp.name, nil, nil, nil); err != nil {
			return err
		}
		kubeconfig := filepath.Join(c.dir, comp.name+".kubeconfig")
		if err := c.pki.kubeconfig(kubeconfig, server, comp.name); err != nil {
			return err
		}
		port := freePort()
		args := append(comp.args, "--kubeconfig", kubeconfig, "--leader-elect=false",
			"--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(port),
			"--cert-dir", filepath.Join(c.dir, comp.name), "--profiling=false")
		if _, err := c.start(comp.name, args...); err != nil {
			return err
		}
		// Its serving certificate is its own, self-signed; /healthz needs
		// no client credentials.
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		if err := waitHTTP(comp.name, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), hc); err != nil {
			return fmt.Errorf("%w; its log: %s", err, tail(filepath.Join(c.dir, comp.name+".log"), 20))
		}
	}
	return nil
}

func (c *cluster) startKubelet(server string) error {
	kubeconfig := filepath.Join(c.dir, "kubelet.kubeconfig")
	if err := c.pki.kubeconfig(kubeconfig, server, "kubelet"); err != nil {
		return err
	}
	// With the cgroupfs driver the kubelet's cgroups go under a root of the
	// run's own, which the kubelet wants to exist: every hierarchy gets it.
	// With the systemd driver (a production node, make test-node's VM,
	// which is the run's own) the kubelet keeps systemd's default:
	// kubepods.slice under the root slice.
	driver, root := "systemd", ""
	if !testenv.SystemdDriver() {
		driver, c.cgroupRoot = "cgroupfs", fmt.Sprintf("/pause-e2e-kubelet-%d", os.Getpid())
		if err := makeCgroupRoot(c.cgroupRoot); err != nil {
			return err
		}
		root = fmt.Sprintf("cgroupRoot: %q\n", c.cgroupRoot)
	}
	manifests := filepath.Join(c.dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		return err
	}
	port := freePort()
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %q}
authorization: {mode: AlwaysAllow}
cgroupDriver: %s
%scgroupsPerQOS: true
failSwapOn: false
registerNode: true
podCIDR: %q
staticPodPath: %q
podLogsDir: %q
# This machine is shared and its disk well used: no eviction, no image
# garbage collection (it would remove the imported test images).
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Status reaches the API server at once, with a heartbeat every 2 s (a
# restart waits for one from the new kubelet).
nodeStatusUpdateFrequency: 2s
nodeStatusReportFrequency: 2s
syncFrequency: 5s
fileCheckFrequency: 2s
`, port, c.pki.path("ca.crt"), driver, root, testenv.PodSubnet, manifests, filepath.Join(c.dir, "pod-logs"))
	configPath := filepath.Join(c.dir, "kubelet.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return err
	}
	c.kubeletArgs = []string{"--config", configPath, "--kubeconfig", kubeconfig,
		"--container-runtime-endpoint", "unix://" + c.env.Address,
		"--root-dir", filepath.Join(c.dir, "kubelet"), "--cert-dir", filepath.Join(c.dir, "kubelet-pki"),
		"--hostname-override", nodeName, "--v", "2"}
	if !c.opts.nodeService {
		// The label the node installer sets once CRI lists the handlers,
		// which deploy/'s RuntimeClasses select: this host's containerd
		// has them from the start (the tests install no DaemonSet).
		c.kubeletArgs = append(c.kubeletArgs, "--node-labels", "containerd-shim-pause-v2/ready=true")
	}
	kubelet, err := c.start("kubelet", c.kubeletArgs...)
	if err != nil {
		return err
	}
	c.kubelet = kubelet
	ctx, cancel := context.WithTimeout(context.Background(), patience(2*time.Minute))
	defer cancel()
	return c.waitNodeReady(ctx, time.Time{})
}

// waitNodeReady waits until the node is Ready with a heartbeat after since
// (a heartbeat every nodeStatusReportFrequency, 2 s, while the kubelet
// runs): the status is a kubelet's of after that moment, not one left from
// before it.
func (c *cluster) waitNodeReady(ctx context.Context, since time.Time) error {
	// The API keeps the heartbeat in whole seconds: one in a later second
	// than since's is after it.
	after := since.Truncate(time.Second).Add(time.Second)
	for {
		if c.kubelet.exited() {
			return fmt.Errorf("kubelet exited: %s", tail(filepath.Join(c.dir, "kubelet.log"), 20))
		}
		node, err := c.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err == nil {
			if err = readyAfter(node, after); err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("node %s not Ready: %v; kubelet log: %s", nodeName, err, tail(filepath.Join(c.dir, "kubelet.log"), 20))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// restartKubelet stops the kubelet with SIGTERM, by its pid, and starts it
// again with the same configuration, root and certificates: the pods it ran
// are still the runtime's, and the new kubelet takes them over.
func (c *cluster) restartKubelet(ctx context.Context) error {
	old := c.kubelet
	if err := syscall.Kill(old.pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM to the kubelet (pid %d): %w", old.pid, err)
	}
	select {
	case <-old.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(old.pid, syscall.SIGKILL) // not waited for yet: still ours
		<-old.done
		c.forget(old)
		return fmt.Errorf("kubelet (pid %d) did not exit on SIGTERM within 30 s", old.pid)
	}
	c.forget(old)
	since := time.Now()
	kubelet, err := c.start("kubelet", c.kubeletArgs...)
	if err != nil {
		return err
	}
	c.kubelet = kubelet
	return c.waitNodeReady(ctx, since)
}

// restartContainerd kills containerd with sig and starts it again on the
// same state; the shims, and the pods in them, run on. The kubelet, which
// stays up, must find the runtime again.
func (c *cluster) restartContainerd(ctx context.Context, sig syscall.Signal) error {
	if err := c.env.Restart(sig, nil); err != nil {
		return fmt.Errorf("containerd restart (%v): %w; its log: %s", sig, err, tail(filepath.Join(c.env.Dir, "containerd.log"), 20))
	}
	return c.waitNodeReady(ctx, time.Now())
}

func nodeReady(node *corev1.Node) bool {
	cond := readyCondition(node)
	return cond != nil && cond.Status == corev1.ConditionTrue
}

// readyAfter says why the node's status is not Ready with a heartbeat at
// or after after (nil when it is).
func readyAfter(node *corev1.Node, after time.Time) error {
	cond := readyCondition(node)
	switch {
	case cond == nil:
		return errors.New("no Ready condition")
	case cond.Status != corev1.ConditionTrue:
		return fmt.Errorf("Ready %s (%s: %s)", cond.Status, cond.Reason, cond.Message)
	case cond.LastHeartbeatTime.Time.Before(after):
		return fmt.Errorf("no heartbeat since %s (last at %s)", after.Format(time.TimeOnly), cond.LastHeartbeatTime.Format(time.TimeOnly))
	}
	return nil
}

func readyCondition(node *corev1.Node) *corev1.NodeCondition {
	for i, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}

// makeCgroupRoot creates root in every hierarchy; cpuset's needs its
// parent's cpus and mems before a process may join a child.
func makeCgroupRoot(root string) error {
	for _, h := range testenv.CgroupRoots() {
		dir := filepath.Join(h, root)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if filepath.Base(h) != "cpuset" {
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			v, err := os.ReadFile(filepath.Join(h, f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
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
