//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/installer"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

// installEnv, set to the directory of the installer images
// hack/node/payload.sh builds, runs TestClusterInstall. It takes over the
// node's containerd.service, so only make test-node's throwaway VM sets it.
// The directory holds installer.tar (the build under test, installerImage),
// upgrade.tar (the same code with another version string, upgradeImage)
// and upgrade.version (that string).
const installEnv = "PAUSE_E2E_INSTALL"

const (
	// installerImage is deploy/installer.yaml's image, as CRI names it.
	installerImage = "docker.io/library/containerd-shim-pause-v2-installer:latest"
	upgradeImage   = "docker.io/library/containerd-shim-pause-v2-installer:upgrade"
	installNS      = "containerd-shim-pause-v2"
	installerDS    = "containerd-shim-pause-v2-installer"
	uninstallerDS  = "containerd-shim-pause-v2-uninstaller"
	readyLabel     = "containerd-shim-pause-v2/ready"
)

// Where deploy/'s defaults put the shim and the drop-in on the node.
var (
	installedShim = filepath.Join("/usr/local/bin", installer.ShimName)
	dropIn        = filepath.Join("/etc/containerd/conf.d", installer.DropInName)
)

type installRun struct{ repo, shim, images string }

// install is set when installEnv is.
var install *installRun

