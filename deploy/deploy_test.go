// Package deploy holds what installs the runtime on nodes: the manifests,
// the Helm chart, the containerd drop-in. Its tests decode the manifests
// with the chart's renders strictly, as the Kubernetes API types, then check
// them against the node installer's contract.
package deploy

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/installer"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
)

// Names the installer's contract fixes (cmd/containerd-shim-pause-installer):
// its binary in the image, its default node label, and the objects' names.
const (
	installerBinary = "/containerd-shim-pause-installer"
	readyLabel      = "containerd-shim-pause-v2/ready=true"
	namespace       = "containerd-shim-pause-v2"
	installerName   = "containerd-shim-pause-v2-installer"
	uninstallerName = "containerd-shim-pause-v2-uninstaller"
)

// installerEnv is the settings every manifest gives the installer, its
// defaults: the ready probe and the uninstaller must see the same.
var installerEnv = map[string]string{
	"PAUSE_HOST_ROOT":           "/host",
	"PAUSE_CONFIG":              "/etc/containerd/config.toml",
	"PAUSE_DROP_IN_DIR":         "/etc/containerd/conf.d",
	"PAUSE_BIN_DIR":             "/usr/local/bin",
	"PAUSE_CONTAINERD_ADDRESS":  "/run/containerd/containerd.sock",
	"PAUSE_CONTAINERD_UNIT":     "containerd.service",
	"PAUSE_HANDLERS":            "pause,pause-dense",
	"PAUSE_DENSE_PODS_PER_SHIM": "0",
	"PAUSE_LABEL":               readyLabel,
	"PAUSE_RESTART_TIMEOUT":     "2m",
}

// denseOverheadFloor is the PSS per pod make bench measured on a shim
// shared by 10 pods (753-762 kB); more pods share it for less.
const denseOverheadFloor = "762Ki"

// TestApplyOrder: `kubectl apply -f deploy/` applies the namespace, the
// account and its RBAC, the installer and the RuntimeClasses, in an order
// that works (the namespace before what lives in it), and nothing of the
// uninstaller, which lives in deploy/uninstall/.
func TestApplyOrder(t *testing.T) {
	var got []string
	for _, o := range decodeDir(t, ".") {
		got = append(got, key(o.obj))
	}
	want := []string{
		"Namespace /" + namespace,
		"ServiceAccount " + namespace + "/" + installerName,
		"ClusterRole /" + installerName,
		"ClusterRoleBinding /" + installerName,
		"DaemonSet " + namespace + "/" + installerName,
		"RuntimeClass /pause-dense",
		"RuntimeClass /pause",
	}
	if !slices.Equal(got, want) {
		t.Errorf("kubectl apply -f deploy/ applies\n%v\nwant\n%v", got, want)
	}
	var un []string
	for _, o := range decodeDir(t, "uninstall") {
		un = append(un, key(o.obj))
	}
	if want := []string{"DaemonSet " + namespace + "/" + uninstallerName}; !slices.Equal(un, want) {
		t.Errorf("deploy/uninstall/ applies %v, want %v", un, want)
	}
}

// TestNamespaceAdmitsPrivilegedPods: the installer's pods are privileged
// with the host's root mounted; a cluster whose default Pod Security level
// is baseline or restricted would reject them in a namespace that does not
// say privileged.
func TestNamespaceAdmitsPrivilegedPods(t *testing.T) {
	ns := find[*corev1.Namespace](t, decodeDir(t, "."), namespace)
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "privileged" {
		t.Errorf("namespace %s: pod-security.kubernetes.io/enforce %q, want privileged", namespace, got)
	}
}

