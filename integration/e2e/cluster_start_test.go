//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

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
