//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// TestLivenessProbeRestart: a failing exec liveness probe restarts the
// container once (it is healthy the second time), in the same sandbox.
func TestLivenessProbeRestart(t *testing.T) {
	eachHandler(t, func(t *testing.T, ctx context.Context, handler string) {
		app := sh("app", `trap "exit 0" TERM
if [ -e /shared/once ]; then echo ok > /tmp/healthy; else echo > /shared/once; fi
sleep 3600 & wait`)
		app.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
		app.LivenessProbe = &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}},
			PeriodSeconds:    1,
			FailureThreshold: 1,
		}
		pod := newPod("liveness", handler, app)
		pod.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		pod = createPod(t, ctx, pod)
		pod = waitPod(t, ctx, pod.Name, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		sandbox, pid := sandboxOf(t, ctx, string(pod.UID))

		pod = waitPod(t, ctx, pod.Name, "restarted and Ready", func(p *corev1.Pod) bool {
			return ready(p) && p.Status.ContainerStatuses[0].RestartCount >= 1
		})
		time.Sleep(3 * time.Second) // the probe now passes: no second restart
		pod = waitPod(t, ctx, pod.Name, "Ready", ready)
		if n := pod.Status.ContainerStatuses[0].RestartCount; n != 1 {
			t.Errorf("restartCount %d, want 1", n)
		}
		if !strings.Contains(c.events(pod.Name), "failed liveness probe") {
			t.Errorf("no liveness probe failure among the pod's events: %s", c.events(pod.Name))
		}
		again, pidAgain := sandboxOf(t, ctx, string(pod.UID))
		if again != sandbox || pidAgain != pid {
			t.Errorf("sandbox changed across the restart: %s pid %d, then %s pid %d", sandbox, pid, again, pidAgain)
		}
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "pause" {
			t.Errorf("sandbox pid %d is not a live pause process: %q %v", pid, comm, err)
		}
	})
}

// TestGracefulDeletion: deleting a pod runs its preStop hook, then sends
// SIGTERM, and SIGKILL only when terminationGracePeriodSeconds is over;
// the pod's sandbox is stopped by the time the API object is gone.
func TestGracefulDeletion(t *testing.T) {
	eachHandler(t, func(t *testing.T, ctx context.Context, handler string) {
		// The container writes what happens to it to a host directory,
		// which outlives the pod.
		events := filepath.Join(c.dir, "graceful-"+handler)
		app := sh("app", `trap 'echo term >> /ev/events; termed=1' TERM
echo started >> /ev/events
while true; do sleep 1; [ -n "$termed" ] && echo tick >> /ev/events; done`)
		app.VolumeMounts = []corev1.VolumeMount{{Name: "ev", MountPath: "/ev"}}
		app.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
			Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo prestop >> /ev/events; sleep 1"}}}}
		const grace = 5
		pod := newPod("graceful", handler, app)
		pod.Spec.TerminationGracePeriodSeconds = ptr(int64(grace))
		pod.Spec.Volumes = []corev1.Volume{{Name: "ev", VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: events, Type: ptr(corev1.HostPathDirectoryOrCreate)}}}}
		pod = createPod(t, ctx, pod)
		pod = waitPod(t, ctx, pod.Name, "Ready", ready)
		sandbox, pid := sandboxOf(t, ctx, string(pod.UID))

		start := time.Now()
		if err := deletePod(ctx, pod.Name, nil); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		data, err := os.ReadFile(filepath.Join(events, "events"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Fields(string(data))
		ticks := strings.Count(string(data), "tick")
		if len(lines) < 3 || lines[0] != "started" || lines[1] != "prestop" || lines[2] != "term" || ticks < 2 {
			t.Errorf("container saw %q, want started, prestop, term, then ticks until SIGKILL", lines)
		}
		// The kubelet counts the grace period from the deletion, the hook included.
		if took < (grace-1)*time.Second || took > grace*time.Second+patience(15*time.Second) {
			t.Errorf("pod gone %v after its deletion, want about its %d s grace period", took, grace)
		}
		if st := sandboxState(t, ctx, sandbox); st != cri.PodSandboxState_SANDBOX_NOTREADY {
			t.Errorf("sandbox %s is %v once the pod is gone", sandbox, st)
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("sandbox pid %d still there once the pod is gone: %v", pid, err)
		}
	})
}

