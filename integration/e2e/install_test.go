//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

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

// helmOK runs helm on the cluster as its admin, with its caches in the
// cluster's directory and the context's deadline as its own.
func helmOK(t *testing.T, ctx context.Context, args ...string) {
	t.Helper()
	deadline, _ := ctx.Deadline()
	args = append([]string{"--kubeconfig", c.kubeconfig}, args...)
	args = append(args, fmt.Sprintf("--timeout=%ds", int(time.Until(deadline).Seconds())))
	cmd := exec.CommandContext(ctx, "helm", args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(c.dir, "helm", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(c.dir, "helm", "config"), "HELM_DATA_HOME="+filepath.Join(c.dir, "helm", "data"))
	if out, err := cmd.CombinedOutput(); err != nil {
		pods, _ := c.kubectl(context.Background(), nil, "-n", installNS, "describe", "pods")
		logs, _ := c.kubectl(context.Background(), nil, "-n", installNS, "logs", "-l", "app.kubernetes.io/part-of=containerd-shim-pause-v2", "--all-containers", "--tail=30")
		t.Fatalf("helm %s: %v: %s\npods:\n%s\nlogs:\n%s", strings.Join(args, " "), err, out, pods, logs)
	}
}

// apiHostPort splits the API server's URL.
func apiHostPort(t *testing.T, server string) (string, string) {
	t.Helper()
	host, port, ok := strings.Cut(strings.TrimPrefix(server, "https://"), ":")
	if !ok {
		t.Fatalf("API server %q: no port", server)
	}
	return host, port
}

// withAPIServer copies the manifests of dir (its files, not its
// subdirectories) to a directory of the test's, where the installer's
// containers reach the API server at server: this cluster has no
// kube-proxy, so the kubernetes Service's address leads nowhere, as on
// clusters that replace kube-proxy, whose operators set the same two
// variables. Nothing else changes.
func withAPIServer(t *testing.T, dir, server string) string {
	t.Helper()
	host, port := apiHostPort(t, server)
	out := filepath.Join(c.dir, "manifests-"+filepath.Base(dir))
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	patched := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		for _, key := range []string{"env:\n", "env: &env\n"} {
			extra := fmt.Sprintf("            - name: KUBERNETES_SERVICE_HOST\n              value: %q\n            - name: KUBERNETES_SERVICE_PORT\n              value: %q\n", host, port)
			n := strings.Count(s, "          "+key)
			s = strings.ReplaceAll(s, "          "+key, "          "+key+extra)
			patched += n
		}
		if err := os.WriteFile(filepath.Join(out, filepath.Base(f)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if patched == 0 {
		t.Fatalf("no container env list in %s to add the API server's address to", dir)
	}
	return out
}

func kubectlOK(t *testing.T, ctx context.Context, args ...string) {
	t.Helper()
	if out, err := c.kubectl(ctx, nil, args...); err != nil {
		t.Fatalf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// rollout waits until every node runs the DaemonSet's current pod, Ready.
func rollout(t *testing.T, ctx context.Context, ds string) {
	t.Helper()
	rolloutIn(t, ctx, installNS, ds)
}

func rolloutIn(t *testing.T, ctx context.Context, ns, ds string) {
	t.Helper()
	deadline, _ := ctx.Deadline()
	timeout := fmt.Sprintf("--timeout=%ds", int(time.Until(deadline).Seconds()))
	if out, err := c.kubectl(ctx, nil, "-n", ns, "rollout", "status", "daemonset/"+ds, timeout); err != nil {
		pods, _ := c.kubectl(context.Background(), nil, "-n", ns, "describe", "pods")
		logs, _ := c.kubectl(context.Background(), nil, "-n", ns, "logs", "-l", "app.kubernetes.io/part-of=containerd-shim-pause-v2", "--all-containers", "--tail=30")
		t.Fatalf("daemonset %s did not roll out: %v: %s\npods:\n%s\nlogs:\n%s", ds, err, out, pods, logs)
	}
}

func nodeLabelled(t *testing.T, ctx context.Context) bool {
	t.Helper()
	node, err := c.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return node.Labels[readyLabel] == "true"
}

// criHandlers are the handlers CRI lists, each with its runtime type.
func criHandlers(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	rt := testCRI(t)
	st, err := rt.Status(ctx, &cri.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	handlers, err := installer.ParseStatus(st)
	if err != nil {
		t.Fatal(err)
	}
	return handlers
}

// classPod is an idle pod on RuntimeClass handler.
func classPod(name, handler string) *corev1.Pod {
	pod := newPod(name, handler, sh("app", idle))
	pod.Spec.RuntimeClassName = ptr(handler)
	return pod
}

// shimVersion is what `binary -v` says its version is.
func shimVersion(t *testing.T, binary string) string {
	t.Helper()
	out, err := exec.Command(binary, "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -v: %v: %s", binary, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Version:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s -v names no version: %s", binary, out)
	return ""
}

// podShimVersion is the version of the shim binary that runs the pause
// task pid, its parent: the binary the process started from, even once
// replaced on disk.
func podShimVersion(t *testing.T, pid int) string {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return shimVersion(t, "/proc/"+fields[1]+"/exe")
}

// uninstallRefusal waits for the uninstaller's init container to fail,
// and returns its output.
func uninstallRefusal(t *testing.T, ctx context.Context) string {
	t.Helper()
	for {
		pods, err := c.client.CoreV1().Pods(installNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + uninstallerDS})
		if err == nil && len(pods.Items) == 1 && len(pods.Items[0].Status.InitContainerStatuses) == 1 {
			pod := pods.Items[0]
			st := pod.Status.InitContainerStatuses[0]
			failed := st.State.Terminated != nil && st.State.Terminated.ExitCode != 0 ||
				st.LastTerminationState.Terminated != nil && st.LastTerminationState.Terminated.ExitCode != 0
			if st.State.Terminated != nil && st.State.Terminated.ExitCode == 0 {
				t.Fatalf("the uninstaller completed while pause pods ran: %s", podSummary(&pod))
			}
			if failed {
				out, err := c.kubectl(ctx, nil, "-n", installNS, "logs", pod.Name, "-c", "uninstall")
				if err != nil || !strings.Contains(out, "refused") {
					out, _ = c.kubectl(ctx, nil, "-n", installNS, "logs", pod.Name, "-c", "uninstall", "--previous")
				}
				return out
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("the uninstaller's init container did not fail while pause pods ran: %v", err)
		}
		time.Sleep(time.Second)
	}
}

// deletePods deletes pods at once, and waits until all are gone.
func deletePods(t *testing.T, ctx context.Context, names ...string) {
	t.Helper()
	errs := make(chan error, len(names))
	for _, name := range names {
		go func() {
			if err := deletePod(ctx, name, nil); err != nil {
				errs <- fmt.Errorf("delete pod %s: %w", name, err)
				return
			}
			errs <- nil
		}()
	}
	for range names {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// removeSandboxes stops and removes, through CRI, the sandboxes on
// handlers, all of deleted pods by now: the kubelet's garbage collection
// does the same within a minute, which the test does not wait for.
func removeSandboxes(t *testing.T, ctx context.Context, handlers ...string) {
	t.Helper()
	rt := testCRI(t)
	sbs, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range sbs.Items {
		if !slices.Contains(handlers, sb.RuntimeHandler) {
			continue
		}
		record(sb.Id)
		// The kubelet's collection may take one meanwhile.
		if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil && status.Code(err) != codes.NotFound {
			t.Fatalf("stop sandbox %s (pod %s): %v", sb.Id, sb.Metadata.GetName(), err)
		}
		if err := removeSandbox(ctx, rt, sb.Id); err != nil {
			t.Fatalf("remove sandbox %s (pod %s): %v", sb.Id, sb.Metadata.GetName(), err)
		}
	}
}

// removeSandbox removes sandbox id through CRI as the kubelet does: a
// removal that meets containerd's race with another one (the kubelet's,
// here) is tried again. containerd closes its connection to the pod's shim
// once the first removal's shutdown succeeded, but keeps it on record while
// it runs `shim delete`; a removal that comes meanwhile fails with "ttrpc:
// closed" (docs/failure-model.md). The next finds the sandbox gone.
func removeSandbox(ctx context.Context, rt cri.RuntimeServiceClient, id string) error {
	for try := 1; ; try++ {
		_, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: id})
		if err == nil || status.Code(err) == codes.NotFound {
			return nil
		}
		if try == 5 || !strings.Contains(err.Error(), "ttrpc: closed") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// installLeftovers names, as leaks, what the installer puts on the node and
// the test's uninstall did not take away, and removes it.
func installLeftovers() []string {
	var leaks []string
	for _, f := range []string{installedShim, dropIn} {
		if _, err := os.Stat(f); err == nil {
			leaks = append(leaks, "installer file "+f)
			os.Remove(f)
		}
	}
	_ = os.Remove(filepath.Dir(dropIn))
	return leaks
}

// installedShimProcesses names, as leaks, the installed shim's processes
// left once the cluster is stopped.
func installedShimProcesses() []string {
	var leaks []string
	// The installed shim's processes, of any version (a replaced binary's
	// reads "(deleted)").
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if exe, err := os.Readlink(p + "/exe"); err == nil && strings.HasPrefix(exe, installedShim) {
			leaks = append(leaks, fmt.Sprintf("installed shim process %s (%s)", filepath.Base(p), exe))
		}
	}
	return leaks
}
