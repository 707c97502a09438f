package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestChurn: pod cycles (sandbox, two containers, stop, remove) from 4
// concurrent clients: no error, and afterwards nothing leaked (the suite's
// leak check), no file descriptor kept by containerd, and containerd's
// memory does not grow past noise. SOAK_CYCLES sets the count (make soak:
// 1000).
func TestChurn(t *testing.T) {
	ctx, rt, cycles := startSoak(t, 0)
	churn(t, ctx, rt, "pause", 0, 20) // warm up: caches, CNI, image
	fds0, heap0 := containerdUsage(t)
	churn(t, ctx, rt, "pause", 20, 20+cycles)
	fds1, heap1 := containerdUsage(t)
	t.Logf("%d cycles: containerd fds %d -> %d, live heap %d -> %d kB", cycles, fds0, fds1, heap0>>10, heap1>>10)
	if fds1 > fds0+10 {
		t.Errorf("containerd holds %d more file descriptors after %d pod cycles", fds1-fds0, cycles)
	}
	if heap1 > heap0+max(heap0/4, 8<<20) {
		t.Errorf("containerd's live heap grew from %d to %d kB over %d pod cycles", heap0>>10, heap1>>10, cycles)
	}
}

// startSoak prepares a churn test: its CRI client, how many pod cycles it
// runs (SOAK_CYCLES, or 100), and a context with a budget for them all (a
// second a cycle, far above need, and extra), in which CRI's events are
// consumed.
func startSoak(t *testing.T, extra time.Duration) (context.Context, cri.RuntimeServiceClient, int) {
	requireEnv(t)
	rt, _ := criClients(t)
	cycles := 100
	if n, err := strconv.Atoi(os.Getenv("SOAK_CYCLES")); err == nil && n > 0 {
		cycles = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute+time.Duration(cycles)*time.Second+extra)
	t.Cleanup(cancel)
	consumeEvents(t, ctx, rt)
	return ctx, rt, cycles
}

// consumeEvents reads CRI's container events, as a kubelet with evented
// PLEG does: unread, CRI buffers up to 1000 of them, which would look like
// growth.
func consumeEvents(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient) {
	events, err := rt.GetContainerEvents(ctx, &cri.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := events.Recv(); err != nil {
				return
			}
		}
	}()
}

// churn runs pod cycles from to to on handler, four at a time: each pod
// starts two containers, then is stopped and removed.
func churn(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, handler string, from, to int) {
	t.Helper()
	churnBy(t, ctx, rt, handler, from, to, 4)
}

// churnBy is churn with that many pods cycling at once.
func churnBy(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, handler string, from, to, workers int) {
	t.Helper()
	cycle := func(i int) error {
		config := podConfig(t, fmt.Sprintf("churn-%d", i), false)
		pod, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: config, RuntimeHandler: handler})
		if err != nil {
			return err
		}
		for _, name := range []string{"a", "b"} {
			c, err := rt.CreateContainer(ctx, &cri.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, SandboxConfig: config,
				Config: &cri.ContainerConfig{Metadata: &cri.ContainerMetadata{Name: name}, Image: &cri.ImageSpec{Image: busyboxImage},
					Command: []string{"/bin/sleep", "100000"}, LogPath: name + ".log"}})
			if err != nil {
				return err
			}
			if _, err := rt.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
				return err
			}
		}
		if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			return err
		}
		_, err = rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId})
		removeCgroup(t, config.Linux.CgroupParent)
		return err
	}
	jobs := make(chan int)
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			var first error
			for i := range jobs {
				if err := cycle(i); err != nil && first == nil {
					first = fmt.Errorf("cycle %d: %w", i, err)
				}
			}
			errs <- first
		}()
	}
	for i := from; i < to; i++ {
		jobs <- i
	}
	close(jobs)
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestDenseChurn: one shared shim serves pod after pod (a long-lived pod
// keeps it up). Between a tenth of the cycles and all of them, its
// goroutines, file descriptors, threads and live heap stay within 10%:
// nothing per pod outlives the pod, and no reaper or event subscriber
// grows with the pods served.
func TestDenseChurn(t *testing.T) {
	ctx, rt, cycles := startSoak(t, 2*time.Minute) // and the burst
	anchor := runCRIPod(t, ctx, rt, podConfig(t, "dense-anchor", false), denseHandler)
	anchor.start(t, ctx, "c", "/bin/sleep", "100000")
	shim := anchor.shimOf(t, ctx)
	// Warm up, in a burst of twice the soak's concurrency: the Go
	// runtime keeps a thread for each call that was blocked in the kernel
	// at once (a FIFO's open, a fork), so the shim's thread count is the
	// high-water mark of its concurrency, reached here rather than at
	// random during the soak; growth past it would be a leak.
	churnBy(t, ctx, rt, denseHandler, 0, 32, 8)
	churn(t, ctx, rt, denseHandler, 32, 32+cycles/10)
	early, earlyFDs := anchor.settledShimUsage(t, ctx), fdTargets(shim)
	churn(t, ctx, rt, denseHandler, 32+cycles/10, 32+cycles)
	late, lateFDs := anchor.settledShimUsage(t, ctx), fdTargets(shim)
	t.Logf("shared shim after %d and %d pod cycles: %+v -> %+v", cycles/10, cycles, early, late)
	if early.Pid != shim || late.Pid != shim || late.Pods != 1 {
		t.Fatalf("the pods did not all go through shim %d: %+v, %+v", shim, early, late)
	}
	for _, m := range []struct {
		what        string
		early, late uint64
	}{
		{"goroutines", uint64(early.Goroutines), uint64(late.Goroutines)},
		{"file descriptors", uint64(early.FDs), uint64(late.FDs)},
		{"threads", uint64(early.Threads), uint64(late.Threads)},
		{"live heap (bytes)", early.HeapLive, late.HeapLive},
	} {
		if float64(m.late) > 1.1*float64(m.early) {
			t.Errorf("the shared shim's %s grew from %d to %d over %d pod cycles (over 10%%)", m.what, m.early, m.late, cycles-cycles/10)
		}
	}
	if t.Failed() {
		t.Logf("the shim's file descriptors after %d cycles:\n  %s\nafter %d:\n  %s", cycles/10, strings.Join(earlyFDs, "\n  "), cycles, strings.Join(lateFDs, "\n  "))
	}
}

// containerdUsage is containerd's open file descriptors and live heap
// (bytes, after a collection: its RSS keeps what the Go runtime has not yet
// returned, which says nothing of a leak).
func containerdUsage(t *testing.T) (fds int, heap int64) {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", env.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	heap, err = env.HeapInuse()
	if err != nil {
		t.Fatal(err)
	}
	return len(entries), heap
}

// fdTargets lists what process pid's file descriptors point at.
func fdTargets(pid int) []string {
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range entries {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		out = append(out, e.Name()+" -> "+target)
	}
	return out
}