// TestRuntimeClass: each RuntimeClass names its handler in the drop-in,
// keeps the overhead make bench measured per pod (at least that, exactly
// the figures chosen), and schedules only on nodes with the ready label.
func TestRuntimeClass(t *testing.T) {
	objs := decodeDir(t, ".")
	for _, c := range []struct {
		name, measured string
		min            resource.Quantity
		memory, cpu    string
	}{
		{"pause", "5.3 MB per pod", resource.MustParse("5Mi"), "6Mi", "10m"},
		{"pause-dense", "762 kB per pod with 10 pods on a shim", resource.MustParse(denseOverheadFloor), "1Mi", "10m"},
	} {
		rc := find[*nodev1.RuntimeClass](t, objs, c.name)
		if rc.Handler != c.name {
			t.Errorf("runtime class %s: handler %q", rc.Name, rc.Handler)
		}
		if _, ok := dropInRuntimes(t)[rc.Handler]; !ok {
			t.Errorf("runtime class %s: handler %q is not in the drop-in", rc.Name, rc.Handler)
		}
		if rc.Overhead == nil {
			t.Errorf("runtime class %s: no overhead", rc.Name)
			continue
		}
		mem, cpu := rc.Overhead.PodFixed[corev1.ResourceMemory], rc.Overhead.PodFixed[corev1.ResourceCPU]
		if mem.Cmp(c.min) < 0 {
			t.Errorf("runtime class %s: overhead %v: want at least %s (%s)", rc.Name, rc.Overhead, c.min.String(), c.measured)
		}
		if len(rc.Overhead.PodFixed) != 2 || !mem.Equal(resource.MustParse(c.memory)) || !cpu.Equal(resource.MustParse(c.cpu)) {
			t.Errorf("runtime class %s: overhead %v, want memory %s cpu %s", rc.Name, rc.Overhead.PodFixed, c.memory, c.cpu)
		}
		labelKey, labelValue, _ := strings.Cut(readyLabel, "=")
		if rc.Scheduling == nil || !maps.Equal(rc.Scheduling.NodeSelector, map[string]string{labelKey: labelValue}) ||
			len(rc.Scheduling.Tolerations) != 0 {
			t.Errorf("runtime class %s: scheduling %+v, want the node selector %s", rc.Name, rc.Scheduling, readyLabel)
		}
	}
}

// TestInstallerRBAC: the installer's account may get and patch nodes and
// create and patch Events, nothing more, bound cluster-wide to that one
// account.
func TestInstallerRBAC(t *testing.T) {
	objs := decodeDir(t, ".")
	sa := find[*corev1.ServiceAccount](t, objs, installerName)
	if sa.Namespace != namespace {
		t.Errorf("service account in %q", sa.Namespace)
	}
	role := find[*rbacv1.ClusterRole](t, objs, installerName)
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}
	if !equality.Semantic.DeepEqual(role.Rules, want) || role.AggregationRule != nil {
		t.Errorf("cluster role rules %+v, want %+v", role.Rules, want)
	}
	binding := find[*rbacv1.ClusterRoleBinding](t, objs, installerName)
	wantRef := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: installerName}
	wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: installerName, Namespace: namespace}}
	if binding.RoleRef != wantRef || !equality.Semantic.DeepEqual(binding.Subjects, wantSubjects) {
		t.Errorf("cluster role binding %+v %+v", binding.RoleRef, binding.Subjects)
	}
}

// TestInstallerDaemonSet: one privileged pod per node, every node, running
// the installer with the host's root at /host, its node's name and the
// settings, Ready only when the node is (the installer's ready command),
// and rolled out one node at a time.
func TestInstallerDaemonSet(t *testing.T) {
	ds := find[*appsv1.DaemonSet](t, decodeDir(t, "."), installerName)
	spec := checkNodePod(t, ds)
	if len(spec.InitContainers) != 0 || len(spec.Containers) != 1 {
		t.Fatalf("containers %d, init containers %d: want one container", len(spec.Containers), len(spec.InitContainers))
	}
	c := spec.Containers[0]
	checkInstallerContainer(t, c, installerEnv)
	checkImage(t, c)
	if want := []string{installerBinary, "install", "--wait"}; !slices.Equal(c.Command, want) || len(c.Args) != 0 {
		t.Errorf("command %q args %q, want %q", c.Command, c.Args, want)
	}
	p := c.ReadinessProbe
	if p == nil || p.Exec == nil || !slices.Equal(p.Exec.Command, []string{installerBinary, "ready"}) {
		t.Errorf("readiness probe %+v, want exec %s ready", p, installerBinary)
	} else if p.TimeoutSeconds < 5 {
		t.Errorf("readiness probe timeout %d s: the probe asks CRI and the API server", p.TimeoutSeconds)
	}
	if c.LivenessProbe != nil || c.Lifecycle != nil {
		t.Error("a liveness probe or a lifecycle hook: the installer must not be restarted or run anything on stop")
	}
	checkGracePeriod(t, ds)
	u := ds.Spec.UpdateStrategy
	if u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil || u.RollingUpdate.MaxUnavailable == nil ||
		u.RollingUpdate.MaxUnavailable.String() != "1" || (u.RollingUpdate.MaxSurge != nil && u.RollingUpdate.MaxSurge.IntValue() != 0) {
		t.Errorf("update strategy %+v, want RollingUpdate with maxUnavailable 1", u)
	}
}

