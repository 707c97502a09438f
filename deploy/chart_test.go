package deploy

import (
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/diff"
)

const chart = "helm/containerd-shim-pause-v2"

// helmBinary is $HELM, else the one `make deps-helm` builds, else helm on
// PATH; the test skips only when there is none (make unit builds it).
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	deps := os.Getenv("DEPS_DIR")
	if deps == "" {
		deps = filepath.Join("..", "_deps")
	}
	if h := filepath.Join(deps, "bin", "helm"); fileExists(h) {
		return h
	}
	h, err := exec.LookPath("helm")
	if err != nil {
		t.Skip("no helm: set HELM, or run make deps-helm")
	}
	return h
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// render runs helm template on the chart with these arguments and decodes
// every object it renders strictly.
func render(t *testing.T, args ...string) []object {
	t.Helper()
	out, err := helmRun(t, append([]string{"template", "pause", chart}, args...)...)
	if err != nil {
		t.Fatalf("helm template %q: %v\n%s", args, err, out)
	}
	return decodeDocuments(t, "helm template", []byte(out))
}

func helmRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	// A private home: no user's repositories or plugins take part.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = errors.Join(err, errors.New(stderr.String()))
	}
	return stdout.String(), err
}

// sameObjects fails unless got and want hold the same objects (by kind,
// namespace and name) with semantically equal contents.
func sameObjects(t *testing.T, got, want []object) {
	t.Helper()
	index := func(objs []object) map[string]object {
		m := map[string]object{}
		for _, o := range objs {
			k := key(o.obj)
			if _, dup := m[k]; dup {
				t.Errorf("%s twice", k)
			}
			m[k] = o
		}
		return m
	}
	g, w := index(got), index(want)
	for k, wo := range w {
		gobj, ok := g[k]
		if !ok {
			t.Errorf("%s (%s) is not rendered", k, wo.source)
			continue
		}
		if !equality.Semantic.DeepEqual(gobj.obj, wo.obj) {
			t.Errorf("%s differs from %s (- manifest, + rendered):\n%s", k, wo.source, diff.Diff(wo.obj, gobj.obj))
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("%s is rendered but in no manifest", k)
		}
	}
}

// TestChartLint: helm lint --strict passes in both modes.
func TestChartLint(t *testing.T) {
	for _, args := range [][]string{nil, {"--set", "cleanup=true"}} {
		if out, err := helmRun(t, append([]string{"lint", "--strict", chart}, args...)...); err != nil {
			t.Errorf("helm lint %q: %v\n%s", args, err, out)
		}
	}
}

// TestChartRendersDeploy: with its default values the chart renders what
// `kubectl apply -f deploy/` applies, object for object.
func TestChartRendersDeploy(t *testing.T) {
	sameObjects(t, render(t), decodeDir(t, "."))
}

// TestChartCleanupRendersUninstall: with cleanup=true the chart keeps the
// namespace, the account and its RBAC, drops the installer and the
// RuntimeClasses, and adds deploy/uninstall/'s uninstaller; force=true
// reaches it.
func TestChartCleanupRendersUninstall(t *testing.T) {
	var want []object
	for _, o := range decodeDir(t, ".") {
		switch o.obj.(type) {
		case *appsv1.DaemonSet, *nodev1.RuntimeClass:
		default:
			want = append(want, o)
		}
	}
	want = append(want, decodeDir(t, "uninstall")...)
	sameObjects(t, render(t, "--set", "cleanup=true"), want)

	ds := find[*appsv1.DaemonSet](t, render(t, "--set", "cleanup=true,force=true"), uninstallerName)
	for _, c := range append(ds.Spec.Template.Spec.InitContainers, ds.Spec.Template.Spec.Containers...) {
		if envOf(c)["PAUSE_FORCE"] != "true" {
			t.Errorf("%s: force=true gives PAUSE_FORCE %q", c.Name, envOf(c)["PAUSE_FORCE"])
		}
	}
}

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

