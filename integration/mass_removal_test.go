package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// massPods is how many pods the mass-removal tests remove at once.
const massPods = 30

// shimPerPodPace fails the test if the shared shim's removal took over a
// few times the reference's, with a floor for a loaded machine.
func shimPerPodPace(t *testing.T, took map[string]time.Duration) {
	t.Helper()
	if limit := max(4*took["pause"], 20*time.Second); took[denseHandler] > limit {
		t.Errorf("the shared shim took %v to remove %d pods at once, a shim per pod %v: over %v", took[denseHandler].Round(10*time.Millisecond), massPods, took["pause"].Round(10*time.Millisecond), limit)
	}
}

// removeAtOnce runs massPods pods on handler, each with a container, their
// PID namespace pid (POD: shared by the pod's containers), then removes
// them all at once; it returns how long the removal took.
func removeAtOnce(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, handler string, pid cri.NamespaceMode) time.Duration {
	t.Helper()
	var pods []*criPod
	for i := range massPods {
		config := podConfig(t, fmt.Sprintf("mass-%d", i), false)
		config.Linux.SecurityContext.NamespaceOptions.Pid = pid
		p := runCRIPod(t, ctx, rt, config, handler)
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

// overlappingKillsRunc is runc whose SIGKILLs, once they have signalled,
// wait for one another as kills overlap on a busy node: until %[4]d are
// under way, or none has come for 50 ms (so kills taken in turn pay
// little). A kill holds runc.v2's lock on its container meanwhile, while
// the container's exit is already queued.
const overlappingKillsRunc = `#!/bin/sh
%[1]q "$@"
rc=$?
for last; do :; done
case " $* " in
*" kill "*)
	if [ "$last" = 9 ]; then
		: > %[2]q/$$
		seen=0
		i=0
		while n=$(ls %[3]q | wc -l) && [ "$n" -lt %[4]d ] && [ "$n" -gt "$seen" ] && [ $i -lt 40 ]; do
			seen=$n
			sleep 0.05
			i=$((i + 1))
		done
	fi
esac
exit $rc
`

// TestSharedShimMassRemovalOverlappingKills is TestSharedShimMassRemoval
// with the kills made to overlap every time: a containerd of its own runs
// runc through overlappingKillsRunc. Pods whose containers share their PID
// namespace and pods with one per container (the kubelet's default) are
// told apart: for the former, runc.v2's exit handler itself runs `runc kill
// --all` on each container's exit.
func TestSharedShimMassRemovalOverlappingKills(t *testing.T) {
	requireEnv(t)
	if testenv.Slow() {
		t.Skip("an emulated node runs fewer pods; make test runs this on the host")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatalf("runc: %v", err)
	}
	dir := t.TempDir()
	binDir, kills := filepath.Join(dir, "bin"), filepath.Join(dir, "kills")
	for _, d := range []string{binDir, kills} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf(overlappingKillsRunc, runc, kills, kills, 2*massPods/3)
	if err := os.WriteFile(filepath.Join(binDir, "runc"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := testenv.Start(env.Repo, env.Shim, fmt.Sprintf("pause-kills-%d", os.Getpid()),
		testenv.WithPodSubnet("10.252.0.0/24"), testenv.WithEnv("PATH="+binDir+":"+os.Getenv("PATH")))
	t.Cleanup(func() {
		if leaks := e.Leaks(); len(leaks) > 0 {
			t.Errorf("left behind:\n  %s", strings.Join(leaks, "\n  "))
		}
		if t.Failed() {
			t.Logf("containerd's log: %s", e.LogPath())
			return
		}
		os.RemoveAll(e.Dir)
	})
	if err != nil {
		t.Fatalf("containerd: %v", err)
	}
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), criNamespace), 8*time.Minute)
	defer cancel()
	conn, rt := dialCRI(t, e.Address)
	defer conn.Close()
	for _, pid := range []cri.NamespaceMode{cri.NamespaceMode_POD, cri.NamespaceMode_CONTAINER} {
		t.Run("PID namespace "+pid.String(), func(t *testing.T) {
			took := map[string]time.Duration{}
			for _, handler := range []string{"pause", denseHandler} {
				entries, _ := os.ReadDir(kills)
				for _, f := range entries {
					os.Remove(filepath.Join(kills, f.Name()))
				}
				took[handler] = removeAtOnce(t, ctx, rt, handler, pid)
			}
			shimPerPodPace(t, took)
		})
	}
}
