package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// massPods is how many pods TestSharedShimMassRemoval removes at once.
const massPods = 30

// TestSharedShimMassRemoval: every pod of a shared shim, each with a
// running container, deleted at once as a kubelet does when a namespace
// or a node's pods go (each pod: its container stopped, then the pod
// stopped and removed). A shim per pod does it beside, as the reference.
// The shared shim must not wedge: containerd's runc task service handles
// exits one at a time, and kills holding their containers' locks while
// `runc kill` ran stalled it behind a queue of exits, a second each (see
// task/killqueue.go). The stall depends on how the kills overlap: it is
// not forced here, and a run without the fix passes on some machines. The
// shared shim's removal may take at most a few times the reference's, with
// a floor for a loaded machine.
func TestSharedShimMassRemoval(t *testing.T) {
	ctx := requireEnv(t)
	if testenv.Slow() {
		t.Skip("an emulated node runs fewer pods; make test runs this on the host")
	}
	rt, _ := criClients(t)
	took := map[string]time.Duration{}
	for _, handler := range []string{"pause", denseHandler} {
		took[handler] = removeAtOnce(t, ctx, rt, handler)
	}
	if limit := max(4*took["pause"], 20*time.Second); took[denseHandler] > limit {
		t.Errorf("the shared shim took %v to remove %d pods at once, a shim per pod %v: over %v", took[denseHandler].Round(10*time.Millisecond), massPods, took["pause"].Round(10*time.Millisecond), limit)
	}
}

// removeAtOnce runs massPods pods on handler, each with a container, then
// removes them all at once; it returns how long the removal took.
func removeAtOnce(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, handler string) time.Duration {
	t.Helper()
	var pods []*criPod
	for i := range massPods {
		p := runCRIPod(t, ctx, rt, podConfig(t, fmt.Sprintf("mass-%d", i), false), handler)
		p.start(t, ctx, "c", "/bin/sleep", "100000")
		pods = append(pods, p)
	}
	start := time.Now()
	errs := make(chan error, len(pods))
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(func() { errs <- removeAsKubelet(ctx, rt, p.id) })
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("%s: %v", handler, err)
		}
	}
	t.Logf("%s: %d pods removed at once in %v", handler, massPods, took.Round(10*time.Millisecond))
	return took
}

// removeAsKubelet deletes a pod as the kubelet does: its containers
// stopped (a grace period of one second), then the pod stopped and
// removed.
func removeAsKubelet(ctx context.Context, rt cri.RuntimeServiceClient, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cs, err := rt.ListContainers(ctx, &cri.ListContainersRequest{Filter: &cri.ContainerFilter{PodSandboxId: id}})
	if err != nil {
		return fmt.Errorf("ListContainers of pod %s: %w", id, err)
	}
	for _, c := range cs.Containers {
		if _, err := rt.StopContainer(ctx, &cri.StopContainerRequest{ContainerId: c.Id, Timeout: 1}); err != nil {
			return fmt.Errorf("StopContainer %s: %w", c.Id, err)
		}
	}
	if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("StopPodSandbox %s: %w", id, err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("RemovePodSandbox %s: %w", id, err)
	}
	return nil
}
