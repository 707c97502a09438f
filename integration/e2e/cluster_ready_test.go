//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// waitNodeReady waits until the node is Ready with a heartbeat after since
// (a heartbeat every nodeStatusReportFrequency, 2 s, while the kubelet
// runs): the status is a kubelet's of after that moment, not one left from
// before it.
func (c *cluster) waitNodeReady(ctx context.Context, since time.Time) error {
	// The API keeps the heartbeat in whole seconds: one in a later second
	// than since's is after it.
	after := since.Truncate(time.Second).Add(time.Second)
	for {
		if c.kubelet.exited() {
			return fmt.Errorf("kubelet exited: %s", tail(filepath.Join(c.dir, "kubelet.log"), 20))
		}
		node, err := c.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err == nil {
			if err = readyAfter(node, after); err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("node %s not Ready: %v; kubelet log: %s", nodeName, err, tail(filepath.Join(c.dir, "kubelet.log"), 20))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// restartKubelet stops the kubelet with SIGTERM, by its pid, and starts it
// again with the same configuration, root and certificates: the pods it ran
// are still the runtime's, and the new kubelet takes them over.
func (c *cluster) restartKubelet(ctx context.Context) error {
	old := c.kubelet
	if err := syscall.Kill(old.pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM to the kubelet (pid %d): %w", old.pid, err)
	}
	select {
	case <-old.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(old.pid, syscall.SIGKILL) // not waited for yet: still ours
		<-old.done
		c.forget(old)
		return fmt.Errorf("kubelet (pid %d) did not exit on SIGTERM within 30 s", old.pid)
	}
	c.forget(old)
	since := time.Now()
	kubelet, err := c.start("kubelet", c.kubeletArgs...)
	if err != nil {
		return err
	}
	c.kubelet = kubelet
	return c.waitNodeReady(ctx, since)
}

// restartContainerd kills containerd with sig and starts it again on the
// same state; the shims, and the pods in them, run on. The kubelet, which
// stays up, must find the runtime again.
func (c *cluster) restartContainerd(ctx context.Context, sig syscall.Signal) error {
	if err := c.env.Restart(sig, nil); err != nil {
		return fmt.Errorf("containerd restart (%v): %w; its log: %s", sig, err, tail(filepath.Join(c.env.Dir, "containerd.log"), 20))
	}
	return c.waitNodeReady(ctx, time.Now())
}

func nodeReady(node *corev1.Node) bool {
	cond := readyCondition(node)
	return cond != nil && cond.Status == corev1.ConditionTrue
}

// readyAfter says why the node's status is not Ready with a heartbeat at
// or after after (nil when it is).
func readyAfter(node *corev1.Node, after time.Time) error {
	cond := readyCondition(node)
	switch {
	case cond == nil:
		return errors.New("no Ready condition")
	case cond.Status != corev1.ConditionTrue:
		return fmt.Errorf("Ready %s (%s: %s)", cond.Status, cond.Reason, cond.Message)
	case cond.LastHeartbeatTime.Time.Before(after):
		return fmt.Errorf("no heartbeat since %s (last at %s)", after.Format(time.TimeOnly), cond.LastHeartbeatTime.Format(time.TimeOnly))
	}
	return nil
}

func readyCondition(node *corev1.Node) *corev1.NodeCondition {
	for i, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}
