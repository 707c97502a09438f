//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNodeStatus: the node is Ready and lists the pause runtime handler.
func TestNodeStatus(t *testing.T) {
	ctx := requireCluster(t)
	node, err := c.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !nodeReady(node) {
		t.Errorf("node not Ready: %+v", node.Status.Conditions)
	}
	var names []string
	for _, h := range node.Status.RuntimeHandlers {
		names = append(names, h.Name)
	}
	if !strings.Contains(" "+strings.Join(names, " ")+" ", " pause ") {
		t.Errorf("node's runtime handlers %v lack pause", names)
	}
}

// TestUnknownHandler: a pod whose RuntimeClass names a handler containerd
// does not have fails with the kubelet's usual event; the node stays Ready.
func TestUnknownHandler(t *testing.T) {
	ctx := requireCluster(t)
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "missing"}, Handler: "missing"}
	if _, err := c.client.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.client.NodeV1().RuntimeClasses().Delete(context.Background(), rc.Name, metav1.DeleteOptions{})
	})
	pod := newPod("unknown", "runc", sh("app", idle))
	pod.Spec.RuntimeClassName = ptr(rc.Name)
	pod = createPod(t, ctx, pod)
	for !strings.Contains(c.events(pod.Name), "FailedCreatePodSandBox") {
		if ctx.Err() != nil {
			t.Fatalf("no FailedCreatePodSandBox event: %s", c.events(pod.Name))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if ev := c.events(pod.Name); !strings.Contains(ev, `no runtime for "missing" is configured`) {
		t.Errorf("events: %s", ev)
	}
	node, err := c.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil || !nodeReady(node) {
		t.Errorf("node not Ready after a bad pod: %v", err)
	}
}