// TestChartOverrides: a k3s-like node, one handler, another label, an
// existing namespace and another image: each value lands where the
// installer, the scheduler and the kubelet read it.
func TestChartOverrides(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(`
image: {repository: registry.example/pause-installer, tag: v2, pullPolicy: Always}
namespace: {create: false, name: kube-system}
handlers:
  - name: pause
    overhead: {memory: 8Mi, cpu: 20m}
densePodsPerShim: 16
containerd:
  config: /var/lib/rancher/k3s/agent/etc/containerd/config.toml
  dropInDir: /var/lib/rancher/k3s/agent/etc/containerd/conf.d
  address: /run/k3s/containerd/containerd.sock
  unit: k3s.service
  restartTimeout: 5m
binDir: /opt/pause/bin
label: example.com/pause=on
nodeSelector: {pool: pause}
tolerations: [{key: dedicated, operator: Equal, value: pause, effect: NoSchedule}]
extraEnv: [{name: KUBERNETES_SERVICE_HOST, value: 10.0.0.1}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	objs := render(t, "-f", values)
	for _, o := range objs {
		if _, ok := o.obj.(*corev1.Namespace); ok {
			t.Error("namespace.create=false renders a Namespace")
		}
	}
	ds := find[*appsv1.DaemonSet](t, objs, installerName)
	if ds.Namespace != "kube-system" {
		t.Errorf("daemon set in %q", ds.Namespace)
	}
	if sa := find[*corev1.ServiceAccount](t, objs, installerName); sa.Namespace != "kube-system" {
		t.Errorf("service account in %q", sa.Namespace)
	}
	if b := find[*rbacv1.ClusterRoleBinding](t, objs, installerName); len(b.Subjects) != 1 || b.Subjects[0].Namespace != "kube-system" {
		t.Errorf("binding subjects %+v", b.Subjects)
	}
	spec := ds.Spec.Template.Spec
	c := spec.Containers[0]
	want := map[string]string{
		"PAUSE_HOST_ROOT":           "/host",
		"PAUSE_CONFIG":              "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
		"PAUSE_DROP_IN_DIR":         "/var/lib/rancher/k3s/agent/etc/containerd/conf.d",
		"PAUSE_BIN_DIR":             "/opt/pause/bin",
		"PAUSE_CONTAINERD_ADDRESS":  "/run/k3s/containerd/containerd.sock",
		"PAUSE_CONTAINERD_UNIT":     "k3s.service",
		"PAUSE_HANDLERS":            "pause",
		"PAUSE_DENSE_PODS_PER_SHIM": "16",
		"PAUSE_LABEL":               "example.com/pause=on",
		"PAUSE_RESTART_TIMEOUT":     "5m",
		"KUBERNETES_SERVICE_HOST":   "10.0.0.1",
	}
	checkInstallerContainer(t, c, want)
	checkGracePeriod(t, ds)
	if c.Image != "registry.example/pause-installer:v2" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %q pull %q", c.Image, c.ImagePullPolicy)
	}
	// Helm merges maps with the defaults: the os selector stays.
	if !maps.Equal(spec.NodeSelector, map[string]string{"pool": "pause", "kubernetes.io/os": "linux"}) {
		t.Errorf("node selector %v", spec.NodeSelector)
	}
	wantTol := []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "pause", Effect: corev1.TaintEffectNoSchedule}}
	if !slices.Equal(spec.Tolerations, wantTol) {
		t.Errorf("tolerations %+v", spec.Tolerations)
	}
	var classes []string
	for _, o := range objs {
		if rc, ok := o.obj.(*nodev1.RuntimeClass); ok {
			classes = append(classes, rc.Name)
			mem := rc.Overhead.PodFixed[corev1.ResourceMemory]
			if rc.Handler != rc.Name || rc.Scheduling == nil || len(rc.Scheduling.NodeSelector) != 1 ||
				rc.Scheduling.NodeSelector["example.com/pause"] != "on" || !mem.Equal(resource.MustParse("8Mi")) {
				t.Errorf("runtime class %s: handler %q scheduling %+v overhead %v", rc.Name, rc.Handler, rc.Scheduling, rc.Overhead)
			}
		}
	}
	if !slices.Equal(classes, []string{"pause"}) {
		t.Errorf("runtime classes %v, want pause", classes)
	}
}

// TestChartRejectsBadValues: values the installer could not use fail the
// render with a message naming them, not a broken object.
func TestChartRejectsBadValues(t *testing.T) {
	for _, c := range []struct{ set, want string }{
		{"label=ready", `label "ready": want key=value`},
		{"label=a=b=c", `want key=value`},
		{"handlers=null", "handlers: at least one"},
		{"namespace.name=", "namespace.name is required"},
		{"containerd.restartTimeout=2x", `containerd.restartTimeout "2x": want`},
		{"containerd.restartTimeout=", `containerd.restartTimeout "": want`},
	} {
		out, err := helmRun(t, "template", "pause", chart, "--set", c.set)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %s: %v, want an error with %q\n%s", c.set, err, c.want, out)
		}
	}
}
