package installer

import (
	"bytes"
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestNodeMetadata: the merge patches set and remove the label and the
// restart-needed annotation and leave the node's other metadata alone.
func TestNodeMetadata(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        "n1",
		Labels:      map[string]string{"kubernetes.io/os": "linux"},
		Annotations: map[string]string{RestartNeededAnnotation: "true", "other": "x"},
	}})
	var out bytes.Buffer
	n := &Node{name: "n1", client: client, out: &out}
	if err := n.SetMetadata(ctx, map[string]*string{"containerd-shim-pause-v2/ready": ptr("true")}, map[string]*string{RestartNeededAnnotation: nil}); err != nil {
		t.Fatal(err)
	}
	node, _ := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if node.Labels["containerd-shim-pause-v2/ready"] != "true" || node.Labels["kubernetes.io/os"] != "linux" {
		t.Errorf("labels %v", node.Labels)
	}
	if _, ok := node.Annotations[RestartNeededAnnotation]; ok || node.Annotations["other"] != "x" {
		t.Errorf("annotations %v", node.Annotations)
	}
	if ok, err := n.HasLabel(ctx, "containerd-shim-pause-v2/ready", "true"); !ok || err != nil {
		t.Errorf("HasLabel: %v %v", ok, err)
	}
	if err := n.SetMetadata(ctx, map[string]*string{"containerd-shim-pause-v2/ready": nil}, nil); err != nil {
		t.Fatal(err)
	}
	if ok, _ := n.HasLabel(ctx, "containerd-shim-pause-v2/ready", "true"); ok {
		t.Error("the label was not removed")
	}

	n.Report(ctx, corev1.EventTypeWarning, ReasonRestartNeeded, "restart needed")
	events, _ := client.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{})
	if len(events.Items) != 1 || events.Items[0].InvolvedObject.Name != "n1" || events.Items[0].Reason != ReasonRestartNeeded {
		t.Errorf("events %+v", events.Items)
	}
	// kubectl describe node finds a node's events by involvedObject.uid,
	// which the kubelet sets to the node's name for its own.
	if len(events.Items) == 1 && events.Items[0].InvolvedObject.UID != "n1" {
		t.Errorf("event's involved object uid %q: kubectl describe node n1 would not show it", events.Items[0].InvolvedObject.UID)
	}
	if !strings.Contains(out.String(), ReasonRestartNeeded+": restart needed") {
		t.Errorf("report %q", out.String())
	}

	// Without a node name nothing is touched; the report still goes out.
	out.Reset()
	off := &Node{out: &out}
	if err := off.SetMetadata(ctx, map[string]*string{"a": ptr("b")}, nil); err != nil || off.Enabled() {
		t.Error(err)
	}
	off.Report(ctx, corev1.EventTypeNormal, ReasonInstalled, "done")
	if out.String() != ReasonInstalled+": done\n" {
		t.Errorf("report %q", out.String())
	}
}