// TestUninstallerDaemonSet: the uninstaller runs as the installer's account
// on every node with the same settings, does the work in an init container
// (retried while it refuses) and then holds the pod Ready.
func TestUninstallerDaemonSet(t *testing.T) {
	ds := find[*appsv1.DaemonSet](t, decodeDir(t, "uninstall"), uninstallerName)
	spec := checkNodePod(t, ds)
	if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
		t.Fatalf("containers %d, init containers %d: want one of each", len(spec.Containers), len(spec.InitContainers))
	}
	u := ds.Spec.UpdateStrategy
	if u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil || u.RollingUpdate.MaxUnavailable == nil ||
		u.RollingUpdate.MaxUnavailable.String() != "0" {
		t.Errorf("update strategy %+v, want RollingUpdate with maxUnavailable 0 (helm --wait then waits for every node)", u)
	}
	env := maps.Clone(installerEnv)
	env["PAUSE_FORCE"] = "false"
	for _, c := range []struct {
		container corev1.Container
		command   []string
	}{
		{spec.InitContainers[0], []string{installerBinary, "uninstall"}},
		{spec.Containers[0], []string{installerBinary, "uninstall", "--wait"}},
	} {
		checkInstallerContainer(t, c.container, env)
		checkImage(t, c.container)
		if !slices.Equal(c.container.Command, c.command) || len(c.container.Args) != 0 {
			t.Errorf("%s: command %q, want %q", c.container.Name, c.container.Command, c.command)
		}
	}
}

// checkGracePeriod: a pod stopped (a rollout, a delete) while its installer
// restarts containerd gives it the time to finish the restart it is in and
// to roll back, so the kubelet's SIGKILL cannot stop a rollback midway.
func checkGracePeriod(t *testing.T, ds *appsv1.DaemonSet) {
	t.Helper()
	restart, err := time.ParseDuration(envOf(ds.Spec.Template.Spec.Containers[0])["PAUSE_RESTART_TIMEOUT"])
	if err != nil {
		t.Fatalf("restart timeout: %v", err)
	}
	need := restart + installer.RollbackTimeout(restart)
	g := ds.Spec.Template.Spec.TerminationGracePeriodSeconds
	if g == nil || time.Duration(*g)*time.Second <= need {
		t.Errorf("termination grace period %v s, want more than %v (the restart timeout %v and a rollback)", ptrValue(g), need, restart)
	}
}

func ptrValue[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}

// checkNodePod checks what the installer and the uninstaller share: the
// namespace, a selector matching the pods, the account, every Linux node
// (tolerating every taint), before other pods, the host's root.
func checkNodePod(t *testing.T, ds *appsv1.DaemonSet) corev1.PodSpec {
	t.Helper()
	if ds.Namespace != namespace || ds.Spec.Selector == nil || len(ds.Spec.Selector.MatchExpressions) != 0 ||
		ds.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != ds.Name ||
		!maps.Equal(ds.Spec.Selector.MatchLabels, map[string]string{"app.kubernetes.io/name": ds.Name}) ||
		ds.Spec.Template.Labels["app.kubernetes.io/name"] != ds.Name {
		t.Fatalf("daemon set %s/%s: selector %+v does not match its pods %v", ds.Namespace, ds.Name, ds.Spec.Selector, ds.Spec.Template.Labels)
	}
	spec := ds.Spec.Template.Spec
	if spec.ServiceAccountName != installerName || spec.PriorityClassName != "system-node-critical" || spec.HostPID {
		t.Errorf("account %q, priority class %q, host pid %v", spec.ServiceAccountName, spec.PriorityClassName, spec.HostPID)
	}
	if !maps.Equal(spec.NodeSelector, map[string]string{"kubernetes.io/os": "linux"}) {
		t.Errorf("node selector %v", spec.NodeSelector)
	}
	if len(spec.Tolerations) != 1 || spec.Tolerations[0] != (corev1.Toleration{Operator: corev1.TolerationOpExists}) {
		t.Errorf("tolerations %+v, want one tolerating every taint", spec.Tolerations)
	}
	if len(spec.Volumes) != 1 || spec.Volumes[0].HostPath == nil || spec.Volumes[0].HostPath.Path != "/" {
		t.Errorf("volumes %+v, want the host's root", spec.Volumes)
	}
	return spec
}