// TestClusterInstall: on a node whose containerd (a systemd unit, from a
// stock config that imports no drop-ins, handler runc only) runs a runc
// pod, `kubectl apply -f deploy/` installs the runtime: the installer's
// pod becomes Ready, the node gets the label, CRI lists pause and
// pause-dense on the installed shim, containerd was restarted through
// systemd and the runc pod kept its sandbox and containers. Pods on both
// RuntimeClasses run. A new image rolls out without restarting containerd
// or any pod: the running pods keep their shim (the old version), a new
// pause pod starts on the new one. The uninstaller refuses while pause
// pods run, naming them; once they are gone it completes: no label, no
// handlers, no files, and containerd's config byte for byte the stock one.
// Then the same with the Helm chart: helm install, pods on both
// RuntimeClasses, the chart's cleanup mode, helm uninstall.
func TestClusterInstall(t *testing.T) {
	if install == nil {
		if skip != "" {
			t.Skip(skip)
		}
		t.Skip("make test-node runs it on its VM (" + installEnv + "=<installer images>): it takes over the node's containerd.service")
	}
	if why := testenv.NodeServiceMissing(); why != "" {
		t.Fatalf("%s is set, but this node cannot run the test: %s", installEnv, why)
	}
	dir, err := os.MkdirTemp("", "pause-e2e-install-")
	if err != nil {
		t.Fatal(err)
	}
	c = &cluster{dir: dir}
	t.Cleanup(func() {
		// Pods first: their shims' `delete` needs the installed binary.
		var leaks []string
		if err := c.drain(); err != nil {
			leaks = append(leaks, "drain: "+err.Error())
		}
		leaks = append(leaks, installLeftovers()...)
		leaks = append(leaks, c.stop()...)
		leaks = append(leaks, installedShimProcesses()...)
		if len(leaks) > 0 {
			t.Errorf("the test left behind:\n  %s", strings.Join(leaks, "\n  "))
		}
		if t.Failed() {
			t.Logf("logs kept in %s (etcd, kube-apiserver, kubelet, controllers)", dir)
			if c.env != nil {
				t.Logf("and in %s (containerd)", c.env.Dir)
			}
			return
		}
		os.RemoveAll(dir)
		os.RemoveAll(c.env.Dir)
	})
	start := time.Now()
	step := func(format string, args ...any) {
		t.Helper()
		t.Logf("%s: %s", time.Since(start).Round(time.Second), fmt.Sprintf(format, args...))
	}
	if err := startCluster(c, install.repo, install.shim, options{controlPlane: true, nodeService: true}); err != nil {
		t.Fatalf("cluster: %v", err)
	}
	step("cluster up, containerd is %s (pid %d)", testenv.NodeUnit, testenv.NodeServicePid())
	ctx, cancel := context.WithTimeout(context.Background(), patience(6*time.Minute))
	defer cancel()

	stock, err := os.ReadFile(testenv.NodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, archive := range []string{"installer.tar", "upgrade.tar"} {
		if err := testimage.Import(c.env.CtrArgs(testenv.CRINamespace), filepath.Join(install.images, archive)); err != nil {
			t.Fatalf("import %s: %v", archive, err)
		}
	}
	upgradeVersion, err := os.ReadFile(filepath.Join(install.images, "upgrade.version"))
	if err != nil {
		t.Fatal(err)
	}

	needImage(t, "runc")
	runcPod := createPod(t, ctx, restartPod("install", "runc"))
	runcBefore := observe(t, ctx, waitPod(t, ctx, runcPod.Name, "Ready", ready))
	stockPid := testenv.NodeServicePid()
	step("runc pod %s Ready, sandbox %s", runcPod.Name, runcBefore.sandbox)

	// Install: the manifests as they are, but for where the pods reach the
	// API server (see withAPIServer).
	manifests := withAPIServer(t, filepath.Join(install.repo, "deploy"), c.server)
	kubectlOK(t, ctx, "apply", "-f", manifests)
	rollout(t, ctx, installerDS)
	step("kubectl apply -f deploy/: the installer's pod is Ready")
	if !nodeLabelled(t, ctx) {
		t.Fatalf("the installer's pod is Ready, but node %s has no label %s", nodeName, readyLabel)
	}
	for _, h := range []string{"pause", installer.DenseHandler} {
		if rt, ok := criHandlers(t, ctx)[h]; !ok || rt != installedShim {
			t.Errorf("CRI lists handler %s on %q (listed: %t), want %s", h, rt, ok, installedShim)
		}
	}
	installedPid := testenv.NodeServicePid()
	if installedPid == stockPid || installedPid == 0 {
		t.Errorf("containerd's main pid is %d after the install, %d before: the installer did not restart it through systemd", installedPid, stockPid)
	}
	runcBefore.unchanged(t, ctx, "install")
	version := shimVersion(t, installedShim)
	step("installed shim %s, containerd restarted (pid %d, was %d), runc pod unchanged", version, installedPid, stockPid)

	// Pods on both RuntimeClasses, on the installed shim. No image is
	// pulled: this node reaches no registry.
	var pausePods []string
	old := map[string]running{}
	for _, h := range []string{"pause", installer.DenseHandler} {
		pod := createPod(t, ctx, classPod("installed", h))
		pausePods = append(pausePods, pod.Name)
		old[h] = observe(t, ctx, waitPod(t, ctx, pod.Name, "Ready", ready))
		if v := podShimVersion(t, old[h].pid); v != version {
			t.Errorf("pod %s runs shim version %q, want the installed %q", pod.Name, v, version)
		}
	}

	step("pods on pause and pause-dense Ready")

	// Upgrade: the drop-in and the config are the same, so containerd
	// keeps running, and every pod keeps its shim.
	kubectlOK(t, ctx, "-n", installNS, "set", "image", "daemonset/"+installerDS, "install="+upgradeImage)
	rollout(t, ctx, installerDS)
	step("upgrade rolled out")
	if v := shimVersion(t, installedShim); v != strings.TrimSpace(string(upgradeVersion)) {
		t.Fatalf("after the upgrade rolled out %s is version %q, want %q", installedShim, v, upgradeVersion)
	}
	if pid := testenv.NodeServicePid(); pid != installedPid {
		t.Errorf("the upgrade restarted containerd (main pid %d, was %d): nothing but the shim changed", pid, installedPid)
	}
	runcBefore.kept(t, ctx, "upgrade")
	for h, r := range old {
		r.kept(t, ctx, "upgrade")
		if v := podShimVersion(t, r.pid); v != version {
			t.Errorf("handler %s's pod %s runs shim version %q after the upgrade, want the old %q", h, r.name, v, version)
		}
	}
	// New pods start on the new binary: a pause pod's shim is its own, a
	// pause-dense pod's pool is the new binary's (pool.BinaryIdentity).
	for _, h := range []string{"pause", installer.DenseHandler} {
		pod := createPod(t, ctx, classPod("upgraded", h))
		pausePods = append(pausePods, pod.Name)
		r := observe(t, ctx, waitPod(t, ctx, pod.Name, "Ready", ready))
		if v := podShimVersion(t, r.pid); v != strings.TrimSpace(string(upgradeVersion)) {
			t.Errorf("pod %s, made after the upgrade, runs shim version %q, want %q", pod.Name, v, upgradeVersion)
		}
	}
	step("old pods unchanged on the old shim; a new pod on the new one")

	// Uninstall, in docs/cluster.md's order: refused while pause pods run.
	kubectlOK(t, ctx, "delete", "-f", filepath.Join(manifests, "runtimeclass.yaml"), "-f", filepath.Join(manifests, "runtimeclass-dense.yaml"))
	kubectlOK(t, ctx, "-n", installNS, "delete", "daemonset", installerDS)
	uninstall := withAPIServer(t, filepath.Join(install.repo, "deploy", "uninstall"), c.server)
	kubectlOK(t, ctx, "apply", "-f", uninstall)
	refusal := uninstallRefusal(t, ctx)
	step("uninstall refused: %s", strings.TrimSpace(refusal))
	for _, name := range pausePods {
		if !strings.Contains(refusal, name) {
			t.Errorf("the uninstaller's refusal does not name pod %s: %s", name, refusal)
		}
	}
	if _, err := os.Stat(installedShim); err != nil || !nodeLabelled(t, ctx) {
		t.Fatalf("a refused uninstall changed the node: shim %v, label %t", err, nodeLabelled(t, ctx))
	}
	deletePods(t, ctx, pausePods...)
	// Until their sandboxes are removed the uninstaller counts them. The
	// refused init container is retried with a growing back-off; a new pod
	// runs it at once.
	removeSandboxes(t, ctx, "pause", installer.DenseHandler)
	kubectlOK(t, ctx, "-n", installNS, "delete", "pod", "-l", "app.kubernetes.io/name="+uninstallerDS, "--wait=false")
	rollout(t, ctx, uninstallerDS)
	step("uninstall rolled out")
	uninstalled(t, ctx, stock)
	runcBefore.unchanged(t, ctx, "uninstall")
	// The namespace goes on terminating meanwhile: the chart below uses
	// one of its own.
	kubectlOK(t, ctx, "delete", "-f", uninstall, "--wait=false")
	kubectlOK(t, ctx, "delete", "-f", manifests, "--ignore-not-found", "--wait=false")
	step("uninstalled; the objects deleted")

	// The same with the chart: install, a pod, the chart's cleanup mode,
	// helm uninstall.
	ctx, cancel = context.WithTimeout(context.Background(), patience(4*time.Minute))
	defer cancel()
	chart := filepath.Join(install.repo, "deploy", "helm", "containerd-shim-pause-v2")
	host, port := apiHostPort(t, c.server)
	env := fmt.Sprintf(`[{"name":"KUBERNETES_SERVICE_HOST","value":%q},{"name":"KUBERNETES_SERVICE_PORT","value":%q}]`, host, port)
	helmNS := installNS + "-helm"
	helmOK(t, ctx, "install", "pause", chart, "--set-json", "extraEnv="+env, "--set", "namespace.name="+helmNS)
	// Not helm's --wait: it counts a DaemonSet ready with maxUnavailable
	// pods not Ready, so on one node it waits for none.
	rolloutIn(t, ctx, helmNS, installerDS)
	step("helm install: the installer's pod is Ready")
	if !nodeLabelled(t, ctx) {
		t.Fatalf("helm install: node %s has no label %s", nodeName, readyLabel)
	}
	pod := createPod(t, ctx, classPod("helm", installer.DenseHandler))
	waitPod(t, ctx, pod.Name, "Ready", ready)
	deletePods(t, ctx, pod.Name)
	removeSandboxes(t, ctx, "pause", installer.DenseHandler)
	step("helm: a pod on pause-dense ran")
	helmOK(t, ctx, "upgrade", "pause", chart, "--reuse-values", "--set", "cleanup=true", "--wait")
	step("helm upgrade --set cleanup=true --wait returned")
	uninstalled(t, ctx, stock)
	helmOK(t, ctx, "uninstall", "pause", "--wait")
	runcBefore.unchanged(t, ctx, "helm uninstall")
	step("helm uninstall returned")
}

// uninstalled checks the node is as before the install: no label, no
// handlers, no files, and containerd's config the stock one, byte for byte.
func uninstalled(t *testing.T, ctx context.Context, stock []byte) {
	t.Helper()
	if nodeLabelled(t, ctx) {
		t.Errorf("node %s still has label %s after the uninstall", nodeName, readyLabel)
	}
	for _, h := range []string{"pause", installer.DenseHandler} {
		if _, ok := criHandlers(t, ctx)[h]; ok {
			t.Errorf("CRI still lists handler %s after the uninstall", h)
		}
	}
	for _, f := range []string{installedShim, dropIn, testenv.NodeConfig + installer.BackupSuffix} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s is still there after the uninstall", f)
		}
	}
	if now, err := os.ReadFile(testenv.NodeConfig); err != nil || string(now) != string(stock) {
		t.Errorf("containerd's config after the uninstall (%v):\n%s\nwant the stock one, byte for byte:\n%s", err, now, stock)
	}
}
