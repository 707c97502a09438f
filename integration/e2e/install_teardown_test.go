//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// uninstallRefusal waits for the uninstaller's init container to fail,
// and returns its output.
func uninstallRefusal(t *testing.T, ctx context.Context) string {
	t.Helper()
	for {
		pods, err := c.client.CoreV1().Pods(installNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + uninstallerDS})
		if err == nil && len(pods.Items) == 1 && len(pods.Items[0].Status.InitContainerStatuses) == 1 {
			pod := pods.Items[0]
			st := pod.Status.InitContainerStatuses[0]
			failed := st.State.Terminated != nil && st.State.Terminated.ExitCode != 0 ||
				st.LastTerminationState.Terminated != nil && st.LastTerminationState.Terminated.ExitCode != 0
			if st.State.Terminated != nil && st.State.Terminated.ExitCode == 0 {
				t.Fatalf("the uninstaller completed while pause pods ran: %s", podSummary(&pod))
			}
			if failed {
				out, err := c.kubectl(ctx, nil, "-n", installNS, "logs", pod.Name, "-c", "uninstall")
				if err != nil || !strings.Contains(out, "refused") {
					out, _ = c.kubectl(ctx, nil, "-n", installNS, "logs", pod.Name, "-c", "uninstall", "--previous")
				}
				return out
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("the uninstaller's init container did not fail while pause pods ran: %v", err)
		}
		time.Sleep(time.Second)
	}
}

// deletePods deletes pods at once, and waits until all are gone.
func deletePods(t *testing.T, ctx context.Context, names ...string) {
	t.Helper()
	errs := make(chan error, len(names))
	for _, name := range names {
		go func() {
			if err := deletePod(ctx, name, nil); err != nil {
				errs <- fmt.Errorf("delete pod %s: %w", name, err)
				return
			}
			errs <- nil
		}()
	}
	for range names {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// removeSandboxes stops and removes, through CRI, the sandboxes on
// handlers, all of deleted pods by now: the kubelet's garbage collection
// does the same within a minute, which the test does not wait for.
func removeSandboxes(t *testing.T, ctx context.Context, handlers ...string) {
	t.Helper()
	rt := testCRI(t)
	sbs, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range sbs.Items {
		if !slices.Contains(handlers, sb.RuntimeHandler) {
			continue
		}
		record(sb.Id)
		// The kubelet's collection may take one meanwhile.
		if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil && status.Code(err) != codes.NotFound {
			t.Fatalf("stop sandbox %s (pod %s): %v", sb.Id, sb.Metadata.GetName(), err)
		}
		if err := removeSandbox(ctx, rt, sb.Id); err != nil {
			t.Fatalf("remove sandbox %s (pod %s): %v", sb.Id, sb.Metadata.GetName(), err)
		}
	}
}

// removeSandbox removes sandbox id through CRI as the kubelet does: a
// removal that meets containerd's race with another one (the kubelet's,
// here) is tried again. containerd closes its connection to the pod's shim
// once the first removal's shutdown succeeded, but keeps it on record while
// it runs `shim delete`; a removal that comes meanwhile fails with "ttrpc:
// closed" (docs/failure-model.md). The next finds the sandbox gone.
func removeSandbox(ctx context.Context, rt cri.RuntimeServiceClient, id string) error {
	for try := 1; ; try++ {
		_, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: id})
		if err == nil || status.Code(err) == codes.NotFound {
			return nil
		}
		if try == 5 || !strings.Contains(err.Error(), "ttrpc: closed") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}