// checkInstallerContainer checks one container running the installer:
// privileged, the host's root at /host, its node's name from the
// downward API, exactly the settings env, small requests.
func checkInstallerContainer(t *testing.T, c corev1.Container, env map[string]string) {
	t.Helper()
	if c.Image == "" {
		t.Errorf("%s: no image", c.Name)
	}
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Errorf("%s: not privileged", c.Name)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != env["PAUSE_HOST_ROOT"] || c.VolumeMounts[0].ReadOnly {
		t.Errorf("%s: mounts %+v, want the host's root at %s", c.Name, c.VolumeMounts, env["PAUSE_HOST_ROOT"])
	}
	got := map[string]string{}
	nodeName := false
	for _, e := range c.Env {
		if _, dup := got[e.Name]; dup {
			t.Errorf("%s: env %s twice", c.Name, e.Name)
		}
		got[e.Name] = e.Value
		if e.Name == "NODE_NAME" {
			nodeName = e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" && e.Value == ""
			delete(got, e.Name)
		} else if e.ValueFrom != nil {
			t.Errorf("%s: env %s from %+v", c.Name, e.Name, e.ValueFrom)
		}
	}
	if !nodeName {
		t.Errorf("%s: no NODE_NAME from spec.nodeName", c.Name)
	}
	if !maps.Equal(got, env) {
		t.Errorf("%s: env %v\nwant %v", c.Name, got, env)
	}
	cpu, mem := c.Resources.Requests[corev1.ResourceCPU], c.Resources.Requests[corev1.ResourceMemory]
	if cpu.IsZero() || mem.IsZero() || cpu.Cmp(resource.MustParse("100m")) > 0 || mem.Cmp(resource.MustParse("64Mi")) > 0 {
		t.Errorf("%s: requests %v, want small and non-zero", c.Name, c.Resources.Requests)
	}
	if len(c.Resources.Limits) != 0 {
		t.Errorf("%s: limits %v: a limit hit during a containerd restart would leave the node half done", c.Name, c.Resources.Limits)
	}
}

// checkImage: the manifests run the image `make image` names by default,
// taken from the node's store when there (a locally loaded image works).
func checkImage(t *testing.T, c corev1.Container) {
	t.Helper()
	if c.Image != installerName+":latest" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("%s: image %q pull %q", c.Name, c.Image, c.ImagePullPolicy)
	}
}

// TestSettingsAgree: the label the installer sets is the one the
// RuntimeClasses select, the handlers it declares are the RuntimeClasses'
// and the drop-in's.
func TestSettingsAgree(t *testing.T) {
	objs := decodeDir(t, ".")
	var classes []string
	labelKey, labelValue, _ := strings.Cut(readyLabel, "=")
	for _, o := range objs {
		if rc, ok := o.obj.(*nodev1.RuntimeClass); ok {
			classes = append(classes, rc.Handler)
			if rc.Scheduling == nil || rc.Scheduling.NodeSelector[labelKey] != labelValue {
				t.Errorf("runtime class %s does not select %s", rc.Name, readyLabel)
			}
		}
	}
	handlers := strings.Split(installerEnv["PAUSE_HANDLERS"], ",")
	slices.Sort(classes)
	slices.Sort(handlers)
	dropIn := slices.Sorted(maps.Keys(dropInRuntimes(t)))
	if !slices.Equal(classes, handlers) || !slices.Equal(handlers, dropIn) {
		t.Errorf("handlers: runtime classes %v, installer %v, drop-in %v", classes, handlers, dropIn)
	}
}

