// Package deploy holds what installs the runtime on nodes: the manifests,
// the Helm chart, the containerd drop-in. Its tests decode the manifests
// with the chart's renders strictly, as the Kubernetes API types, then check
// them against the node installer's contract.
package deploy

import (
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
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
