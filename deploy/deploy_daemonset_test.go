package deploy

import (
	"maps"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/installer"
)

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
