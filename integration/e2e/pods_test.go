//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// handlers: every scenario runs on RuntimeClass pause (this shim) and on
// the node's default, runc with a pause image.
var handlers = []string{"pause", "runc"}

// eachHandler runs scenario once per handler, both at once.
func eachHandler(t *testing.T, scenario func(t *testing.T, ctx context.Context, handler string)) {
	for _, h := range handlers {
		t.Run(h, func(t *testing.T) {
			t.Parallel()
			ctx := requireCluster(t)
			needImage(t, h)
			scenario(t, ctx, h)
		})
	}
}

// needImage provides what a pod on handler needs beyond busybox: handler
// runc's pause image.
func needImage(t *testing.T, handler string) {
	t.Helper()
	if handler == "runc" {
		ensurePauseImage(t)
	}
}

func ptr[T any](v T) *T { return &v }

// sh is a busybox container running script. PID 1 of a container ignores
// SIGTERM unless it handles it: scripts trap it to exit at once.
func sh(name, script string) corev1.Container {
	return corev1.Container{Name: name, Image: testenv.BusyboxImage, ImagePullPolicy: corev1.PullNever,
		Command: []string{"sh", "-c", script}}
}

const idle = `trap "exit 0" TERM; sleep 3600 & wait`

// newPod is a pod bound to the node (there is no scheduler), on handler.
func newPod(name, handler string, containers ...corev1.Container) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-" + handler},
		Spec: corev1.PodSpec{
			NodeName:                      nodeName,
			Containers:                    containers,
			AutomountServiceAccountToken:  ptr(false), // no controller manager publishes the root CA
			TerminationGracePeriodSeconds: ptr(int64(2)),
		},
	}
	if handler == "pause" {
		pod.Spec.RuntimeClassName = ptr("pause")
	}
	return pod
}

// createPod creates pod and deletes it (waiting until it is gone) when the
// test ends.
func createPod(t *testing.T, ctx context.Context, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	created, err := c.client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), patience(time.Minute))
		defer cancel()
		if err := deletePod(ctx, created.Name, nil); err != nil {
			t.Errorf("delete pod %s: %v", created.Name, err)
		}
	})
	return created
}

// deletePod deletes a pod gracefully and waits until the kubelet has
// confirmed its end (the API object is gone).
func deletePod(ctx context.Context, name string, grace *int64) error {
	pods := c.client.CoreV1().Pods(namespace)
	if pod, err := pods.Get(ctx, name, metav1.GetOptions{}); err == nil {
		recordPod(pod)
	}
	err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: grace})
	for ; err == nil; time.Sleep(200 * time.Millisecond) {
		_, err = pods.Get(ctx, name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// recordPod notes the pod's container ids for the leak check.
func recordPod(pod *corev1.Pod) {
	for _, st := range pod.Status.ContainerStatuses {
		ids := []string{st.ContainerID}
		if last := st.LastTerminationState.Terminated; last != nil {
			ids = append(ids, last.ContainerID)
		}
		for _, id := range ids {
			if _, id, ok := strings.Cut(id, "://"); ok {
				record(id)
			}
		}
	}
}

// waitPod polls a pod until cond holds.
func waitPod(t *testing.T, ctx context.Context, name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	var err error
	for {
		pod, err = c.client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			recordPod(pod)
			if cond(pod) {
				return pod
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("pod %s not %s: %v; status: %s; events: %s", name, what, err, podSummary(pod), c.events(name))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func ready(pod *corev1.Pod) bool {
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return pod.Status.Phase == corev1.PodRunning && cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podSummary(pod *corev1.Pod) string {
	if pod == nil {
		return "none"
	}
	s := string(pod.Status.Phase)
	for _, st := range pod.Status.ContainerStatuses {
		s += fmt.Sprintf(" [%s ready=%t restarts=%d %+v]", st.Name, st.Ready, st.RestartCount, st.State)
	}
	return s
}

// events are the pod's events, for a failure message.
func (c *cluster) events(pod string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := c.client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, e := range evs.Items {
		out = append(out, fmt.Sprintf("%s %s: %s", e.Type, e.Reason, e.Message))
	}
	return strings.Join(out, "; ")
}