// TestRestartPolicies: Never and OnFailure pods run to completion with
// their exit code; Always restarts a crashing container with back-off.
func TestRestartPolicies(t *testing.T) {
	eachHandler(t, func(t *testing.T, ctx context.Context, handler string) {
		type want struct {
			phase    corev1.PodPhase
			exit     int32
			restarts int32
		}
		cases := map[corev1.RestartPolicy]struct {
			script string
			want   want
		}{
			corev1.RestartPolicyNever: {`exit 3`, want{corev1.PodFailed, 3, 0}},
			// Fails the first time, succeeds the second.
			corev1.RestartPolicyOnFailure: {`[ -e /shared/once ] && exit 0; echo > /shared/once; exit 1`, want{corev1.PodSucceeded, 0, 1}},
		}
		// All three pods at once: back-off makes Always the slowest.
		always := createPod(t, ctx, newPod("policy-always", handler, sh("app", `exit 1`)))
		names := map[corev1.RestartPolicy]string{}
		for policy, tc := range cases {
			app := sh("app", tc.script)
			app.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
			pod := newPod("policy-"+strings.ToLower(string(policy)), handler, app)
			pod.Spec.RestartPolicy = policy
			pod.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			names[policy] = createPod(t, ctx, pod).Name
		}
		for policy, tc := range cases {
			pod := waitPod(t, ctx, names[policy], string(tc.want.phase), func(p *corev1.Pod) bool {
				return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
			})
			st := pod.Status.ContainerStatuses[0]
			if pod.Status.Phase != tc.want.phase || st.State.Terminated == nil || st.State.Terminated.ExitCode != tc.want.exit || st.RestartCount != tc.want.restarts {
				t.Errorf("restartPolicy %s: %s, want phase %s, exit code %d, %d restarts", policy, podSummary(pod), tc.want.phase, tc.want.exit, tc.want.restarts)
			}
		}
		waitPod(t, ctx, always.Name, "in CrashLoopBackOff after 2 restarts", func(p *corev1.Pod) bool {
			if len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			st := p.Status.ContainerStatuses[0]
			return st.RestartCount >= 2 && st.State.Waiting != nil && st.State.Waiting.Reason == "CrashLoopBackOff"
		})
	})
}

// TestStaticPod: a manifest in the kubelet's static pod directory runs (its
// mirror pod shows in the API), and goes when the manifest goes.
func TestStaticPod(t *testing.T) {
	eachHandler(t, func(t *testing.T, ctx context.Context, handler string) {
		name := "static-" + handler
		class := ""
		if handler == "pause" {
			class = "\n  runtimeClassName: pause"
		}
		manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: %s}
spec:%s
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: %s
    imagePullPolicy: Never
    command: ["sh", "-c", %q]
`, name, namespace, class, testenv.BusyboxImage, idle)
		path := filepath.Join(c.dir, "manifests", name+".yaml")
		if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		mirror := name + "-" + nodeName
		t.Cleanup(func() { os.Remove(path) })
		pod := waitPod(t, ctx, mirror, "Ready", ready)
		// The kubelet's pod (and CRI's labels) carry the static pod's own
		// UID, which the mirror pod holds as an annotation.
		uid := pod.Annotations[corev1.MirrorPodAnnotationKey]
		if uid == "" {
			t.Fatalf("pod %s is not a mirror pod", mirror)
		}
		sandbox, _ := sandboxOf(t, ctx, uid)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		for {
			_, err := c.client.CoreV1().Pods(namespace).Get(ctx, mirror, metav1.GetOptions{})
			if apierrors.IsNotFound(err) && sandboxState(t, ctx, sandbox) == cri.PodSandboxState_SANDBOX_NOTREADY {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("static pod %s still there after its manifest was removed: %v", mirror, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
}
