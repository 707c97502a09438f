package installer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// eventSource names the installer in the events it records.
const eventSource = "containerd-shim-pause-installer"

// Node reports to the API server on this node only: its label, the
// restart-needed annotation, and events. With no node name it touches
// nothing and only writes its reports to out.
type Node struct {
	name   string
	client kubernetes.Interface
	out    io.Writer
}

// NewNode connects to the API server (kubeconfig "" is the in-cluster
// config) unless name is "".
func NewNode(name, kubeconfig string, out io.Writer) (*Node, error) {
	n := &Node{name: name, out: out}
	if name == "" {
		return n, nil
	}
	// In a pod, the pod's own credentials; clientcmd would say so with a
	// warning in the installer's output.
	cfg, err := rest.InClusterConfig()
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("API server config: %w", err)
	}
	if n.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("API server client: %w", err)
	}
	return n, nil
}

// Enabled tells whether the installer may touch the node.
func (n *Node) Enabled() bool { return n.client != nil }

// SetMetadata sets (or, for a nil value, removes) labels and annotations
// of the node with a JSON merge patch of those keys alone.
func (n *Node) SetMetadata(ctx context.Context, labels, annotations map[string]*string) error {
	if !n.Enabled() {
		return nil
	}
	meta := map[string]any{}
	if len(labels) > 0 {
		meta["labels"] = labels
	}
	if len(annotations) > 0 {
		meta["annotations"] = annotations
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	if _, err := n.client.CoreV1().Nodes().Patch(ctx, n.name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: eventSource}); err != nil {
		return fmt.Errorf("patch node %s: %w", n.name, err)
	}
	return nil
}

// HasLabel tells whether the node carries key=value.
func (n *Node) HasLabel(ctx context.Context, key, value string) (bool, error) {
	// ResourceVersion "0": the API server answers from its cache, not
	// etcd; the readiness probe asks this of every node.
	node, err := n.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{ResourceVersion: "0"})
	if err != nil {
		return false, fmt.Errorf("get node %s: %w", n.name, err)
	}
	v, ok := node.Labels[key]
	return ok && v == value, nil
}

// Annotation is the node's annotation key ("" when it has none, or with
// no node).
func (n *Node) Annotation(ctx context.Context, key string) (string, error) {
	if !n.Enabled() {
		return "", nil
	}
	node, err := n.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("get node %s: %w", n.name, err)
	}
	return node.Annotations[key], nil
}

// Report writes message to out and, with a node, records it as an event
// on the node (a failure to record is only written to out).
func (n *Node) Report(ctx context.Context, eventType, reason, message string) {
	fmt.Fprintf(n.out, "%s: %s\n", reason, message)
	if !n.Enabled() {
		return
	}
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: n.name + ".", Namespace: metav1.NamespaceDefault},
		// The kubelet's own node events carry the node's name as uid;
		// kubectl describe node selects events by it.
		InvolvedObject: corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: n.name, UID: types.UID(n.name)},
		Reason:         reason,
		Message:        message,
		Type:           eventType,
		Source:         corev1.EventSource{Component: eventSource, Host: n.name},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}
	if _, err := n.client.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		fmt.Fprintf(n.out, "could not record event %s on node %s: %v\n", reason, n.name, err)
	}
}

func ptr(s string) *string { return &s }