// dropInRuntime is a CRI runtime handler of the drop-in.
type dropInRuntime struct {
	RuntimeType           string         `toml:"runtime_type"`
	Sandboxer             string         `toml:"sandboxer"`
	DisablePauseImagePull bool           `toml:"disable_pause_image_pull"`
	Options               map[string]any `toml:"options"`
}

// dropInRuntimes decodes the drop-in strictly (version 3) and returns its
// CRI runtime handlers.
func dropInRuntimes(t *testing.T) map[string]dropInRuntime {
	t.Helper()
	data, err := os.ReadFile("containerd-pause.toml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Version int `toml:"version"`
		Plugins map[string]struct {
			Containerd struct {
				Runtimes map[string]dropInRuntime `toml:"runtimes"`
			} `toml:"containerd"`
		} `toml:"plugins"`
	}
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Version != 3 || len(cfg.Plugins) != 1 {
		t.Fatalf("drop-in: version %d, plugins %v", cfg.Version, cfg.Plugins)
	}
	return cfg.Plugins["io.containerd.cri.v1.runtime"].Containerd.Runtimes
}

// TestContainerdDropIn: the drop-in is valid TOML declaring the CRI
// handlers pause and pause-dense in shim mode without a pause image, the
// latter with pods sharing a shim (PodsPerShim = 0); its options table
// parses as the shim parses it.
func TestContainerdDropIn(t *testing.T) {
	runtimes := dropInRuntimes(t)
	if len(runtimes) != 2 {
		t.Errorf("drop-in handlers %v, want pause and pause-dense", runtimes)
	}
	for _, name := range []string{"pause", "pause-dense"} {
		r, ok := runtimes[name]
		if !ok || r.RuntimeType != "io.containerd.pause.v2" || r.Sandboxer != "shim" || !r.DisablePauseImagePull {
			t.Errorf("drop-in: runtime %s %+v", name, r)
		}
	}
	if o := runtimes["pause"].Options; o != nil {
		t.Errorf("pause: options %v, want the defaults (none)", o)
	}
	table, err := toml.Marshal(runtimes["pause-dense"].Options)
	if err != nil {
		t.Fatal(err)
	}
	o, err := options.Parse(table)
	if err != nil {
		t.Fatalf("pause-dense options: %v", err)
	}
	want := options.Default()
	want.PodsPerShim = 0
	if o.BinaryName, o.Root = "", ""; o != want {
		t.Errorf("pause-dense options %+v, want the defaults with PodsPerShim 0", o)
	}
}

// TestDropInDocumentsDefaults: the drop-in's commented options table names
// every runtime option with its default, as the shim parses it.
func TestDropInDocumentsDefaults(t *testing.T) {
	data, err := os.ReadFile("containerd-pause.toml")
	if err != nil {
		t.Fatal(err)
	}
	_, example, found := strings.Cut(string(data), ".pause.options]\n")
	if !found {
		t.Fatal("no commented options table in the drop-in")
	}
	var table strings.Builder
	for _, line := range strings.Split(example, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "#") {
			break // the end of the commented table
		}
		line = strings.TrimSpace(strings.TrimPrefix(line, "#"))
		if value, _, _ := strings.Cut(line, " #"); value != "" {
			table.WriteString(value + "\n")
		}
	}
	o, err := options.Parse([]byte(table.String()))
	if err != nil {
		t.Fatalf("the documented options do not parse: %v\n%s", err, table.String())
	}
	if o.BinaryName != options.DefaultRuncBinary || o.Root != options.DefaultRuncRoot {
		t.Errorf("documented runc defaults %q %q, want %q %q", o.BinaryName, o.Root, options.DefaultRuncBinary, options.DefaultRuncRoot)
	}
	o.BinaryName, o.Root = "", ""
	if o != options.Default() {
		t.Errorf("documented options %+v, want the defaults %+v", o, options.Default())
	}
	for _, key := range options.Keys() {
		if !strings.Contains(table.String(), key+" = ") {
			t.Errorf("option %s is not documented in the drop-in", key)
		}
	}
}
