package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
)

// TestRemovePodSandboxTwiceAtOnce: two RemovePodSandbox calls for one pod
// at once, as when the kubelet's garbage collection removes a deleted pod
// while its sync loop (or an operator) does too. containerd sends both
// ShutdownSandbox calls to the shim, and after the first answer deletes
// the shim's connection: a call still under way then fails with "ttrpc:
// closed". Both calls must succeed, on a shim per pod and on a shared
// shim, and nothing is left. The first call is held at the start of its
// shutdown (a failpoint's sleep) so that the second comes while it runs.
func TestRemovePodSandboxTwiceAtOnce(t *testing.T) {
	requireEnv(t)
	fp := failpointsBinary(t)
	if !hasFailpoints(t, fp) {
		t.Fatalf("%s has no failpoint compiled in (build it with -tags failpoints)", fp)
	}
	sw := startCrashSweep(t, fp)
	for _, handler := range []string{"pause", denseHandler} {
		t.Run(handler, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), criNamespace), 2*time.Minute)
			defer cancel()
			conn, rt := dialCRI(t, sw.env.Address)
			defer conn.Close()
			before := sw.residue(t, ctx, rt, nil)
			k := &kubelet{t: t, ctx: ctx, rt: rt, handler: handler, sw: sw, strict: true, ownBefore: ownedCgroups(), baseline: before}
			k.runPodWithContainer(k.podConfig("remove-twice-"+handler, false))
			if t.Failed() {
				return
			}
			pods, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
			if err != nil || len(pods.Items) != 1 {
				t.Fatalf("ListPodSandbox: %v, %d pods, want 1", err, len(pods.GetItems()))
			}
			id := pods.Items[0].Id
			if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
				t.Fatalf("StopPodSandbox: %v", err)
			}
			// The first shutdown to get there sleeps; the other does not.
			sw.arm(t, failpoint.SandboxShutdownBegin+"=1*sleep(3000)")
			defer sw.arm(t, "")
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: id})
				}()
				time.Sleep(time.Second) // the first is asleep in the shim by now
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("RemovePodSandbox %s, call %d of 2 at once: %v", id, i+1, err)
				}
			}
			k.removeAll()
			if leaks := sw.leftSince(t, ctx, rt, k); len(leaks) > 0 {
				t.Errorf("left after the two removals:\n  %s", strings.Join(leaks, "\n  "))
				sw.sweepUp(t, k)
			}
			if t.Failed() {
				t.Log(fmt.Sprintf("containerd's log: %s", sw.env.LogPath()))
			}
		})
	}
}
